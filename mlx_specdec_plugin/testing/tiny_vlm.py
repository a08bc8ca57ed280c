"""A tiny random float32 Gemma-4 VLM in mlx-vlm's on-disk format, for tests, examples and demos.

``save_tiny_gemma4_vlm(path)`` writes ``config.json`` (``model_type: gemma4`` with a text and a
vision config), ``model.safetensors`` (mlx-vlm's own ``gemma4`` classes, random weights),
``processor_config.json`` (Gemma-4's image processor with a tiny patch budget) and a byte-level
tokenizer carrying Gemma-4's special tokens (image / audio / video soft tokens and their
begin/end markers, turn markers) plus a small chat template, so that ``mlx_vlm.load(path)`` reads
it offline and ``mlx_vlm.generate`` runs on it with an image. ``write_png`` writes a test image
without any image library beyond PIL (which mlx-vlm needs anyway).

The language model keeps Gemma-4's distinctive pieces: sliding + full attention layers, KV-shared
layers, per-layer inputs, logit soft-capping, bidirectional attention over image tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map
from mlx_vlm.models import gemma4
from PIL import Image

from .tiny import byte_tokenizer_json

# 256 byte tokens, then Gemma-4's specials (ids fixed so configs and tests can name them).
SPECIALS = (
    ("<pad>", "pad"),
    ("<eos>", "eos"),
    ("<bos>", "bos"),
    ("<|turn>", None),
    ("<turn|>", None),
    ("<|image|>", "image_token"),
    ("<|image>", "boi_token"),
    ("<image|>", "eoi_token"),
    ("<|audio|>", "audio_token"),
    ("<|audio>", "boa_token"),
    ("<audio|>", "eoa_token"),
    ("<|video|>", "video_token"),
    ("<mask>", None),
)
TOKEN_ID = {tok: 256 + i for i, (tok, _) in enumerate(SPECIALS)}
VOCAB = 256 + len(SPECIALS)
PAD_ID, EOS_ID, BOS_ID = TOKEN_ID["<pad>"], TOKEN_ID["<eos>"], TOKEN_ID["<bos>"]
IMAGE_ID, BOI_ID, EOI_ID = TOKEN_ID["<|image|>"], TOKEN_ID["<|image>"], TOKEN_ID["<image|>"]
AUDIO_ID, BOA_ID, EOA_ID = TOKEN_ID["<|audio|>"], TOKEN_ID["<|audio>"], TOKEN_ID["<audio|>"]
VIDEO_ID, MASK_ID = TOKEN_ID["<|video|>"], TOKEN_ID["<mask>"]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|turn>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|image|>{% elif c['type'] == 'audio' %}<|audio|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<turn|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)


def tiny_gemma4_config(
    hidden_size: int = 32,
    num_hidden_layers: int = 4,
    sliding_window: int = 128,
    num_kv_shared_layers: int = 1,
    vision_hidden_size: int = 16,
    **text_overrides,
) -> dict:
    """A gemma4 ``config.json`` dict: 4 text layers (sliding, full, sliding, full; the last one
    KV-shared), per-layer inputs, a one-layer vision tower with 4x4 patches pooled 2x2."""
    text = {
        "model_type": "gemma4_text",
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "intermediate_size": 2 * hidden_size,
        "num_attention_heads": 4,
        "head_dim": 8,
        "global_head_dim": 8,
        "num_key_value_heads": 2,
        "num_global_key_value_heads": 2,
        "num_kv_shared_layers": num_kv_shared_layers,
        "rms_norm_eps": 1e-6,
        "vocab_size": VOCAB,
        "vocab_size_per_layer_input": VOCAB,
        "hidden_size_per_layer_input": 8,
        "sliding_window": sliding_window,
        "sliding_window_pattern": 2,
        "max_position_embeddings": 4096,
        "final_logit_softcapping": 30.0,
        "use_double_wide_mlp": True,
        "use_bidirectional_attention": "vision",
        "pad_token_id": PAD_ID,
        "tie_word_embeddings": True,
    }
    text["layer_types"] = ["sliding_attention", "full_attention"] * (num_hidden_layers // 2) + (
        ["sliding_attention"] if num_hidden_layers % 2 else []
    )
    text.update(text_overrides)
    vision = {
        "model_type": "gemma4_vision",
        "hidden_size": vision_hidden_size,
        "intermediate_size": 2 * vision_hidden_size,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "global_head_dim": 8,
        "patch_size": 4,
        "pooling_kernel_size": 2,
        "position_embedding_size": 64,
        "default_output_length": 16,
        "rms_norm_eps": 1e-6,
    }
    return {
        "model_type": "gemma4",
        "architectures": ["Gemma4ForConditionalGeneration"],
        "text_config": text,
        "vision_config": vision,
        "audio_config": None,
        "vocab_size": VOCAB,
        "hidden_size": hidden_size,
        "image_token_id": IMAGE_ID,
        "boi_token_id": BOI_ID,
        "eoi_token_id": EOI_ID,
        "audio_token_id": AUDIO_ID,
        "boa_token_id": BOA_ID,
        "eoa_token_id": EOA_ID,
        "video_token_id": VIDEO_ID,
        "pad_token_id": PAD_ID,
        "eos_token_id": [EOS_ID],
        "bos_token_id": BOS_ID,
        "vision_soft_tokens_per_image": 16,
        "tie_word_embeddings": True,
    }


def make_tiny_gemma4(config: dict, seed: int = 0, sharpness: float = 1.0) -> nn.Module:
    """mlx-vlm's ``gemma4.Model`` from ``config`` with random float32 weights."""

    cfg = gemma4.ModelConfig.from_dict(config)
    cfg.text_config = gemma4.TextConfig.from_dict(config["text_config"])
    cfg.vision_config = gemma4.VisionConfig.from_dict(config["vision_config"])
    cfg.audio_config = None
    model = gemma4.Model(cfg)
    mx.random.seed(seed)
    model.update(tree_map(lambda p: mx.random.normal(p.shape) * 0.5, model.parameters()))
    flat = dict(tree_flatten(model.parameters()))
    for name, value in flat.items():  # norms at a neutral-ish scale, embeddings sharpened
        if "norm" in name and value.ndim == 1:
            flat[name] = mx.ones_like(value) + 0.1 * mx.random.normal(value.shape)
    flat["language_model.model.embed_tokens.weight"] = flat["language_model.model.embed_tokens.weight"] * sharpness
    model.load_weights(list(flat.items()))
    mx.eval(model.parameters())
    return model


def write_gemma4_tokenizer(path: Path) -> None:
    path = Path(path)
    tok = byte_tokenizer_json()
    vocab = {k: v for k, v in tok["model"]["vocab"].items() if v < 256}
    for t, i in TOKEN_ID.items():
        vocab[t] = i
    tok["model"]["vocab"] = vocab
    tok["added_tokens"] = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for t, i in TOKEN_ID.items()
    ]
    (path / "tokenizer.json").write_text(json.dumps(tok))
    extra = {attr: tok for tok, attr in SPECIALS if attr and attr not in ("pad", "eos", "bos")}
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<bos>",
                "eos_token": "<eos>",
                "pad_token": "<pad>",
                "add_bos_token": False,
                "extra_special_tokens": extra,
                "chat_template": CHAT_TEMPLATE,
            }
        )
    )
    (path / "chat_template.jinja").write_text(CHAT_TEMPLATE)


def save_tiny_gemma4_vlm(
    path: Path,
    seed: int = 0,
    sharpness: float = 1.0,
    config: Optional[dict] = None,
    **config_kwargs,
) -> Path:
    """Write a tiny random Gemma-4 VLM folder that ``mlx_vlm.load`` reads offline; returns ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = config or tiny_gemma4_config(**config_kwargs)
    model = make_tiny_gemma4(config, seed, sharpness)
    (path / "config.json").write_text(json.dumps(config, indent=1))
    mx.save_safetensors(str(path / "model.safetensors"), dict(tree_flatten(model.parameters())))
    write_gemma4_tokenizer(path)
    vision = config["vision_config"]
    (path / "processor_config.json").write_text(
        json.dumps(
            {
                "processor_class": "Gemma4Processor",
                "image_processor": {
                    "image_processor_type": "Gemma4ImageProcessor",
                    "patch_size": vision["patch_size"],
                    "pooling_kernel_size": vision["pooling_kernel_size"],
                    "max_soft_tokens": vision["default_output_length"],
                    "do_normalize": False,
                },
            }
        )
    )
    return path


def write_png(path: Path, size: int = 16, seed: int = 0) -> Path:
    """A small deterministic RGB PNG (a gradient plus seeded noise)."""

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([x * 255 // max(size - 1, 1), y * 255 // max(size - 1, 1), (x + y) * 127 // max(size - 1, 1)], -1)
    img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img, "RGB").save(path)
    return Path(path)
