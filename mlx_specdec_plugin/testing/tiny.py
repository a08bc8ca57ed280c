"""Tiny random float32 mlx-lm models in the real on-disk format, for tests, examples and demos.

``save_tiny_model(path, ...)`` writes ``config.json``, ``model.safetensors`` and a byte-level
``tokenizer.json`` (256 byte tokens + ``<s>``, ``</s>``) that ``mlx_lm.load(path)`` reads offline.
The weights are random (seeded); ``sharpness`` scales the head so the next-token distributions
are peaked enough for drafting to be accepted sometimes. :func:`random_model` builds random
weights of a real model's shape (:data:`SHAPES`), for the benches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map
from mlx_lm.utils import _get_classes

BYTE_VOCAB = 258  # 256 bytes + <s> + </s>
BOS_ID, EOS_ID = 256, 257

_FAMILY_DEFAULTS = {
    "llama": {},
    "qwen2": {},
    "qwen3": {"head_dim": 8},
    "gemma3_text": {"head_dim": 8, "query_pre_attn_scalar": 8, "sliding_window": 8, "sliding_window_pattern": 2},
}


def tiny_config(
    model_type: str = "llama",
    vocab_size: int = BYTE_VOCAB,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    **overrides,
) -> dict:
    config = {
        "model_type": model_type,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "intermediate_size": 2 * hidden_size,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": BOS_ID if vocab_size == BYTE_VOCAB else None,
        "eos_token_id": EOS_ID if vocab_size == BYTE_VOCAB else None,
    }
    config.update(_FAMILY_DEFAULTS.get(model_type, {}))
    config.update(overrides)
    return config


def make_tiny_model(config: dict, seed: int = 0, sharpness: float = 1.0) -> nn.Module:
    """Build a random float32 mlx-lm model from ``config`` (deterministic in ``seed``)."""
    model_cls, args_cls = _get_classes(config)
    model = model_cls(args_cls.from_dict(config))
    mx.random.seed(seed)
    params = tree_map(lambda p: mx.random.normal(p.shape) * 0.5, model.parameters())
    model.update(params)
    for _, module in model.named_modules():  # mlx norms start at their neutral scale
        if isinstance(module, nn.RMSNorm):
            module.weight = mx.ones_like(module.weight)
    if hasattr(model, "lm_head"):
        model.lm_head.weight = model.lm_head.weight * sharpness
    mx.eval(model.parameters())
    return model


def byte_tokenizer_json() -> dict:
    # GPT-2 style byte-to-unicode alphabet, so every byte is one token and decoding is lossless.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_to_char = {b: chr(c) for b, c in zip(bs, cs)}
    vocab = {byte_to_char[b]: b for b in range(256)}
    vocab["<s>"], vocab["</s>"] = BOS_ID, EOS_ID
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for t, i in (("<s>", BOS_ID), ("</s>", EOS_ID))
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": []},
    }


def write_byte_tokenizer(path: Path) -> None:
    path = Path(path)
    (path / "tokenizer.json").write_text(json.dumps(byte_tokenizer_json()))
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "add_bos_token": False,
                "chat_template": "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}<s>assistant: {% endif %}",
            }
        )
    )


def save_model(path: Path, model: nn.Module, config: dict, tokenizer: bool = True) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=1))
    mx.save_safetensors(str(path / "model.safetensors"), dict(tree_flatten(model.parameters())))
    if tokenizer:
        write_byte_tokenizer(path)
    return path


def save_tiny_model(
    path: Path,
    model_type: str = "llama",
    seed: int = 0,
    sharpness: float = 1.0,
    tokenizer: bool = True,
    **overrides,
) -> Path:
    """Write a tiny random mlx-lm model folder; returns ``path``."""
    config = tiny_config(model_type, **overrides)
    return save_model(path, make_tiny_model(config, seed, sharpness), config, tokenizer)


# Real model shapes (random weights), from each model's config.json; vocab 151936 = the Qwen tokenizer.
# Qwen3 up to 4B ties its embeddings (the 4B config says "tie_word_embeddings": true), 8B does not.
_QWEN3 = dict(model_type="qwen3", vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=40960,
              head_dim=128, num_key_value_heads=8, hidden_act="silu")
_QWEN2 = dict(model_type="qwen2", vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=32768,
              tie_word_embeddings=True, hidden_act="silu")
SHAPES: Dict[str, dict] = {
    "qwen3-0.6b": {**_QWEN3, "hidden_size": 1024, "num_hidden_layers": 28, "intermediate_size": 3072,
                   "num_attention_heads": 16, "tie_word_embeddings": True},
    "qwen3-1.7b": {**_QWEN3, "hidden_size": 2048, "num_hidden_layers": 28, "intermediate_size": 6144,
                   "num_attention_heads": 16, "tie_word_embeddings": True},
    "qwen3-4b": {**_QWEN3, "hidden_size": 2560, "num_hidden_layers": 36, "intermediate_size": 9728,
                 "num_attention_heads": 32, "tie_word_embeddings": True},
    "qwen3-8b": {**_QWEN3, "hidden_size": 4096, "num_hidden_layers": 36, "intermediate_size": 12288,
                 "num_attention_heads": 32, "tie_word_embeddings": False},
    "qwen2.5-0.5b": {**_QWEN2, "hidden_size": 896, "num_hidden_layers": 24, "intermediate_size": 4864,
                     "num_attention_heads": 14, "num_key_value_heads": 2},
    "qwen2.5-1.5b": {**_QWEN2, "hidden_size": 1536, "num_hidden_layers": 28, "intermediate_size": 8960,
                     "num_attention_heads": 12, "num_key_value_heads": 2},
    # CPU-sized shapes (byte vocabulary + a few thousand ids), for this project's own measurements.
    "tiny": dict(model_type="llama", vocab_size=258, hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                 num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                 max_position_embeddings=4096, tie_word_embeddings=False),
    "cpu-small": dict(model_type="llama", vocab_size=4096, hidden_size=512, num_hidden_layers=8,
                      intermediate_size=1536, num_attention_heads=8, num_key_value_heads=4, rms_norm_eps=1e-5,
                      rope_theta=10000.0, max_position_embeddings=4096, tie_word_embeddings=False),
    "cpu-draft": dict(model_type="llama", vocab_size=4096, hidden_size=256, num_hidden_layers=2,
                      intermediate_size=768, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                      rope_theta=10000.0, max_position_embeddings=4096, tie_word_embeddings=False),
}


def random_model(shape: str, dtype: str = "float32", bits: Optional[int] = None, seed: int = 0,
                 std: float = 0.02, **overrides) -> Tuple[nn.Module, dict]:
    """A random model of ``shape`` (a :data:`SHAPES` name), HF-style N(0, std) init (RMSNorm weights 1):
    ``(model, config)``. What the benches run on a machine without downloads."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape '{shape}'; known: {', '.join(SHAPES)}")
    config = {**SHAPES[shape], **overrides}
    model_cls, args_cls = _get_classes(config)
    model = model_cls(args_cls.from_dict(config))
    mx.random.seed(seed)
    model.update(tree_map(lambda p: mx.random.normal(p.shape) * std, model.parameters()))
    for _, m in model.named_modules():
        if isinstance(m, nn.RMSNorm):
            m.weight = mx.ones_like(m.weight)
    model.set_dtype(getattr(mx, dtype))
    if bits:
        nn.quantize(model, group_size=64, bits=bits)
    mx.eval(model.parameters())
    return model, config


def layerskip_draft(model: nn.Module, config: dict, layers: int) -> nn.Module:
    """The target's first ``layers`` decoder layers + its norm and head (weights shared)."""
    cfg = {**config, "num_hidden_layers": layers}
    model_cls, args_cls = _get_classes(cfg)
    draft = model_cls(args_cls.from_dict(cfg))
    draft.model.embed_tokens = model.model.embed_tokens
    draft.model.norm = model.model.norm
    draft.model.layers = model.model.layers[:layers]
    if hasattr(model, "lm_head"):
        draft.lm_head = model.lm_head
    return draft
