"""A drafter's normalised config (:class:`DrafterConfig`) and the checks every drafter kind shares:
reading ``config.json`` (checkpoint code is refused), rope settings, strict weight names/shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import mlx.core as mx

PathLike = Union[str, Path]
_IGNORED_WEIGHT_SUFFIXES = ("rotary_emb.inv_freq",)


def rope_settings(raw: dict) -> Tuple[float, Optional[dict]]:
    """``(rope_theta, rope_scaling)`` from a config's ``rope_theta`` / ``rope_scaling`` or the newer
    ``rope_parameters``; a ``default`` scaling is no scaling (``None``)."""
    rope_theta = raw.get("rope_theta", 10000.0)
    rope_scaling = raw.get("rope_scaling")
    params = raw.get("rope_parameters")
    if isinstance(params, dict):
        params = dict(params)
        rope_theta = params.pop("rope_theta", rope_theta)
        rope_scaling = params or rope_scaling
    if rope_scaling and (rope_scaling.get("rope_type") or rope_scaling.get("type")) in (None, "default"):
        rope_scaling = None
    return rope_theta, rope_scaling



def check_weights(expected: Dict[str, Any], weights: Dict[str, Any], what: str, noun: str = "weight",
                  hint: str = "") -> None:
    """Raise ``ValueError`` naming ``what`` when the checkpoint's ``weights`` miss, add to or
    reshape the module's ``expected`` parameters (``hint`` ends the shape line)."""
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing:
        raise ValueError(f"{what}: missing {noun}(s) {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if extra:
        raise ValueError(f"{what}: unexpected {noun}(s) {extra[:8]}{' ...' if len(extra) > 8 else ''}")
    for k, v in expected.items():
        if tuple(weights[k].shape) != tuple(v.shape):
            raise ValueError(f"{what}: weight '{k}' has shape {tuple(weights[k].shape)}, expected {tuple(v.shape)}{hint}")



@dataclass(frozen=True)
class DrafterConfig:
    """A drafter checkpoint's config, layout-independent.

    ``proposal_length``: trained proposals per block (the anchor excluded). ``sample_from_anchor``
    (DSpark): the anchor slot's output predicts the first proposal, so a block of ``g`` proposals
    is ``[anchor] + (g - 1) masks``; otherwise (DFlash) it is ``[anchor] + g masks`` and the anchor
    slot's output is dropped. ``default_proposals``: the runtime default (``runtime_block_size - 1``
    when the checkpoint names one, else ``proposal_length``).
    """

    kind: str
    layout: str  # "deepspec" (flat keys) | "dflash_config" (nested)
    model_type: str
    architectures: Tuple[str, ...]
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: Optional[dict]
    rope_traditional: bool
    max_position_embeddings: int
    attention_bias: bool
    final_logit_softcapping: Optional[float]
    layer_types: Tuple[str, ...]
    sliding_window: Optional[int]
    causal: bool
    attention_sink_bias: bool
    mask_token_id: int
    target_layer_ids: Tuple[int, ...]
    num_target_layers: Optional[int]
    proposal_length: int
    default_proposals: int
    sample_from_anchor: bool
    markov_rank: int = 0
    enable_confidence_head: bool = False
    confidence_head_with_markov: bool = True
    quantization: Optional[dict] = None
    gemma4: Optional[Any] = None  # gemma4.Gemma4Backbone for Gemma4DSparkModel checkpoints
    extras: Optional[Any] = None  # a backbone variant's own settings (dflash2.DFlash2Extras)
    raw: dict = field(default_factory=dict, compare=False, repr=False)



def read_config(path: PathLike, trust_remote_code: bool = False) -> dict:
    """Read ``config.json`` of a drafter folder; refuse ``model_file``/``auto_map`` unless trusted."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ValueError(f"drafter checkpoint {path}: no config.json (expected a folder with config.json + *.safetensors)")
    try:
        raw = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"drafter checkpoint {path}: config.json is not valid JSON ({e})") from None
    code_keys = [k for k in ("model_file", "auto_map") if raw.get(k)]
    if code_keys and not trust_remote_code:
        raise ValueError(
            f"drafter config declares checkpoint code ({', '.join(code_keys)}); pass trust_remote_code=True "
            "to load it anyway (the weights are read by mlx-specdec's built-in implementation; checkpoint "
            "code is never executed)"
        )
    return raw


def read_weights(path: PathLike) -> Dict[str, mx.array]:
    """All tensors of a checkpoint folder (``*.safetensors``, sharded or not), ``model.`` stripped."""
    path = Path(path)
    files = sorted(p for p in path.glob("*.safetensors") if p.name != "consolidated.safetensors")
    if not files:
        raise ValueError(f"drafter checkpoint {path}: no *.safetensors file")
    weights: Dict[str, mx.array] = {}
    for f in files:
        for k, v in mx.load(str(f)).items():
            k = k[len("model.") :] if k.startswith("model.") else k
            if k.endswith(_IGNORED_WEIGHT_SUFFIXES):
                continue
            if k in weights:
                raise ValueError(f"drafter checkpoint {path}: weight '{k}' appears twice")
            weights[k] = v
    return weights
