"""Tiny random DSpark / DFlash checkpoints in the published on-disk layouts (config.json +
model.safetensors), for tests. Tensor names and shapes are written out here from the format
notes (not derived from the package under test).

Layouts reproduced:

* ``dspark`` / ``layout="deepspec"``: DeepSpec-native ``deepseek-ai/dspark_qwen3_*_block7`` -- a
  copy of the target's config.json plus, at the top level, ``architectures: ["Qwen3DSparkModel"]``,
  ``num_target_layers``, ``num_hidden_layers`` (draft layers), ``block_size`` (proposals),
  ``mask_token_id``, ``target_layer_ids``, ``num_anchors``, ``enable_confidence_head``,
  ``confidence_head_with_markov``, ``markov_rank``, ``markov_head_type``,
  ``tie_word_embeddings: false``, ``layer_types``; weights include copies of the target's
  ``embed_tokens`` and ``lm_head``.
* ``dspark`` / ``layout="dflash_config"``: the same drafter keys nested under ``dflash_config``
  with ``projector_type: "dspark"`` (the layout mlx-vlm 0.7.10 reads); no embed/head weights.
* ``dflash`` / ``layout="zlab"``: ``z-lab/Qwen3-*-DFlash-b16`` -- ``architectures:
  ["DFlashDraftModel"]``, ``model_type: "qwen3"``, top-level ``block_size: 16`` and
  ``num_target_layers``, ``dflash_config: {mask_token_id, target_layer_ids}``.
* ``dflash`` / ``layout="zlab_nested"``: z-lab's later revision -- ``block_size`` inside
  ``dflash_config``, ``rope_parameters: {rope_theta, rope_type}`` instead of ``rope_theta``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import mlx.core as mx
import numpy as np

from ..drafters import load_drafter
from .tiny import make_tiny_model, save_model, tiny_config


def _draft_backbone_config(target_config: dict, num_draft_layers: int) -> dict:
    H = target_config["hidden_size"]
    heads = target_config["num_attention_heads"]
    return {
        "hidden_size": H,
        "intermediate_size": target_config.get("intermediate_size", 2 * H),
        "num_hidden_layers": num_draft_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": target_config.get("num_key_value_heads", heads),
        "head_dim": target_config.get("head_dim") or H // heads,
        "hidden_act": "silu",
        "rms_norm_eps": target_config.get("rms_norm_eps", 1e-6),
        "vocab_size": target_config["vocab_size"],
        "max_position_embeddings": target_config.get("max_position_embeddings", 4096),
        "rope_theta": target_config.get("rope_theta", 10000.0),
        "attention_bias": False,
        "layer_types": ["full_attention"] * num_draft_layers,
    }


def backbone_shapes(cfg: dict, n_taps: int) -> Dict[str, tuple]:
    """Tensor names -> shapes of the Qwen3-style context-injected backbone (HF names)."""
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    shapes = {"fc.weight": (H, n_taps * H), "hidden_norm.weight": (H,), "norm.weight": (H,)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"layers.{i}."
        shapes.update(
            {
                p + "self_attn.q_proj.weight": (nh * hd, H),
                p + "self_attn.k_proj.weight": (nkv * hd, H),
                p + "self_attn.v_proj.weight": (nkv * hd, H),
                p + "self_attn.o_proj.weight": (H, nh * hd),
                p + "self_attn.q_norm.weight": (hd,),
                p + "self_attn.k_norm.weight": (hd,),
                p + "mlp.gate_proj.weight": (I, H),
                p + "mlp.up_proj.weight": (I, H),
                p + "mlp.down_proj.weight": (H, I),
                p + "input_layernorm.weight": (H,),
                p + "post_attention_layernorm.weight": (H,),
            }
        )
    return shapes


def _random(shapes: Dict[str, tuple], seed: int, scale: float) -> Dict[str, mx.array]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith("norm.weight"):
            out[name] = mx.array(1.0 + 0.1 * rng.standard_normal(shape).astype(np.float32))
        elif name.endswith("bias"):
            out[name] = mx.array(0.1 * rng.standard_normal(shape).astype(np.float32))
        else:
            fan_in = shape[-1] if len(shape) > 1 else 1
            std = scale / np.sqrt(fan_in) if not name.startswith("markov_head.markov_w1") else scale
            out[name] = mx.array((std * rng.standard_normal(shape)).astype(np.float32))
    return out


def _save(path: Path, config: dict, weights: Dict[str, mx.array], prefix_model: bool) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=1))
    if prefix_model:  # HF save_pretrained of DeepSpec's *DSparkModel keeps the backbone under model.
        weights = {
            (k if k.startswith(("lm_head", "markov_head", "confidence_head")) else "model." + k): v
            for k, v in weights.items()
        }
    mx.save_safetensors(str(path / "model.safetensors"), weights)
    return path


def target_config_of(target_dir: Path) -> dict:
    return json.loads((Path(target_dir) / "config.json").read_text())


def write_dspark(
    path: Path,
    target_dir: Path,
    *,
    layout: str = "deepspec",
    target_layer_ids: Sequence[int] = (0, 2),
    block_size: int = 7,
    markov_rank: int = 8,
    num_draft_layers: int = 1,
    confidence: bool = True,
    confidence_with_markov: bool = True,
    mask_token_id: Optional[int] = None,
    seed: int = 0,
    scale: float = 1.0,
    config_overrides: Optional[dict] = None,
    weight_overrides: Optional[Dict[str, mx.array]] = None,
    drop_weights: Sequence[str] = (),
    extra_keys: Optional[dict] = None,
) -> Path:
    """Write a tiny DSpark checkpoint for the mlx-lm target folder ``target_dir``."""
    tcfg = target_config_of(target_dir)
    V = tcfg["vocab_size"]
    mask_token_id = V - 3 if mask_token_id is None else mask_token_id
    backbone = _draft_backbone_config(tcfg, num_draft_layers)
    keys = {
        "num_target_layers": tcfg["num_hidden_layers"],
        "block_size": block_size,
        "mask_token_id": mask_token_id,
        "target_layer_ids": list(target_layer_ids),
        "num_anchors": 512,
        "enable_confidence_head": confidence,
        "confidence_head_with_markov": confidence_with_markov,
        "markov_rank": markov_rank,
        "markov_head_type": "vanilla",
        **(extra_keys or {}),  # e.g. sample_from_anchor, causal (placed with the drafter keys)
    }
    shapes = backbone_shapes(backbone, len(target_layer_ids))
    shapes["markov_head.markov_w1.weight"] = (V, markov_rank)
    shapes["markov_head.markov_w2.weight"] = (V, markov_rank)
    if confidence:
        shapes["confidence_head.proj.weight"] = (1, backbone["hidden_size"] + (markov_rank if confidence_with_markov else 0))
        shapes["confidence_head.proj.bias"] = (1,)
    weights = _random(shapes, seed, scale)
    if layout == "deepspec":
        config = {**tcfg, **backbone, **keys}
        config["architectures"] = ["Qwen3DSparkModel"]
        config["tie_word_embeddings"] = False
        target_w = mx.load(str(Path(target_dir) / "model.safetensors"))
        weights["embed_tokens.weight"] = target_w["model.embed_tokens.weight"]
        weights["lm_head.weight"] = target_w.get("lm_head.weight", target_w["model.embed_tokens.weight"])
    elif layout == "dflash_config":
        config = {
            "architectures": ["Qwen3DSparkModel"],
            "model_type": "qwen3",
            **backbone,
            "tie_word_embeddings": False,
            "dflash_config": {"projector_type": "dspark", **keys},
        }
    else:
        raise ValueError(layout)
    config.update(config_overrides or {})
    weights.update(weight_overrides or {})
    for k in drop_weights:
        weights.pop(k)
    return _save(path, config, weights, prefix_model=layout == "deepspec")


def write_dflash(
    path: Path,
    target_dir: Path,
    *,
    layout: str = "zlab",
    target_layer_ids: Sequence[int] = (0, 2),
    block_size: int = 16,
    num_draft_layers: int = 1,
    mask_token_id: Optional[int] = None,
    seed: int = 0,
    scale: float = 1.0,
    config_overrides: Optional[dict] = None,
    weight_overrides: Optional[Dict[str, mx.array]] = None,
    drop_weights: Sequence[str] = (),
) -> Path:
    """Write a tiny z-lab DFlash checkpoint for the mlx-lm target folder ``target_dir``."""
    tcfg = target_config_of(target_dir)
    V = tcfg["vocab_size"]
    mask_token_id = V - 3 if mask_token_id is None else mask_token_id
    backbone = _draft_backbone_config(tcfg, num_draft_layers)
    config = {
        "architectures": ["DFlashDraftModel"],
        "model_type": "qwen3",
        **backbone,
        "num_target_layers": tcfg["num_hidden_layers"],
        "tie_word_embeddings": False,
        "dtype": "float32",
    }
    nested = {"mask_token_id": mask_token_id, "target_layer_ids": list(target_layer_ids)}
    if layout == "zlab":
        config["block_size"] = block_size
    elif layout == "zlab_nested":
        nested["block_size"] = block_size
        config["rope_parameters"] = {"rope_theta": config.pop("rope_theta"), "rope_type": "default"}
    else:
        raise ValueError(layout)
    config["dflash_config"] = nested
    config.update(config_overrides or {})
    weights = _random(backbone_shapes(backbone, len(target_layer_ids)), seed, scale)
    weights.update(weight_overrides or {})
    for k in drop_weights:
        weights.pop(k)
    return _save(path, config, weights, prefix_model=False)


def to_dflash_config_layout(src: Path, dst: Path) -> Path:
    """Rewrite a DeepSpec-native DSpark checkpoint into the nested layout mlx-vlm reads (drops the
    embed/head copies, which mlx-vlm binds from the target instead)."""
    raw = json.loads((Path(src) / "config.json").read_text())
    keys = ["num_target_layers", "block_size", "mask_token_id", "target_layer_ids", "num_anchors",
            "enable_confidence_head", "confidence_head_with_markov", "markov_rank", "markov_head_type"]
    nested = {"projector_type": "dspark", **{k: raw.pop(k) for k in keys if k in raw}}
    raw["dflash_config"] = nested
    raw["model_type"] = "qwen3"
    weights = {k.removeprefix("model."): v for k, v in mx.load(str(Path(src) / "model.safetensors")).items()}
    weights.pop("embed_tokens.weight", None)
    weights.pop("lm_head.weight", None)
    return _save(dst, raw, weights, prefix_model=False)


# --------------------------------------------------------------------------- Gemma-4 DSpark

GEMMA4_ROPE_PARAMETERS = {
    "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0, "rope_type": "proportional"},
    "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
}


def gemma4_backbone_shapes(cfg: dict, n_taps: int) -> Dict[str, tuple]:
    """Tensor names -> shapes of DeepSpec's Gemma-4 DSpark backbone (HF names, ``model.`` stripped).

    Full-attention layers: ``global_head_dim`` heads, and with ``attention_k_eq_v`` one ``k_proj``
    of ``num_global_key_value_heads`` heads that also serves as the values (no ``v_proj``). Sliding
    layers: ``head_dim`` heads with separate K and V. Gemma sandwich norms and a ``layer_scalar``.
    """
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    shapes = {"fc.weight": (H, n_taps * H), "hidden_norm.weight": (H,), "norm.weight": (H,),
              "embed_tokens.weight": (V, H), "lm_head.weight": (V, H)}
    for i, kind in enumerate(cfg["layer_types"]):
        p = f"layers.{i}."
        full = kind == "full_attention"
        hd = cfg["global_head_dim"] if full else cfg["head_dim"]
        k_eq_v = full and cfg.get("attention_k_eq_v", False)
        nkv = cfg["num_global_key_value_heads"] if k_eq_v else cfg["num_key_value_heads"]
        shapes.update({
            p + "self_attn.q_proj.weight": (nh * hd, H),
            p + "self_attn.k_proj.weight": (nkv * hd, H),
            p + "self_attn.o_proj.weight": (H, nh * hd),
            p + "self_attn.q_norm.weight": (hd,),
            p + "self_attn.k_norm.weight": (hd,),
            p + "mlp.gate_proj.weight": (I, H),
            p + "mlp.up_proj.weight": (I, H),
            p + "mlp.down_proj.weight": (H, I),
            p + "input_layernorm.weight": (H,),
            p + "post_attention_layernorm.weight": (H,),
            p + "pre_feedforward_layernorm.weight": (H,),
            p + "post_feedforward_layernorm.weight": (H,),
            p + "layer_scalar": (1,),
        })
        if not k_eq_v:
            shapes[p + "self_attn.v_proj.weight"] = (nkv * hd, H)
    return shapes


def write_gemma4_dspark(
    path: Path,
    target_dir: Path,
    *,
    target_layer_ids: Sequence[int] = (0, 2),
    block_size: int = 7,
    markov_rank: int = 8,
    num_draft_layers: int = 2,
    layer_types: Optional[Sequence[str]] = None,
    confidence: bool = True,
    mask_token_id: Optional[int] = None,
    copy_target_embeddings: bool = True,
    seed: int = 0,
    scale: float = 1.0,
    backbone_overrides: Optional[dict] = None,
    config_overrides: Optional[dict] = None,
    weight_overrides: Optional[Dict[str, mx.array]] = None,
    drop_weights: Sequence[str] = (),
) -> Path:
    """Write a tiny ``deepseek-ai/dspark_gemma4_*_block7``-style checkpoint for the mlx-lm
    ``gemma4_text`` target folder ``target_dir``: a copy of the target's config.json with
    ``architectures: ["Gemma4DSparkModel"]``, the draft backbone's Gemma-4 keys and the DSpark keys
    flat at the top level (``block_size`` counts proposals); weights under ``model.`` with the
    drafter's own untied ``embed_tokens`` / ``lm_head`` (copies of the target's by default).
    ``backbone_overrides`` shape the weights; ``config_overrides`` are written to config.json only
    (a config that no longer fits its weights)."""
    tcfg = target_config_of(target_dir)
    V = tcfg["vocab_size"]
    mask_token_id = V - 3 if mask_token_id is None else mask_token_id
    layer_types = list(layer_types or ["full_attention"] * num_draft_layers)
    config = {k: v for k, v in tcfg.items() if k not in ("sliding_window_pattern",)}
    config.update({
        "architectures": ["Gemma4DSparkModel"],
        "model_type": "gemma4_text",
        "num_hidden_layers": len(layer_types),
        "layer_types": layer_types,
        "head_dim": tcfg.get("head_dim", 8),
        "global_head_dim": tcfg.get("global_head_dim", 16),
        "num_global_key_value_heads": 1,
        "attention_k_eq_v": True,
        "hidden_activation": "gelu_pytorch_tanh",
        "num_kv_shared_layers": 0,
        "use_double_wide_mlp": False,
        "hidden_size_per_layer_input": 0,
        "enable_moe_block": False,
        "rope_parameters": json.loads(json.dumps(GEMMA4_ROPE_PARAMETERS)),
        "sliding_window": tcfg.get("sliding_window", 8),
        "final_logit_softcapping": 30.0,
        "tie_word_embeddings": False,
        "num_target_layers": tcfg["num_hidden_layers"],
        "block_size": block_size,
        "mask_token_id": mask_token_id,
        "target_layer_ids": list(target_layer_ids),
        "num_anchors": 512,
        "enable_confidence_head": confidence,
        "confidence_head_with_markov": True,
        "markov_rank": markov_rank,
        "markov_head_type": "vanilla",
    })
    config.update(backbone_overrides or {})
    shapes = gemma4_backbone_shapes(config, len(target_layer_ids))
    shapes["markov_head.markov_w1.weight"] = (V, markov_rank)
    shapes["markov_head.markov_w2.weight"] = (V, markov_rank)
    if confidence:
        shapes["confidence_head.proj.weight"] = (1, config["hidden_size"] + markov_rank)
        shapes["confidence_head.proj.bias"] = (1,)
    weights = _random(shapes, seed, scale)
    rng = np.random.default_rng(seed + 1)
    for name in shapes:
        if name.endswith("layer_scalar"):  # a positive per-layer multiplier, not 1 (so it is exercised)
            weights[name] = mx.array((0.75 + 0.5 * rng.random(1)).astype(np.float32))
    if copy_target_embeddings:
        target_w = mx.load(str(Path(target_dir) / "model.safetensors"))
        embed = target_w["model.embed_tokens.weight"]
        weights["embed_tokens.weight"] = embed
        weights["lm_head.weight"] = target_w.get("lm_head.weight", embed)
    config.update(config_overrides or {})
    weights.update(weight_overrides or {})
    for k in drop_weights:
        weights.pop(k)
    return _save(path, config, weights, prefix_model=True)


GEMMA_DRAFT = {"model_type": "gemma4", "final_logit_softcapping": 30.0}  # z-lab's Gemma-4 DFlash config keys


def flat_target_dir(vlm_dir: Path, out: Path, model) -> Path:
    """An mlx-vlm model's language-model config (and embedding) as a flat folder, for the writers above."""
    out.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((vlm_dir / "config.json").read_text())["text_config"]
    (out / "config.json").write_text(json.dumps(cfg))
    mx.save_safetensors(str(out / "model.safetensors"),
                        {"model.embed_tokens.weight": model.language_model.model.embed_tokens.weight})
    return out


# --------------------------------------------------------------------------- EAGLE-3


def eagle3_shapes(H: int, I: int, nh: int, nkv: int, hd: int, n_layers: int, n_taps: int, target_H: int,
                  draft_vocab: int) -> Dict[str, tuple]:
    """Tensor names -> shapes of an EAGLE-3 head (speculators names): ``fc`` over the concatenated
    taps, layer 0 attending over ``[norm(embed) ; hidden_norm(h)]`` (2H wide), plain Llama layers
    after it, final ``norm`` and an ``lm_head`` over the draft vocabulary."""
    shapes = {"fc.weight": (H, n_taps * target_H), "norm.weight": (H,), "lm_head.weight": (draft_vocab, H)}
    for i in range(n_layers):
        p, w = f"layers.{i}.", 2 * H if i == 0 else H
        shapes.update({
            p + "self_attn.q_proj.weight": (nh * hd, w),
            p + "self_attn.k_proj.weight": (nkv * hd, w),
            p + "self_attn.v_proj.weight": (nkv * hd, w),
            p + "self_attn.o_proj.weight": (H, nh * hd),
            p + "mlp.gate_proj.weight": (I, H),
            p + "mlp.up_proj.weight": (I, H),
            p + "mlp.down_proj.weight": (H, I),
            p + "input_layernorm.weight": (H,),
            p + "post_attention_layernorm.weight": (H,),
        })
        if i == 0:
            shapes[p + "hidden_norm.weight"] = (H,)
    return shapes


def write_eagle3(
    path: Path,
    target_dir: Path,
    *,
    layout: str = "speculators",
    aux_layer_ids: Optional[Sequence[int]] = (1, 2, 4),
    draft_vocab_size: Optional[int] = 64,
    num_layers: int = 1,
    speculative_tokens: int = 3,
    norm_before_residual: bool = False,
    embed_tokens: bool = True,
    seed: int = 0,
    scale: float = 1.0,
    config_overrides: Optional[dict] = None,
    weight_overrides: Optional[Dict[str, mx.array]] = None,
    drop_weights: Sequence[str] = (),
    n_taps: Optional[int] = None,
    draft_tokens: Optional[Sequence[int]] = None,
) -> Path:
    """Write a tiny EAGLE-3 head for the mlx-lm target folder ``target_dir``.

    ``layout="speculators"`` (vLLM's ``*-speculator.eagle3``, what mlx-vlm reads):
    ``architectures: ["Eagle3Speculator"]``, ``speculators_model_type: "eagle3"``, the Llama layer
    config in ``transformer_layer_config``, top-level ``draft_vocab_size``, ``norm_before_residual``,
    ``eagle_aux_hidden_state_layer_ids`` (hidden_states indices), ``speculators_config`` with
    ``proposal_methods[0].speculative_tokens`` and the verifier; weights ``layers.0.*``, ``d2t``
    (int64 offsets) and ``t2d`` (bool). ``layout="specforge"``: a flat Llama config,
    ``architectures: ["LlamaForCausalLMEagle3"]``, ``eagle_config.eagle_aux_hidden_state_layer_ids``
    (layer outputs), weights ``midlayer.*``. ``draft_vocab_size=None``: the target's vocabulary
    (no d2t/t2d). The draft vocabulary is ``draft_tokens`` (target ids, increasing) or every other
    token from 0 up."""
    tcfg = target_config_of(target_dir)
    V, H = tcfg["vocab_size"], tcfg["hidden_size"]
    heads = tcfg["num_attention_heads"]
    nkv = tcfg.get("num_key_value_heads", heads)
    hd = tcfg.get("head_dim") or H // heads
    I = tcfg.get("intermediate_size", 2 * H)
    Vd = len(draft_tokens) if draft_tokens is not None else draft_vocab_size or V
    taps = n_taps if n_taps is not None else len(aux_layer_ids or (0, 0, 0))
    weights = _random(eagle3_shapes(H, I, heads, nkv, hd, num_layers, taps, H, Vd), seed, scale)
    if embed_tokens:  # EAGLE-3 heads are trained with the target's (frozen) embedding
        weights["embed_tokens.weight"] = mx.load(str(Path(target_dir) / "model.safetensors"))["model.embed_tokens.weight"]
    if Vd != V:
        hot = np.array(draft_tokens) if draft_tokens is not None else np.arange(Vd) * 2 if 2 * Vd <= V else np.arange(Vd)
        weights["d2t"] = mx.array((hot - np.arange(Vd)).astype(np.int64))
        t2d = np.zeros(V, dtype=bool)
        t2d[hot] = True
        weights["t2d"] = mx.array(t2d)
    layer = {
        "model_type": "llama", "hidden_size": H, "intermediate_size": I, "num_hidden_layers": num_layers,
        "num_attention_heads": heads, "num_key_value_heads": nkv, "head_dim": hd, "hidden_act": "silu",
        "rms_norm_eps": tcfg.get("rms_norm_eps", 1e-6), "vocab_size": V,
        "max_position_embeddings": tcfg.get("max_position_embeddings", 4096),
        "rope_theta": tcfg.get("rope_theta", 10000.0), "attention_bias": False, "tie_word_embeddings": False,
    }
    if layout == "speculators":
        config = {
            "architectures": ["Eagle3Speculator"],
            "speculators_model_type": "eagle3",
            "speculators_version": "0.1.0",
            "transformer_layer_config": layer,
            "draft_vocab_size": Vd,
            "norm_before_residual": norm_before_residual,
            "target_hidden_size": None,
            "speculators_config": {
                "algorithm": "eagle3",
                "default_proposal_method": "greedy",
                "proposal_methods": [{"proposal_type": "greedy", "speculative_tokens": speculative_tokens}],
                "verifier": {"name_or_path": str(target_dir), "architectures": tcfg.get("architectures", [])},
            },
        }
        if aux_layer_ids is not None:
            config["eagle_aux_hidden_state_layer_ids"] = list(aux_layer_ids)
        prefix = {}
    elif layout == "specforge":
        config = {"architectures": ["LlamaForCausalLMEagle3"], **layer, "draft_vocab_size": Vd}
        if aux_layer_ids is not None:
            config["eagle_config"] = {"eagle_aux_hidden_state_layer_ids": list(aux_layer_ids),
                                      "use_aux_hidden_state": True}
        prefix = {"layers.0.": "midlayer."}
    else:
        raise ValueError(layout)
    config.update(config_overrides or {})
    weights.update(weight_overrides or {})
    for k in drop_weights:
        weights.pop(k)
    for old, new in prefix.items():
        weights = {(new + k[len(old):] if k.startswith(old) else k): v for k, v in weights.items()}
    return _save(path, config, weights, prefix_model=False)


# --------------------------------------------------------------------------- native MTP heads

QWEN_GDN = dict(  # a tiny Gated DeltaNet hybrid (layers alternate linear / full attention)
    linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=8, linear_value_head_dim=8,
    linear_conv_kernel_dim=4, head_dim=8, full_attention_interval=2, partial_rotary_factor=0.5,
    num_experts=0, num_experts_per_tok=0, decoder_sparse_step=1, shared_expert_intermediate_size=0,
    mlp_only_layers=[], moe_intermediate_size=0,
)


def qwen_mtp_shapes(cfg: dict) -> Dict[str, tuple]:
    """Tensor names -> shapes of Qwen3.5 / Qwen3-Next's ``mtp.*`` block (HF names): the two input
    norms, ``fc`` (2H -> H), ``mtp_num_hidden_layers`` full-attention layers with gated attention
    (``q_proj`` emits queries and gates, 2 x heads x head_dim) and q/k norms, dense SwiGLU MLP (or
    per-expert MoE with a shared expert), and the final ``norm``."""
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    shapes = {"mtp.pre_fc_norm_embedding.weight": (H,), "mtp.pre_fc_norm_hidden.weight": (H,),
              "mtp.fc.weight": (H, 2 * H), "mtp.norm.weight": (H,)}
    for i in range(cfg["mtp_num_hidden_layers"]):
        p = f"mtp.layers.{i}."
        shapes.update({
            p + "self_attn.q_proj.weight": (2 * nh * hd, H), p + "self_attn.k_proj.weight": (nkv * hd, H),
            p + "self_attn.v_proj.weight": (nkv * hd, H), p + "self_attn.o_proj.weight": (H, nh * hd),
            p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,),
            p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
        })
        E = cfg.get("num_experts", 0)
        if E:
            Im, Is = cfg["moe_intermediate_size"], cfg["shared_expert_intermediate_size"]
            shapes[p + "mlp.gate.weight"] = (E, H)
            for e in range(E):
                shapes.update({p + f"mlp.experts.{e}.gate_proj.weight": (Im, H), p + f"mlp.experts.{e}.up_proj.weight": (Im, H),
                               p + f"mlp.experts.{e}.down_proj.weight": (H, Im)})
            shapes.update({p + "mlp.shared_expert.gate_proj.weight": (Is, H), p + "mlp.shared_expert.up_proj.weight": (Is, H),
                           p + "mlp.shared_expert.down_proj.weight": (H, Is), p + "mlp.shared_expert_gate.weight": (1, H)})
        else:
            shapes.update({p + "mlp.gate_proj.weight": (I, H), p + "mlp.up_proj.weight": (I, H),
                           p + "mlp.down_proj.weight": (H, I)})
    return shapes


def add_qwen_mtp(target_dir: Path, *, seed: int = 0, scale: float = 1.0, depth: int = 1,
                 weight_overrides: Optional[Dict[str, mx.array]] = None, drop_weights: Sequence[str] = (),
                 declare: bool = True) -> Path:
    """Add a Qwen3.5/Qwen3-Next MTP head to the mlx-lm target folder ``target_dir`` as its Hugging
    Face checkpoint carries it: ``mtp_num_hidden_layers`` in config.json and the ``mtp.*`` tensors
    in their own shard, written as Hugging Face writes them (no ``format: mlx`` metadata, so the
    norms are stored zero-centred: the file holds ``w - 1``)."""
    target_dir = Path(target_dir)
    cfg = target_config_of(target_dir)
    cfg["mtp_num_hidden_layers"] = depth
    if declare:
        (target_dir / "config.json").write_text(json.dumps(cfg, indent=1))
    weights = _random(qwen_mtp_shapes(cfg), seed, scale)
    weights = {k: (v - 1.0 if k.endswith("norm.weight") else v) for k, v in weights.items()}
    weights.update(weight_overrides or {})
    for k in drop_weights:
        weights.pop(k)
    if weights:
        mx.save_safetensors(str(target_dir / "model-mtp.safetensors"), weights, metadata={"format": "pt"})
    return target_dir


# DeepSeek-V3-style targets (MLA attention, sigmoid-routed MoE with a shared expert); tiny sizes
DEEPSEEK_TINY = dict(
    kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8,
    n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, n_shared_experts=1,
    first_k_dense_replace=1, moe_layer_freq=1, n_group=1, topk_group=1, routed_scaling_factor=1.0,
    topk_method="noaux_tc", scoring_func="sigmoid", norm_topk_prob=True, num_key_value_heads=4,
)
# DeepSeek-V3.2 / GLM-5 (glm_moe_dsa) add the DSA indexer; index_topk above every test's length
DSA_TINY = dict(DEEPSEEK_TINY, index_head_dim=8, index_n_heads=2, index_topk=64, attention_bias=False,
                rope_parameters={"rope_theta": 10000.0, "rope_type": "default"})


def deepseek_mtp_shapes(cfg: dict) -> Dict[str, tuple]:
    """Tensor names -> shapes of DeepSeek-V3's next-token-prediction module as its Hugging Face
    checkpoint stores it, ``model.layers.{num_hidden_layers}.*``: ``embed_tokens`` and
    ``shared_head.{norm,head}``, ``enorm``/``hnorm``/``eh_proj`` (2H -> H), and a full decoder layer:
    MLA attention (``q_a_proj``/``q_a_layernorm``/``q_b_proj`` or ``q_proj``, ``kv_a_proj_with_mqa``
    (kv_lora_rank + rope dim), ``kv_a_layernorm``, the fused ``kv_b_proj`` (heads x (nope + v)),
    ``o_proj``), and the MoE MLP (router ``gate`` + ``e_score_correction_bias``, per-expert
    SwiGLU, ``shared_experts``). With ``index_topk`` in the config (DeepSeek-V3.2 / GLM-5) the
    attention also holds the DSA indexer (``wq_b``, ``wk``, LayerNorm ``k_norm``, ``weights_proj``)."""
    H, V, nh = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"]
    rope, nope, vd = cfg["qk_rope_head_dim"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    kvr, qr = cfg["kv_lora_rank"], cfg.get("q_lora_rank")
    p = f"model.layers.{cfg['num_hidden_layers']}."
    a = p + "self_attn."
    shapes = {p + "embed_tokens.weight": (V, H), p + "enorm.weight": (H,), p + "hnorm.weight": (H,),
              p + "eh_proj.weight": (H, 2 * H), p + "shared_head.norm.weight": (H,),
              p + "shared_head.head.weight": (V, H), p + "input_layernorm.weight": (H,),
              p + "post_attention_layernorm.weight": (H,),
              a + "kv_a_proj_with_mqa.weight": (kvr + rope, H), a + "kv_a_layernorm.weight": (kvr,),
              a + "kv_b_proj.weight": (nh * (nope + vd), kvr), a + "o_proj.weight": (H, nh * vd)}
    if qr:
        shapes.update({a + "q_a_proj.weight": (qr, H), a + "q_a_layernorm.weight": (qr,),
                       a + "q_b_proj.weight": (nh * (nope + rope), qr)})
    else:
        shapes[a + "q_proj.weight"] = (nh * (nope + rope), H)
    if cfg.get("index_topk"):
        ih, ihd = cfg["index_n_heads"], cfg["index_head_dim"]
        shapes.update({a + "indexer.wq_b.weight": (ih * ihd, qr), a + "indexer.wk.weight": (ihd, H),
                       a + "indexer.k_norm.weight": (ihd,), a + "indexer.k_norm.bias": (ihd,),
                       a + "indexer.weights_proj.weight": (ih, H)})
    E, Im = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
    Is = Im * cfg["n_shared_experts"]
    m = p + "mlp."
    shapes.update({m + "gate.weight": (E, H), m + "gate.e_score_correction_bias": (E,),
                   m + "shared_experts.gate_proj.weight": (Is, H), m + "shared_experts.up_proj.weight": (Is, H),
                   m + "shared_experts.down_proj.weight": (H, Is)})
    for e in range(E):
        shapes.update({m + f"experts.{e}.gate_proj.weight": (Im, H), m + f"experts.{e}.up_proj.weight": (Im, H),
                       m + f"experts.{e}.down_proj.weight": (H, Im)})
    return shapes


def add_deepseek_mtp(target_dir: Path, model=None, *, seed: int = 0, scale: float = 1.0, depth: int = 1,
                     weight_overrides: Optional[Dict[str, mx.array]] = None, drop_weights: Sequence[str] = (),
                     declare: bool = True) -> Path:
    """Add a DeepSeek-V3-style MTP module to the target folder ``target_dir`` as the published
    checkpoints carry it: ``num_nextn_predict_layers`` in config.json and the module's tensors as
    decoder layer ``num_hidden_layers`` in their own shard, with a ``model.safetensors.index.json``
    weight map over both shards (as a sharded Hugging Face checkpoint has). ``embed_tokens`` and
    ``shared_head.head`` are the main model's copies when ``model`` (the loaded target) is given, and
absent otherwise."""
    target_dir = Path(target_dir)
    cfg = target_config_of(target_dir)
    cfg["num_nextn_predict_layers"] = depth
    if declare:
        (target_dir / "config.json").write_text(json.dumps(cfg, indent=1))
    weights = _random(deepseek_mtp_shapes(cfg), seed, scale)
    p = f"model.layers.{cfg['num_hidden_layers']}."
    weights[p + "mlp.gate.e_score_correction_bias"] = mx.zeros((cfg["n_routed_experts"],))
    if cfg.get("index_topk"):
        weights[p + "self_attn.indexer.k_norm.weight"] = mx.ones((cfg["index_head_dim"],))
    if model is not None:  # DeepSeek-V3 stores copies of the shared embedding and head
        weights[p + "embed_tokens.weight"] = model.model.embed_tokens.weight
        weights[p + "shared_head.head.weight"] = model.lm_head.weight
    else:  # GLM-5's layout as mlx-vlm 0.7.10 reads it: no copies
        del weights[p + "embed_tokens.weight"], weights[p + "shared_head.head.weight"]
    weights.update(weight_overrides or {})
    for k in drop_weights:
        weights.pop(k)
    if weights:
        mx.save_safetensors(str(target_dir / "model-mtp.safetensors"), weights, metadata={"format": "pt"})
    main = {k: "model.safetensors" for k in mx.load(str(target_dir / "model.safetensors"))}
    index = {"metadata": {}, "weight_map": {**main, **{k: "model-mtp.safetensors" for k in weights}}}
    (target_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    return target_dir


def write_dflash2(
    path: Path,
    target_dir: Path,
    *,
    target_layer_ids: Sequence[int] = (0, 2),
    block_size: int = 8,
    num_draft_layers: int = 1,
    conv_kernel_size: int = 3,
    conv_group_size: int = 8,
    selector_rank: int = 8,
    selector_top_k: int = 16,
    input_embedding_scale: float = 1.0,
    output_multiplier: float = 1.0,
    seed: int = 0,
    scale: float = 1.0,
    config_overrides: Optional[dict] = None,
    nested_overrides: Optional[dict] = None,
    weight_overrides: Optional[Dict[str, mx.array]] = None,
    drop_weights: Sequence[str] = (),
) -> Path:
    """A tiny DFlash2 checkpoint for the mlx-lm target folder ``target_dir``, as mlx-vlm 0.7.10's
    loader reads it: ``architectures: ["DFlash2DraftModel"]``, ``model_type`` the backbone's
    (``qwen3``), ``num_target_layers`` at the top level, and in ``dflash_config`` the block
    (``block_size`` anchor included, ``mask_token_id``, ``target_layer_ids``) and DFlash2's own
    keys (``conv_kernel_size``, ``conv_group_size``, ``selector_rank``, ``selector_top_k``,
    ``input_embedding_scale``, ``output_multiplier``). Weights under ``model.``: the DFlash
    backbone, per layer ``attention_conv`` / ``mlp_conv`` (``base_kernel (2, K, H)``, here an
    identity tap plus noise, and ``kernel_projection.weight (2 K H/group, H)``), and
    ``candidate_selector.{predecessor,successor}_codebook`` (bare ``(V, r)`` parameters) and
    ``candidate_selector.hidden_projection.weight (r, H)``."""
    tcfg = target_config_of(target_dir)
    V = tcfg["vocab_size"]
    backbone = _draft_backbone_config(tcfg, num_draft_layers)
    H = backbone["hidden_size"]
    config = {"architectures": ["DFlash2DraftModel"], "model_type": "qwen3", **backbone,
              "num_target_layers": tcfg["num_hidden_layers"], "tie_word_embeddings": False, "dtype": "float32"}
    config["dflash_config"] = {
        "block_size": block_size, "mask_token_id": V - 3, "target_layer_ids": list(target_layer_ids),
        "conv_kernel_size": conv_kernel_size, "conv_group_size": conv_group_size, "selector_rank": selector_rank,
        "selector_top_k": selector_top_k, "input_embedding_scale": input_embedding_scale,
        "output_multiplier": output_multiplier, **(nested_overrides or {}),
    }
    config.update(config_overrides or {})
    shapes = backbone_shapes(backbone, len(target_layer_ids))
    groups = H // conv_group_size
    for i in range(num_draft_layers):
        for conv in ("attention_conv", "mlp_conv"):
            shapes[f"layers.{i}.{conv}.base_kernel"] = (2, conv_kernel_size, H)
            shapes[f"layers.{i}.{conv}.kernel_projection.weight"] = (2 * conv_kernel_size * groups, H)
    shapes.update({"candidate_selector.predecessor_codebook": (V, selector_rank),
                   "candidate_selector.successor_codebook": (V, selector_rank),
                   "candidate_selector.hidden_projection.weight": (selector_rank, H)})
    weights = _random(shapes, seed, scale)
    for k in list(weights):
        if k.endswith("base_kernel"):
            weights[k] = 0.2 * weights[k] + mx.array([1.0] + [0.0] * (conv_kernel_size - 1))[None, :, None]
        elif k.endswith("_codebook"):
            weights[k] = weights[k] * np.sqrt(selector_rank)  # unit-scale codebook rows
    weights.update(weight_overrides or {})
    for k in drop_weights:
        weights.pop(k)
    return _save(path, config, weights, prefix_model=True)


# --------------------------------------------------------------------------- Gemma-4 assistant

# Hugging Face's Gemma4TextConfig RoPE defaults (mlx-lm's too), for targets whose config omits them
GEMMA4_DEFAULT_ROPE = {
    "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0, "rope_type": "proportional"},
    "sliding_attention": {"partial_rotary_factor": 1.0, "rope_theta": 10000.0, "rope_type": "default"},
}


def gemma4_assistant_shapes(text: dict, backbone: int, tie: bool, ordered: bool, num_centroids: int) -> Dict[str, tuple]:
    """Tensor names -> shapes of a ``gemma4_assistant`` checkpoint (HF names, ``model.`` stripped from
    the decoder's): query-only attention per layer type (``global_head_dim`` on full layers)."""
    h, I, V, nh = text["hidden_size"], text["intermediate_size"], text["vocab_size"], text["num_attention_heads"]
    shapes = {"embed_tokens.weight": (V, h), "norm.weight": (h,), "pre_projection.weight": (h, 2 * backbone),
              "post_projection.weight": (backbone, h)}
    if not tie:
        shapes["lm_head.weight"] = (V, h)
    if ordered:
        shapes["masked_embedding.centroids.weight"] = (num_centroids, h)
    for i, kind in enumerate(text["layer_types"]):
        p = f"layers.{i}."
        hd = text["global_head_dim"] if kind == "full_attention" else text["head_dim"]
        shapes.update({
            p + "self_attn.q_proj.weight": (nh * hd, h),
            p + "self_attn.o_proj.weight": (h, nh * hd),
            p + "self_attn.q_norm.weight": (hd,),
            p + "mlp.gate_proj.weight": (I, h),
            p + "mlp.up_proj.weight": (I, h),
            p + "mlp.down_proj.weight": (h, I),
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
            p + "pre_feedforward_layernorm.weight": (h,),
            p + "post_feedforward_layernorm.weight": (h,),
            p + "layer_scalar": (1,),
        })
    return shapes


def write_gemma4_assistant(
    path: Path,
    target_dir: Path,
    *,
    hidden_size: int = 24,
    num_attention_heads: int = 4,
    layer_types: Sequence[str] = ("sliding_attention", "full_attention"),
    tie_word_embeddings: bool = True,
    ordered_embeddings: bool = False,
    num_centroids: int = 6,
    centroid_top_k: int = 2,
    block_size: int = 4,
    seed: int = 0,
    scale: float = 1.0,
    successor: Optional[Dict[int, int]] = None,
    config_overrides: Optional[dict] = None,
    text_overrides: Optional[dict] = None,
    weight_overrides: Optional[Dict[str, mx.array]] = None,
    drop_weights: Sequence[str] = (),
) -> Path:
    """A ``gemma4_assistant`` checkpoint for the Gemma-4 target in ``target_dir`` (a ``gemma4_text``
    config, or a ``gemma4`` one with ``text_config``): config.json with ``backbone_hidden_size`` and a
    nested Gemma-4 ``text_config`` whose attention geometry per layer type is the target's, and
    ``model.safetensors`` (decoder under ``model.``, projections and heads at the top level).

    ``successor`` ({token: next token}) writes a *bigram* assistant instead of a random one: every
    layer's output projections are zero (the blocks pass their input through), the feature half of
    ``pre_projection`` is zero, and the rest is solved by least squares so that the first draft step's
    argmax after token ``t`` is ``successor[t]`` (a drafter that is often right on repetitive text).
    """
    tcfg = target_config_of(target_dir)
    tcfg = tcfg.get("text_config", tcfg)
    B, V = tcfg["hidden_size"], tcfg["vocab_size"]
    text = {
        "model_type": "gemma4_text", "hidden_size": hidden_size, "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": len(layer_types), "layer_types": list(layer_types),
        "num_attention_heads": num_attention_heads, "vocab_size": V, "vocab_size_per_layer_input": V,
        "hidden_size_per_layer_input": 0, "num_kv_shared_layers": len(layer_types),
        "rms_norm_eps": tcfg.get("rms_norm_eps", 1e-6), "max_position_embeddings": tcfg.get("max_position_embeddings", 4096),
        "final_logit_softcapping": tcfg.get("final_logit_softcapping", 30.0), "use_double_wide_mlp": False,
        "tie_word_embeddings": tie_word_embeddings,
    }
    for key in ("head_dim", "global_head_dim", "num_key_value_heads", "num_global_key_value_heads",
                "attention_k_eq_v", "rope_parameters", "sliding_window", "sliding_window_pattern"):
        if key in tcfg:
            text[key] = tcfg[key]
    text.setdefault("global_head_dim", text.get("head_dim"))
    text.setdefault("rope_parameters", GEMMA4_DEFAULT_ROPE)  # explicit: mlx-vlm's default differs from HF's
    text.update(text_overrides or {})
    config = {"model_type": "gemma4_assistant", "architectures": ["Gemma4AssistantForCausalLM"],
              "backbone_hidden_size": B, "block_size": block_size, "tie_word_embeddings": tie_word_embeddings,
              "use_ordered_embeddings": ordered_embeddings, "num_centroids": num_centroids,
              "centroid_intermediate_top_k": centroid_top_k, "text_config": text}
    config.update(config_overrides or {})
    weights = _random(gemma4_assistant_shapes(text, B, tie_word_embeddings, ordered_embeddings, num_centroids), seed, scale)
    for name in weights:
        if name.endswith("layer_scalar"):
            weights[name] = mx.ones((1,))
    if successor:
        weights.update(_bigram_assistant(text, B, target_dir, successor, tie_word_embeddings))
    if ordered_embeddings:
        order = np.random.default_rng(seed + 1).permutation(V).astype(np.int64)
        weights["masked_embedding.token_ordering"] = mx.array(order)
    weights.update(weight_overrides or {})
    for k in drop_weights:
        weights.pop(k)
    weights = {(k if k.startswith(("pre_projection", "post_projection", "lm_head", "masked_embedding")) else "model." + k): v
               for k, v in weights.items()}
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=1))
    mx.save_safetensors(str(path / "model.safetensors"), weights)
    return path


def _bigram_assistant(text: dict, B: int, target_dir: Path, successor: Dict[int, int], tie: bool) -> Dict[str, mx.array]:
    """Weights of an assistant whose first step maps token t to ``successor[t]``: the blocks are
    identities (zero output projections), the feature is ignored, so the step's output is
    ``norm(P e_t)`` with ``e_t`` the target's scaled embedding; ``P`` sends the known tokens' embeddings
    to one direction per successor, and the head scores those directions."""
    tw = mx.load(str(Path(target_dir) / "model.safetensors"))
    emb = np.array(next(v for k, v in tw.items() if k.endswith("embed_tokens.weight")), dtype=np.float64) * np.sqrt(B)
    h, V = text["hidden_size"], text["vocab_size"]
    rng = np.random.default_rng(7)
    targets = sorted(set(successor.values()))
    direction = {s: rng.standard_normal(h) for s in targets}
    for s in direction:
        direction[s] /= np.linalg.norm(direction[s])
    src = sorted(successor)
    X = emb[src]  # (n, B)
    Y = np.stack([direction[successor[t]] for t in src]) * np.sqrt(h)  # unit-RMS rows, what the norm returns
    P = np.linalg.lstsq(X, Y, rcond=None)[0].T  # (h, B)
    head = 0.1 * rng.standard_normal((V, h))
    for s in targets:
        head[s] = 4.0 * direction[s]
    out = {"pre_projection.weight": mx.array(np.concatenate([P, np.zeros((h, B))], axis=1).astype(np.float32)),
           "norm.weight": mx.ones((h,))}
    out["lm_head.weight" if not tie else "embed_tokens.weight"] = mx.array(head.astype(np.float32))
    for i in range(text["num_hidden_layers"]):
        p = f"layers.{i}."
        out[p + "self_attn.o_proj.weight"] = mx.zeros((h, text["num_attention_heads"] * (
            text["global_head_dim"] if text["layer_types"][i] == "full_attention" else text["head_dim"])))
        out[p + "mlp.down_proj.weight"] = mx.zeros((h, text["intermediate_size"]))
    return out


# --------------------------------------------------------------------------- the kinds on one tiny vocabulary


def kind_fixtures(root: Path, vocab: int = 8) -> Dict[str, tuple]:
    """Every drafter kind of issue 15 on a tiny-vocabulary target of its own family, loaded:
    ``{kind: (target model, drafter)}`` for ``eagle3`` and ``dflash2`` (a qwen3 target), ``mtp`` (a
    Gated-DeltaNet qwen3_5 carrying ``mtp.*``), ``mtp-deepseek`` (an MLA + MoE deepseek_v3 carrying
    ``model.layers.{N}.*``) and ``assistant`` (a gemma4_text target, sliding window 4). Used by the
    chi-square tests and by ``docs/scripts/kinds_by_position.py``."""
    root = Path(root)
    config = tiny_config("qwen3", vocab_size=vocab, hidden_size=16, num_hidden_layers=3)
    model = make_tiny_model(config, seed=1, sharpness=3)
    target_dir = save_model(root / "target", model, config, tokenizer=False)
    out = {
        # a 5-token draft vocabulary: q is zero on 3 tokens the target can emit
        "eagle3": (model, load_drafter(write_eagle3(root / "eagle3", target_dir, aux_layer_ids=(1, 2, 3),
                                                    draft_tokens=[0, 2, 3, 5, 6], seed=3, scale=0.3), model)),
        # 5 selector candidates per position, so q is zero on 3 tokens the target can emit
        "dflash2": (model, load_drafter(write_dflash2(root / "dflash2", target_dir, target_layer_ids=(0, 2),
                                                      selector_top_k=5, selector_rank=4, seed=4, scale=0.5,
                                                      output_multiplier=0.3), model)),
    }
    config = tiny_config("qwen3_5", vocab_size=vocab, hidden_size=16, num_hidden_layers=2,
                         **{**QWEN_GDN, "num_attention_heads": 2, "num_key_value_heads": 1})
    hybrid = make_tiny_model(config, seed=1, sharpness=3)
    hybrid_dir = add_qwen_mtp(save_model(root / "qwen3_5", hybrid, config, tokenizer=False), seed=3, scale=0.5)
    out["mtp"] = (hybrid, load_drafter(hybrid_dir, hybrid))
    config = tiny_config("deepseek_v3", vocab_size=vocab, hidden_size=16, num_hidden_layers=2, **DEEPSEEK_TINY)
    deepseek = make_tiny_model(config, seed=1, sharpness=1.0)
    deepseek_dir = add_deepseek_mtp(save_model(root / "deepseek_v3", deepseek, config, tokenizer=False), deepseek,
                                    seed=5, scale=0.5)
    out["mtp-deepseek"] = (deepseek, load_drafter(deepseek_dir, deepseek))
    # the 3-token prompt and its drafts outgrow the sliding window
    config = tiny_config("gemma4_text", vocab_size=vocab, hidden_size=16, num_hidden_layers=4, head_dim=8,
                         global_head_dim=16, num_kv_shared_layers=1, hidden_size_per_layer_input=8,
                         vocab_size_per_layer_input=vocab, sliding_window=4, sliding_window_pattern=2,
                         final_logit_softcapping=30.0, tie_word_embeddings=True)
    gemma = make_tiny_model(config, seed=1, sharpness=2)
    gemma_dir = save_model(root / "gemma4", gemma, config, tokenizer=False)
    out["assistant"] = (gemma, load_drafter(write_gemma4_assistant(root / "assistant", gemma_dir, seed=3), gemma))
    return out
