"""Tiny random float32 mlx-lm models in the real on-disk format, for tests, examples and demos.

``save_tiny_model(path, ...)`` writes ``config.json``, ``model.safetensors`` and a byte-level
``tokenizer.json`` (256 byte tokens + ``<s>``, ``</s>``) that ``mlx_lm.load(path)`` reads offline.
The weights are random (seeded); ``sharpness`` scales the head so the next-token distributions
are peaked enough for drafting to be accepted sometimes.
"""

from __future__ import annotations

import json
from pathlib import Path


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


def _byte_tokenizer_json() -> dict:
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
    (path / "tokenizer.json").write_text(json.dumps(_byte_tokenizer_json()))
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
