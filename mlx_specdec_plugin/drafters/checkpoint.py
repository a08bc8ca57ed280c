"""Drafter checkpoints: reading, kind detection, config normalisation, validation against the target,
binding (:class:`Drafter`), saving. The config type is in :mod:`.config`, the block drafters'
modules in :mod:`.layers`, the other kinds in :mod:`.gemma4`, :mod:`.eagle3` and :mod:`.mtp`.


``load_drafter(path, target_model)`` reads a drafter folder (``config.json`` + ``*.safetensors``)
as users download it today and returns a :class:`Drafter` bound to the target:

* **DSpark, DeepSpec-native** (``deepseek-ai/dspark_qwen3_*_block7``): a copy of the target's
  config with ``architectures: ["Qwen3DSparkModel"]`` and the drafter keys at the top level
  (``block_size`` counts *proposals*, the anchor excluded). The checkpoint may ship its own
  ``embed_tokens`` / ``lm_head`` copies; they are used when present.
* **DSpark, ``dflash_config`` layout** (what mlx-vlm reads): the same keys nested under
  ``dflash_config``, marked by ``projector_type: "dspark"`` or ``markov_rank > 0``.
* **DFlash, z-lab** (``z-lab/Qwen3-8B-DFlash-b16``): ``dflash_config`` with ``target_layer_ids``
  and ``mask_token_id``; ``block_size`` (top level or nested) is the block width *including* the
  anchor (16: anchor + 15 masks). Embedding and LM head are the target's.
* **DFlash, DeepSpec-native** (``dflash_*_block7`` baselines): flat keys, ``block_size`` counts
  proposals.
* **DSpark, Gemma-4** (``deepseek-ai/dspark_gemma4_*_block7``, ``architectures:
  ["Gemma4DSparkModel"]``, flat ``model_type: gemma4_text`` config): a Gemma-4 backbone (K=V
  attention, sandwich norms, GeGLU, own embedding and head); see :mod:`.gemma4`.

Every layout is normalised into one :class:`DrafterConfig`; the config and the weights are checked
against the target (depth, hidden size, vocabulary, family, shapes) and any problem is one
``ValueError`` naming the offending key. Checkpoint code (``model_file`` / ``auto_map``) is never
executed. Backbone (all but Gemma-4): Qwen3-style decoder layers (q/k RMSNorm, SwiGLU) whose attention reads the
projected target features as extra keys/values (the *context*); the context K/V is cached by the
proposer and never rolled back, block K/V is never cached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map_with_path
from mlx_lm.models.cache import KVCache

from ..target import TargetAdapter, lm_head
from . import assistant, eagle3, mtp
from . import gemma4 as drafters_gemma4
from .config import DrafterConfig, PathLike, read_config, read_weights, rope_settings
from .layers import BlockDrafterModel

KINDS = ("dspark", "dflash")  # the block drafters of this module; other kinds: OTHER_KINDS
# kind -> (is_kind(config dict), "module:loader") for drafter kinds with their own module; a loader
# is called as loader(path, target_model, raw=config, dtype=...) and returns an object with
# ``kind``, ``tap_layers`` and ``bind(target_model)``.
OTHER_KINDS = {
    "eagle3": ("eagle3", "is_eagle3", "load_eagle3"),
    "mtp": ("mtp", "is_mtp", "load_mtp"),
    "assistant": ("assistant", "is_assistant", "load_assistant"),
}
# kinds whose weights live inside a complete model folder (the target's own checkpoint): such a
# folder is that kind only as the target's own folder, and a plain model otherwise
TARGET_FOLDER_KINDS = ("mtp",)
_KIND_MODULES = {"eagle3": eagle3, "mtp": mtp, "assistant": assistant}


def register_kind(kind: str, module) -> None:
    """Add a drafter kind whose module builds on this one (so this one cannot import it): ``module``
    has ``is_<kind>(raw) -> bool`` and ``load_<kind>(path, target_model, raw=, dtype=)``. The
    package's ``__init__`` imports such modules, so they are registered before any detection."""
    OTHER_KINDS[kind] = (kind, f"is_{kind}", f"load_{kind}")
    _KIND_MODULES[kind] = module


# --------------------------------------------------------------------------- config


def _other_kind(raw: dict) -> Optional[str]:
    for kind, (module, is_kind, _) in OTHER_KINDS.items():
        if getattr(_KIND_MODULES[module], is_kind)(raw):
            return kind
    return None


def detect_kind(raw: dict) -> str:
    """The drafter kind of a config dict (``"dspark"``, ``"dflash"`` or one of
    :data:`OTHER_KINDS`); ``ValueError`` for anything else."""
    other = _other_kind(raw)
    if other is not None:
        return other
    archs = [str(a) for a in raw.get("architectures") or ()]
    nested = raw.get("dflash_config")
    if raw.get("speculators_model_type"):
        raise ValueError(
            f"speculators_model_type '{raw['speculators_model_type']}': the vLLM speculators format is "
            "not supported for this kind; use the DeepSpec or dflash_config checkpoint"
        )
    if any("DSpark" in a for a in archs):
        return "dspark"
    markov = raw.get("markov_rank") or (nested or {}).get("markov_rank") or 0
    if isinstance(nested, dict) and (nested.get("projector_type") == "dspark" or int(markov) > 0):
        return "dspark"
    if isinstance(nested, dict):
        projector = nested.get("projector_type")
        if projector not in (None, "dflash"):
            raise ValueError(f"dflash_config.projector_type '{projector}' is not supported (dspark, dflash)")
        return "dflash"
    if any("DFlash" in a for a in archs):
        return "dflash"
    if int(markov) > 0 and "target_layer_ids" in raw:
        return "dspark"
    raise ValueError(
        "config.json is not a drafter checkpoint of a known kind: expected a DSpark/DFlash drafter (architectures "
        "*DSparkModel / DFlashDraftModel or a 'dflash_config' object), an EAGLE-3 head (speculators_model_type "
        "'eagle3' or *Eagle3 architectures), a Gemma-4 assistant (model_type 'gemma4_assistant'), or a model folder that declares MTP layers (Qwen3.5/Qwen3-Next: "
        "mtp_num_hidden_layers; DeepSeek-V3/V3.2, Kimi-K2, GLM-5, GLM-4.7-Flash: num_nextn_predict_layers)"
    )


def folder_drafter_kind(config: Optional[dict], own_folder: bool) -> Optional[str]:
    """The drafter kind a ``--draft-model`` folder's config declares beyond DSpark/DFlash (EAGLE-3,
    MTP heads, ...), or None. A kind that lives inside a complete model folder (the target's own MTP
    heads, ``TARGET_FOLDER_KINDS``) counts only when the folder is the target's (``own_folder``);
    otherwise that folder is a classic draft model."""
    kind = _other_kind(config or {}) if config else None
    if kind in TARGET_FOLDER_KINDS and not own_folder:
        return None
    return kind


def is_drafter_config(config: Optional[dict]) -> bool:
    """A DSpark/DFlash checkpoint's config (either layout), as opposed to a plain mlx-lm model's.
    A cheap look at the keys; :func:`detect_kind` decides the kind (and refuses what is unsupported)."""
    if not config:
        return False
    archs = " ".join(str(a) for a in config.get("architectures") or [])
    return "dflash_config" in config or "DSpark" in archs or "DFlash" in archs or "target_layer_ids" in config


def _int(raw: dict, key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"drafter config: '{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def normalize_config(raw: dict) -> DrafterConfig:
    """Normalise a DeepSpec-native or ``dflash_config`` drafter config (see the module docstring)."""
    kind = detect_kind(raw)
    archs = tuple(str(a) for a in raw.get("architectures") or ())
    gemma4 = drafters_gemma4.is_gemma4_dspark(raw)
    nested = raw.get("dflash_config")
    if nested is not None and not isinstance(nested, dict):
        raise ValueError("drafter config: 'dflash_config' must be an object")
    layout = "dflash_config" if nested is not None else "deepspec"
    nested = nested or {}

    def get(key, default=None):
        return nested[key] if key in nested else raw.get(key, default)

    act = raw.get("hidden_act", "silu")  # (Gemma's hidden_activation names the target's MLP, not ours)
    if not gemma4 and act not in ("silu", "swish"):
        raise ValueError(f"drafter config: 'hidden_act' {act!r} is not supported (the backbone is SwiGLU)")
    markov_type = get("markov_head_type", "vanilla")
    if kind == "dspark" and markov_type != "vanilla":
        raise ValueError(f"drafter config: 'markov_head_type' {markov_type!r} is not supported (vanilla)")

    H = _int(raw, "hidden_size", raw.get("hidden_size"))
    heads = _int(raw, "num_attention_heads", raw.get("num_attention_heads"))
    kv_heads = _int(raw, "num_key_value_heads", raw.get("num_key_value_heads", heads))
    if heads % kv_heads:
        raise ValueError(f"drafter config: 'num_attention_heads' {heads} is not a multiple of 'num_key_value_heads' {kv_heads}")
    layers = _int(raw, "num_hidden_layers", raw.get("num_hidden_layers"))
    vocab = _int(raw, "vocab_size", raw.get("vocab_size"))

    taps = get("target_layer_ids")
    if not isinstance(taps, (list, tuple)) or not taps or not all(isinstance(t, int) and t >= 0 for t in taps):
        raise ValueError(f"drafter config: 'target_layer_ids' must be a non-empty list of layer ids, got {taps!r}")
    if list(taps) != sorted(set(taps)):
        raise ValueError(f"drafter config: 'target_layer_ids' must be strictly increasing, got {list(taps)}")
    mask_id = get("mask_token_id")
    if mask_id is None and str(raw.get("model_type", "")).startswith("gemma4") and not gemma4:
        mask_id = 4  # z-lab's Gemma-4 DFlash convention
    if mask_id is None:
        raise ValueError("drafter config: 'mask_token_id' is missing")
    if isinstance(mask_id, bool) or not isinstance(mask_id, int) or not 0 <= mask_id < vocab:
        raise ValueError(f"drafter config: 'mask_token_id' {mask_id!r} is outside the vocabulary (0..{vocab - 1})")
    num_target = get("num_target_layers")
    if num_target is not None:
        _int(raw, "num_target_layers", num_target)

    block = get("block_size")
    if block is None:
        raise ValueError("drafter config: 'block_size' is missing")
    block = _int(raw, "block_size", block)
    if kind == "dspark":
        proposals = block if gemma4 else block - 1 if raw.get("dspark_bonus_anchor") else block
        sample_from_anchor = bool(get("sample_from_anchor", True))
    else:
        proposals = block - 1 if layout == "dflash_config" else block  # z-lab counts the anchor
        sample_from_anchor = False
    proposals = _int(raw, "block_size", proposals)
    runtime = get("runtime_block_size")
    default_proposals = proposals if runtime is None else max(1, min(proposals, int(runtime) - 1))

    layer_types = tuple(raw.get("layer_types") or ("full_attention",) * layers)
    if len(layer_types) != layers or any(t not in ("full_attention", "sliding_attention") for t in layer_types):
        raise ValueError(f"drafter config: 'layer_types' must name full_attention/sliding_attention once per layer, got {list(layer_types)}")
    window = get("swa_window_size", raw.get("sliding_window"))
    if "sliding_attention" in layer_types and not window:
        raise ValueError("drafter config: 'sliding_window' is required for sliding_attention layers")

    rope_theta, rope_scaling = rope_settings(raw)
    markov_rank = int(get("markov_rank", 256 if kind == "dspark" else 0) or 0)
    if kind == "dspark":
        _int(raw, "markov_rank", markov_rank)
    softcap = raw.get("final_logit_softcapping")
    intermediate = _int(raw, "intermediate_size", raw.get("intermediate_size"))
    head_dim = _int(raw, "head_dim", raw.get("head_dim") or H // heads)
    max_positions = int(raw.get("max_position_embeddings", 32768))
    backbone = None
    if gemma4:
        backbone = drafters_gemma4.read_backbone(raw, layer_types, heads, head_dim, intermediate, max_positions)
        rope_theta, rope_scaling = float(backbone.rope_params(layer_types[0])["rope_theta"]), None
    return DrafterConfig(
        kind=kind,
        layout=layout,
        model_type=str(raw.get("model_type", "")),
        architectures=archs,
        hidden_size=H,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        rope_theta=float(rope_theta),
        rope_scaling=rope_scaling,
        rope_traditional=not bool(raw.get("rope_is_neox_style", True)),
        max_position_embeddings=max_positions,
        attention_bias=bool(raw.get("attention_bias", False)),
        final_logit_softcapping=float(softcap) if softcap else None,
        layer_types=layer_types,
        sliding_window=int(window) if window else None,
        causal=bool(nested.get("causal", raw.get("dflash_query_causal", False))),
        attention_sink_bias=bool(get("attention_sink_bias", False)),
        mask_token_id=mask_id,
        target_layer_ids=tuple(taps),
        num_target_layers=num_target,
        proposal_length=proposals,
        default_proposals=default_proposals,
        sample_from_anchor=sample_from_anchor,
        markov_rank=markov_rank if kind == "dspark" else 0,
        enable_confidence_head=kind == "dspark" and bool(get("enable_confidence_head", False)),
        confidence_head_with_markov=bool(get("confidence_head_with_markov", True)),
        quantization=raw.get("quantization"),
        gemma4=backbone,
        raw=raw,
    )


# --------------------------------------------------------------------------- binding / loading


def _family(model_type: str) -> str:
    t = model_type.lower()
    for fam in ("gemma", "qwen", "llama", "mistral"):
        if t.startswith(fam):
            return "llama" if fam == "mistral" else fam
    return t


@dataclass
class Drafter:
    """A loaded DSpark/DFlash drafter bound to one target model.

    ``module`` holds the drafter weights (owned; share it across generations). ``embed(tokens
    (1, L)) -> (1, L, H)`` and ``head(h) -> logits (.., V)`` are the checkpoint's own embedding/head
    if it ships them, else the target's (bound, not copied). The per-generation context cache lives
    in the proposer, not here.
    """

    config: DrafterConfig
    module: nn.Module  # BlockDrafterModel, or gemma4.Gemma4DSparkDrafterModel
    target_model: nn.Module
    path: Optional[Path] = None
    embed_scale: float = 1.0
    packed: Optional[nn.Module] = None  # the checkpoint's quantized module when ``module`` was unpacked

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def tap_layers(self) -> Tuple[int, ...]:
        return self.config.target_layer_ids

    def embed(self, tokens: mx.array) -> mx.array:
        table = self.module.embed_tokens if "embed_tokens" in self.module else self.target_model.model.embed_tokens
        h = table(tokens)
        return h * mx.array(self.embed_scale, dtype=h.dtype) if self.embed_scale != 1.0 else h

    def head(self, h: mx.array) -> mx.array:
        own = "lm_head" in self.module  # else the target's (tied or not), without the target's soft-capping
        out = self.module.lm_head(h) if own else lm_head(self.target_model, h, softcap=False)
        cap = self.config.final_logit_softcapping
        return mx.tanh(out / cap) * cap if cap else out

    def make_cache(self) -> List[KVCache]:
        return [KVCache() for _ in self.module.layers]

    def bind(self, target_model: nn.Module) -> "Drafter":
        """The same weights bound to another target (validated)."""
        if isinstance(target_model, TargetAdapter):
            target_model = target_model.model
        validate_against_target(self.config, target_model)
        return replace(self, target_model=target_model, embed_scale=drafter_embed_scale(target_model, self.config))


def drafter_embed_scale(target_model: nn.Module, c: Optional[DrafterConfig] = None) -> float:
    """The factor a drafter scales its embedding by: its own (Gemma-4 DSpark) or its target's."""
    if c is not None and c.gemma4 is not None:  # owns its embedding and its scale
        return drafters_gemma4.embed_scale(c)
    # Gemma targets scale their embedding by sqrt(H): Gemma-4 keeps it as ``embed_scale``, Gemma-3
    # rounds it through bfloat16 in its forward; the drafter embeds the way its target does.
    scale = getattr(getattr(target_model, "model", None), "embed_scale", None)
    if isinstance(scale, (int, float)):
        return float(scale)
    t = TargetAdapter(target_model)
    if t.model_type.startswith("gemma"):
        return float(mx.array(t.hidden_size**0.5, mx.bfloat16).astype(mx.float32).item())
    return 1.0


def validate_against_target(c: DrafterConfig, target_model: nn.Module) -> None:
    """Raise one ``ValueError`` naming the config key that does not fit ``target_model``."""
    t = TargetAdapter(target_model)
    name = f"{c.kind} drafter"
    if t.hidden_size and c.hidden_size != t.hidden_size:
        raise ValueError(f"{name}: 'hidden_size' {c.hidden_size} differs from the target's hidden size {t.hidden_size}")
    if c.vocab_size != t.vocab_size:
        raise ValueError(f"{name}: 'vocab_size' {c.vocab_size} differs from the target's vocabulary {t.vocab_size}")
    bad = [i for i in c.target_layer_ids if i >= t.num_layers]
    if bad:
        raise ValueError(
            f"{name}: 'target_layer_ids' {list(c.target_layer_ids)} reach layer(s) {bad}, but the target has "
            f"{t.num_layers} decoder layers (ids 0..{t.num_layers - 1})"
        )
    if c.num_target_layers is not None and c.num_target_layers != t.num_layers:
        raise ValueError(
            f"{name}: 'num_target_layers' {c.num_target_layers} differs from the target's depth {t.num_layers} "
            "(the drafter was trained for another target)"
        )
    # DeepSpec-native configs are copies of the target's config, so model_type names the target
    # family; nested (z-lab) configs name the drafter backbone, which tells Gemma from the rest.
    if c.gemma4 is not None:
        problem = drafters_gemma4.check_target(c, t.model_type)
        if problem:
            raise ValueError(problem)
    mine, theirs = _family(c.model_type), _family(t.model_type)
    if any("Gemma" in a for a in c.architectures):
        mine = "gemma"
    if c.layout == "deepspec" and c.model_type and mine != theirs:
        raise ValueError(
            f"{name}: 'model_type' '{c.model_type}' says it was built for a {mine} target, "
            f"but the target is '{t.model_type}'"
        )
    if (mine == "gemma") != (theirs == "gemma"):
        raise ValueError(
            f"{name}: 'model_type' '{c.model_type}' / architectures {list(c.architectures)} belong to another "
            f"target family than the target '{t.model_type}'"
        )


def _quant_params(spec) -> Optional[dict]:
    if spec is None or spec is False:
        return None
    if isinstance(spec, int):
        spec = {"bits": spec}
    spec = {"group_size": 64, **dict(spec)}
    if spec.get("bits") not in (2, 3, 4, 5, 6, 8):
        raise ValueError(f"drafter quantization: bits must be one of 2, 3, 4, 5, 6, 8, got {spec.get('bits')!r}")
    return {"group_size": int(spec["group_size"]), "bits": int(spec["bits"])}


def _quantizable(group_size: int):
    def predicate(path: str, module: nn.Module) -> bool:
        if not hasattr(module, "to_quantized") or path.startswith("confidence_head"):
            return False
        return module.weight.shape[-1] % group_size == 0

    return predicate


def build_module(c: DrafterConfig, weights: Dict[str, mx.array], module: Optional[nn.Module] = None) -> nn.Module:
    """Build the module for ``c`` (or take ``module``, a variant's), check names and shapes of
    ``weights`` strictly, load them."""
    hint = unexpected = lambda *a: ""  # noqa: E731
    if module is not None:
        pass
    elif c.gemma4 is not None:
        hint, unexpected = drafters_gemma4.shape_hint, drafters_gemma4.unexpected_hint
        module = drafters_gemma4.Gemma4DSparkDrafterModel(c)
    else:
        module = BlockDrafterModel(c, "embed_tokens.weight" in weights, "lm_head.weight" in weights)
    q = c.quantization
    if q:
        q = _quant_params(q)
        nn.quantize(module, q["group_size"], q["bits"], class_predicate=lambda p, m: f"{p}.scales" in weights)
    expected = dict(tree_flatten(module.parameters()))
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing:
        raise ValueError(f"{c.kind} drafter checkpoint: missing weight(s) {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if extra:
        raise ValueError(
            f"{c.kind} drafter checkpoint: unexpected weight(s) {extra[:8]}{' ...' if len(extra) > 8 else ''} "
            f"for this config{unexpected(c, extra)}"
        )
    for k, v in expected.items():
        if tuple(weights[k].shape) != tuple(v.shape):
            raise ValueError(
                f"{c.kind} drafter checkpoint: weight '{k}' has shape {tuple(weights[k].shape)}, "
                f"expected {tuple(v.shape)} from config.json{hint(c, k)}"
            )
    module.load_weights(list(weights.items()), strict=True)
    mx.eval(module.parameters())
    return module


def load_drafter(
    path: PathLike,
    target_model: nn.Module,
    *,
    quantize: Union[None, int, dict] = None,
    dtype: Optional[mx.Dtype] = None,
    trust_remote_code: bool = False,
    unpack: Optional[bool] = None,
) -> Drafter:
    """Load a DSpark/DFlash checkpoint folder and bind it to ``target_model`` (an mlx-lm model or
    a :class:`TargetAdapter`).

    ``quantize``: 4, 8 or ``{"bits": b, "group_size": g}`` quantizes the drafter's linear layers and
    embeddings at load (mlx's own affine quantization; norms and the confidence head stay in float).
    ``dtype`` casts float weights (e.g. ``mx.float32`` for checking, ``mx.bfloat16`` for speed).
    ``unpack``: compute with float32 copies of a quantized checkpoint's weights (the stored module
    is kept for :func:`save_drafter`); default: on the CPU only, where it is faster
    (:func:`unpack_by_default`), and never when ``quantize`` is given.
    Raises one ``ValueError`` naming the offending key for a config or weights that do not fit.
    """
    path = Path(path)
    raw = read_config(path, trust_remote_code)
    if isinstance(target_model, TargetAdapter):
        target_model = target_model.model
    other = _other_kind(raw)
    if other is not None:
        if quantize is not None:
            raise ValueError(f"quantize= is not supported for {other} drafters")
        module, _, loader = OTHER_KINDS[other]
        return getattr(_KIND_MODULES[module], loader)(path, target_model, raw=raw, dtype=dtype)
    config = normalize_config(raw)
    validate_against_target(config, target_model)
    weights = read_weights(path)
    if dtype is not None:
        weights = {k: v.astype(dtype) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
    module = build_module(config, weights)
    if quantize is not None and not config.quantization:
        q = _quant_params(quantize)
        nn.quantize(module, q["group_size"], q["bits"], class_predicate=_quantizable(q["group_size"]))
        config = replace(config, quantization=q, raw={**raw, "quantization": q})
        mx.eval(module.parameters())
    packed = None
    if config.quantization and (unpack if unpack is not None else quantize is None and unpack_by_default()):
        packed, module = module, unpack_quantized(build_module(config, weights))
    return Drafter(config, module, target_model, path, drafter_embed_scale(target_model, config), packed)


def unpack_quantized(module: nn.Module) -> nn.Module:
    """Replace ``module``'s quantized linears and embeddings by float32 ones holding the same
    (dequantized) weights, in place. On MLX's CPU backend a float32 matmul runs on the BLAS, many
    times faster than a quantized one for a drafter's few rows; the values are the ones the
    quantized kernels multiply by."""

    def unpack(_path, m):
        if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            w = mx.dequantize(m.weight, m.scales, m.get("biases"), m.group_size, m.bits).astype(mx.float32)
            if isinstance(m, nn.QuantizedEmbedding):
                out = nn.Embedding(*w.shape)
            else:
                out = nn.Linear(w.shape[1], w.shape[0], bias="bias" in m)
                if "bias" in m:
                    out.bias = m.bias
            out.weight = w
            return out
        return m

    module.update_modules(tree_map_with_path(unpack, module.leaf_modules(), is_leaf=nn.Module.is_module))
    mx.eval(module.parameters())
    return module


def unpack_by_default() -> bool:
    """Quantized drafters are unpacked to float32 on the CPU (faster there), kept packed elsewhere."""
    return mx.default_device() == mx.cpu


def save_drafter(drafter: Drafter, path: PathLike) -> Path:
    """Write ``drafter`` (e.g. quantized at load) as a checkpoint folder that :func:`load_drafter`
    reads back: the original config keys plus ``quantization`` when quantized."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    raw = dict(drafter.config.raw)
    if drafter.config.quantization:
        raw["quantization"] = drafter.config.quantization
    (path / "config.json").write_text(json.dumps(raw, indent=1))
    stored = drafter.packed if drafter.packed is not None else drafter.module
    mx.save_safetensors(str(path / "model.safetensors"), dict(tree_flatten(stored.parameters())))
    return path


def as_drafter(draft: Any, target_model: nn.Module, kind: str, **load_kwargs) -> Drafter:
    """``draft`` (a :class:`Drafter` or a checkpoint folder path) as a drafter of ``kind`` bound to
    ``target_model``; ``ValueError`` otherwise."""
    if isinstance(draft, (str, Path)):
        draft = load_drafter(draft, target_model, **load_kwargs)
    if not (isinstance(draft, Drafter) or (hasattr(draft, "bind") and getattr(draft, "kind", None) in OTHER_KINDS)):
        raise ValueError(
            f"draft strategy '{kind}' needs draft_model= a {kind} checkpoint folder or "
            f"mlx_specdec_plugin.load_drafter(path, model), got {type(draft).__name__}"
        )
    if draft.kind != kind:
        raise ValueError(f"the drafter is a {draft.kind} checkpoint; use draft_strategy='{draft.kind}'")
    if draft.target_model is not target_model:
        draft = draft.bind(target_model)
    return draft


def claims(draft: Any, kind: str) -> bool:
    """True for a loaded drafter of ``kind`` or a folder whose config.json is one."""
    if isinstance(draft, Drafter) or (hasattr(draft, "bind") and getattr(draft, "kind", None) in OTHER_KINDS):
        return draft.kind == kind
    if isinstance(draft, (str, Path)):
        try:
            cfg = Path(draft) / "config.json"
            return cfg.is_file() and detect_kind(json.loads(cfg.read_text())) == kind
        except (ValueError, OSError):
            return False
    return False
