"""Native multi-token-prediction (MTP) heads, read from the target's own checkpoint folder.

mlx-lm drops a model's MTP weights when it loads it; :func:`load_mtp` reads them back from the
same folder (``draft_model=`` the target's folder) and binds them to the loaded target. Families:

* **Qwen3.5 / Qwen3-Next** (``model_type`` ``qwen3_5``, ``qwen3_5_moe``, ``qwen3_next``; config
  ``mtp_num_hidden_layers``, in ``text_config`` for Qwen3.5): top-level ``mtp.*`` tensors
  ``pre_fc_norm_embedding``, ``pre_fc_norm_hidden``, ``fc`` (2H -> H), ``layers.{i}.*`` (the
  family's full-attention decoder layer, gated attention, dense or MoE MLP) and ``norm``. Step:
  ``x = fc([norm_e(embed(t+1)) ; norm_h(h_t)])``, the layers over x with their own KV cache,
  ``out = norm(x)``; logits are the target's head on ``out``, and ``out`` is the next step's
  feature. In a Hugging Face checkpoint (safetensors not marked ``format: mlx``) the norms are
  zero-centred and read as ``1 + w``, as mlx-lm reads the main model's.

* **DeepSeek-V3 / V3.2, GLM-5, GLM-4.7-Flash** (``model_type`` ``deepseek_v3``, ``deepseek_v32``,
  ``kimi_k2``, ``glm_moe_dsa``, ``glm4_moe_lite``; config ``num_nextn_predict_layers``): the MTP
  module is stored as one more decoder layer, ``model.layers.{num_hidden_layers}.*``: ``enorm``,
  ``hnorm``, ``eh_proj`` (2H -> H), the family's full decoder layer (``input_layernorm``,
  ``self_attn.*`` (MLA, Hugging Face ``kv_b_proj``), ``post_attention_layernorm``, ``mlp.*``
  (MoE with per-expert tensors, or dense)) and ``shared_head.norm``. Step:
  ``x = eh_proj([enorm(embed(t+1)) ; hnorm(h_t)])``, the layer over x with its own cache (the
  target's cache kind for one layer: MLA's KV, DSA's KV + indexer keys), ``out = shared_head.norm(x)``.
  The layer's tensors go through the target's own mlx-lm ``sanitize`` (its ``kv_b_proj`` split,
  expert stacking, fp8 dequantisation), renamed to layer 0 for it. The module's ``embed_tokens`` and
  ``shared_head.head`` are the main model's (DeepSeek-V3 shares them; the checkpoint's copies are
  not read). With ``num_nextn_predict_layers`` > 1 only the first module (layer
  ``num_hidden_layers``) drafts, chained on its own output.

The target feature ``h_t`` is the target's final-normed hidden state (the input of its LM head):
the proposer taps the last decoder layer and applies the target's own final norm. The decoder
layer is an instance of the target's own mlx-lm layer class, built with the target's args.
Drafting, caching and rollback are :class:`~.strategies.feature_chain.FeatureChainProposer`'s.
A config that declares MTP layers whose folder holds no MTP tensors (an mlx-lm conversion) is
one clear error, as is any missing or mis-shaped MTP tensor.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.models.base import create_attention_mask
from mlx_lm.models.cache import CacheList, KVCache

from ..target import TargetAdapter, lm_head, text_model
from .config import check_weights

PathLike = Union[str, Path]
KIND = "mtp"
QWEN_TYPES = ("qwen3_5", "qwen3_5_moe", "qwen3_next")
DEEPSEEK_TYPES = ("deepseek_v3", "deepseek_v32", "kimi_k2", "glm_moe_dsa", "glm4_moe_lite")
# DeepSeek-style module tensors that are the main model's (shared) and not read
_DEEPSEEK_SHARED = ("embed_tokens.weight", "shared_head.head.weight")
_QWEN_NORMS = (".input_layernorm.weight", ".post_attention_layernorm.weight", ".q_norm.weight", ".k_norm.weight",
               "norm.weight", "pre_fc_norm_embedding.weight", "pre_fc_norm_hidden.weight")


def _text(raw: dict) -> dict:
    return raw.get("text_config") if isinstance(raw.get("text_config"), dict) else raw


def mtp_family(raw: dict) -> Optional[str]:
    """``"qwen"`` for a model config of a supported family that declares MTP layers, else ``None``."""
    text = _text(raw)
    model_type = str(raw.get("model_type") or text.get("model_type") or "")
    if model_type in QWEN_TYPES and int(text.get("mtp_num_hidden_layers") or 0) > 0:
        return "qwen"
    if model_type in DEEPSEEK_TYPES and int(text.get("num_nextn_predict_layers") or 0) > 0:
        return "deepseek"
    return None


def is_mtp(raw: dict) -> bool:
    return mtp_family(raw) is not None


@dataclass(frozen=True)
class MtpConfig:
    family: str  # "qwen" | "deepseek"
    model_type: str
    depth: int  # MTP layers, stacked in one module
    hidden_size: int
    vocab_size: int
    num_hidden_layers: int
    rms_norm_eps: float
    default_proposals: int


def normalize_config(raw: dict) -> MtpConfig:
    family = mtp_family(raw)
    if family is None:
        raise ValueError(f"config.json declares no MTP layers of a supported family ({', '.join(QWEN_TYPES)}: "
                         f"mtp_num_hidden_layers; {', '.join(DEEPSEEK_TYPES)}: num_nextn_predict_layers)")
    text = _text(raw)
    depth = int(text.get("mtp_num_hidden_layers" if family == "qwen" else "num_nextn_predict_layers"))
    return MtpConfig(
        family=family,
        model_type=str(raw.get("model_type") or text.get("model_type")),
        depth=depth,
        hidden_size=int(text["hidden_size"]),
        vocab_size=int(text["vocab_size"]),
        num_hidden_layers=int(text["num_hidden_layers"]),
        rms_norm_eps=float(text.get("rms_norm_eps", 1e-6)),
        default_proposals=depth + 1 if family == "qwen" else 2,
    )


# --------------------------------------------------------------------------- modules


class QwenMtpModule(nn.Module):
    """Qwen3.5 / Qwen3-Next ``mtp.*`` (names as in the checkpoint, ``mtp.`` stripped)."""

    def __init__(self, c: MtpConfig, make_layer):
        super().__init__()
        H = c.hidden_size
        self.pre_fc_norm_embedding = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.pre_fc_norm_hidden = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.fc = nn.Linear(2 * H, H, bias=False)
        self.layers = [make_layer() for _ in range(c.depth)]
        self.norm = nn.RMSNorm(H, eps=c.rms_norm_eps)

    def __call__(self, embeds: mx.array, hidden: mx.array, caches: List[KVCache]) -> mx.array:
        x = self.fc(mx.concatenate([self.pre_fc_norm_embedding(embeds), self.pre_fc_norm_hidden(hidden)], axis=-1))
        mask = create_attention_mask(x, caches[0])
        for layer, cache in zip(self.layers, caches):
            x = layer(x, mask, cache)
        return self.norm(x)


class DeepseekMtpModule(nn.Module):
    """DeepSeek-V3-style MTP module: ``enorm``, ``hnorm``, ``eh_proj``, one decoder layer of the
    target's class (``block``) and ``shared_head_norm`` (the checkpoint's ``shared_head.norm``)."""

    def __init__(self, c: MtpConfig, make_layer):
        super().__init__()
        H = c.hidden_size
        self.enorm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.hnorm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * H, H, bias=False)
        self.block = make_layer()
        self.shared_head_norm = nn.RMSNorm(H, eps=c.rms_norm_eps)

    def __call__(self, embeds: mx.array, hidden: mx.array, caches: List) -> mx.array:
        x = self.eh_proj(mx.concatenate([self.enorm(embeds), self.hnorm(hidden)], axis=-1))
        cache = caches[0]
        kv = cache[0] if isinstance(cache, CacheList) else cache
        x = self.block(x, create_attention_mask(x, kv, return_array=True), cache)
        return self.shared_head_norm(x)


# --------------------------------------------------------------------------- drafter


@dataclass
class MtpDrafter:
    """A target's MTP head bound to the loaded target (``module`` owned; caches per proposer)."""

    config: MtpConfig
    module: nn.Module
    target_model: nn.Module
    path: Optional[Path] = None
    kind: str = KIND

    @property
    def tap_layers(self) -> Tuple[int, ...]:
        return (TargetAdapter(self.target_model).num_layers - 1,)

    @property
    def default_proposals(self) -> int:
        return self.config.default_proposals

    def make_cache(self) -> List:
        if self.config.family == "deepseek":  # one layer's cache of the target's kind (DSA: KV + indexer keys)
            make = getattr(self.target_model, "make_cache", None)
            return [make()[-1]] if make is not None else [KVCache()]
        return [KVCache() for _ in range(self.config.depth)]

    def embed(self, tokens: mx.array) -> mx.array:
        return text_model(self.target_model).model.embed_tokens(tokens)

    def project(self, tapped: mx.array) -> mx.array:
        """The last decoder layer's output -> the target's final-normed hidden state."""
        return text_model(self.target_model).model.norm(tapped)

    def step(self, embeds: mx.array, features: mx.array, cache: List[KVCache]) -> mx.array:
        return self.module(embeds, features, cache)

    def head(self, out: mx.array) -> mx.array:
        return lm_head(self.target_model, out)

    def bind(self, target_model: nn.Module) -> "MtpDrafter":
        if isinstance(target_model, TargetAdapter):
            target_model = target_model.model
        validate_against_target(self.config, target_model)
        weights = dict(tree_flatten(self.module.parameters()))
        return replace(self, module=_build(self.config, target_model, weights), target_model=target_model)


def validate_against_target(c: MtpConfig, target_model: nn.Module) -> None:
    t = TargetAdapter(target_model)
    if t.model_type != c.model_type:
        raise ValueError(f"mtp: the MTP heads belong to a '{c.model_type}' model, the target is '{t.model_type}'")
    if (c.num_hidden_layers, c.hidden_size, c.vocab_size) != (t.num_layers, t.hidden_size, t.vocab_size):
        raise ValueError(
            f"mtp: the MTP heads belong to a model of {c.num_hidden_layers} layers, hidden size {c.hidden_size}, "
            f"vocabulary {c.vocab_size}; the target has {t.num_layers}, {t.hidden_size}, {t.vocab_size}. MTP "
            "drafting reads the heads from the target's own checkpoint folder (draft_model= that folder)"
        )


def _layer_factory(c: MtpConfig, target_model: nn.Module):
    """A fresh full-attention decoder layer of the target's own class and args (DeepSeek: built
    as layer ``num_hidden_layers``, so the family's own rule picks its MoE or dense MLP)."""
    tm = text_model(target_model)
    layers = list(target_model.layers)
    if c.family == "deepseek":
        cls = type(layers[-1])
        return lambda: cls(tm.args, c.num_hidden_layers)
    idx = next((i for i, l in enumerate(layers) if not getattr(l, "is_linear", False)), None)
    if idx is None:
        raise ValueError("mtp: the target has no full-attention layer to build the MTP layer from")
    cls, args = type(layers[idx]), tm.args
    return lambda: cls(args, idx)


def _build(c: MtpConfig, target_model: nn.Module, weights: Dict[str, mx.array]) -> nn.Module:
    module = (DeepseekMtpModule if c.family == "deepseek" else QwenMtpModule)(c, _layer_factory(c, target_model))
    check_weights(dict(tree_flatten(module.parameters())), weights, "mtp checkpoint", "MTP weight")
    module.load_weights(list(weights.items()), strict=True)
    mx.eval(module.parameters())
    return module


def _shards(path: Path, wanted) -> List[Path]:
    """The safetensors files that hold wanted keys (the index's weight map when there is one)."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        return sorted({path / f for k, f in weight_map.items() if wanted(k)})
    return sorted(p for p in path.glob("*.safetensors") if p.name != "consolidated.safetensors")


def _stack_experts(weights: Dict[str, mx.array]) -> Dict[str, mx.array]:
    """Hugging Face per-expert MLPs (``experts.{e}.{gate,up,down}_proj.weight``, or a fused
    ``experts.gate_up_proj``) as mlx-lm's ``switch_mlp`` stacks."""
    pattern = re.compile(r"(.*)\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
    groups: Dict[Tuple[str, str], Dict[int, str]] = {}
    for k in weights:
        m = pattern.fullmatch(k)
        if m:
            groups.setdefault((m.group(1), m.group(3)), {})[int(m.group(2))] = k
    for (prefix, proj), keys in groups.items():
        if sorted(keys) != list(range(len(keys))):
            raise ValueError(f"mtp checkpoint: expert indices of {prefix} are not 0..{len(keys) - 1}")
        weights[f"{prefix}.switch_mlp.{proj}.weight"] = mx.stack([weights.pop(keys[e]) for e in sorted(keys)])
    for k in [k for k in weights if k.endswith(".experts.gate_up_proj")]:
        prefix = k[: -len(".experts.gate_up_proj")]
        gate, up = mx.split(weights.pop(k), 2, axis=-2)
        weights[f"{prefix}.switch_mlp.gate_proj.weight"] = gate
        weights[f"{prefix}.switch_mlp.up_proj.weight"] = up
        weights[f"{prefix}.switch_mlp.down_proj.weight"] = weights.pop(f"{prefix}.experts.down_proj")
    return weights


def _read_deepseek_weights(path: Path, c: MtpConfig, target_model: nn.Module) -> Dict[str, mx.array]:
    """``model.layers.{N}.*`` renamed to :class:`DeepseekMtpModule`'s names; the decoder layer's
    tensors pass through the target's own mlx-lm ``sanitize`` (as layer 0: MLA ``kv_b_proj`` split,
    expert stacking, fp8 dequantisation)."""
    prefix = f"model.layers.{c.num_hidden_layers}."
    wanted = lambda k: k.startswith(prefix)  # noqa: E731
    own: Dict[str, mx.array] = {}
    layer: Dict[str, mx.array] = {}
    for f in _shards(path, wanted):
        for k, v in mx.load(str(f)).items():
            if not wanted(k):
                continue
            name = k[len(prefix):]
            if name in _DEEPSEEK_SHARED or name.endswith("rotary_emb.inv_freq"):
                continue
            if name in ("enorm.weight", "hnorm.weight", "eh_proj.weight"):
                own[name] = v
            elif name == "shared_head.norm.weight":
                own["shared_head_norm.weight"] = v
            else:
                layer[f"model.layers.0.{name}"] = v
    experts: Dict[str, set] = {}
    for k in layer:
        m = re.fullmatch(r"model\.layers\.0\.mlp\.experts\.(\d+)\.(\w+)\.weight", k)
        if m:
            experts.setdefault(m.group(2), set()).add(int(m.group(1)))
    n = getattr(text_model(target_model).args, "n_routed_experts", None) or 0
    for proj, ids in sorted(experts.items()):
        if ids != set(range(n)):
            missing = sorted(set(range(n)) - ids)
            raise ValueError(f"mtp checkpoint: {prefix}mlp.experts.*.{proj} holds experts {sorted(ids)[:8]}, "
                             f"n_routed_experts is {n}" + (f" (missing {missing[:8]})" if missing else ""))
    if layer:
        sanitize = getattr(text_model(target_model), "sanitize", None)
        if sanitize is not None:
            layer = sanitize(layer)
        own.update({"block." + k[len("model.layers.0."):]: v for k, v in layer.items()
                    if k.startswith("model.layers.0.")})
    return own


def read_mtp_weights(path: Path, c: MtpConfig, target_model: Optional[nn.Module] = None) -> Dict[str, mx.array]:
    """The MTP tensors of a checkpoint folder, renamed to the module's names; ``{}`` if none."""
    if c.family == "deepseek":
        return _read_deepseek_weights(path, c, target_model)
    prefixes = ("mtp.", "model.mtp.", "language_model.mtp.")
    wanted = lambda k: k.startswith(prefixes)  # noqa: E731
    out: Dict[str, mx.array] = {}
    for f in _shards(path, wanted):
        tensors, meta = mx.load(str(f), return_metadata=True)
        hf = (meta or {}).get("format") != "mlx"
        for k, v in tensors.items():
            if not wanted(k):
                continue
            name = k[len(next(p for p in prefixes if k.startswith(p))) :]
            if hf and name.endswith(_QWEN_NORMS) and v.ndim == 1:
                v = v + 1.0  # zero-centred RMSNorm weights, as mlx-lm reads the main model's
            if name.endswith("rotary_emb.inv_freq"):
                continue
            out[name] = v
    return _stack_experts(out)


def load_mtp(path: PathLike, target_model: nn.Module, *, raw: Optional[dict] = None,
             dtype: Optional[mx.Dtype] = None) -> MtpDrafter:
    """Read the MTP head of the checkpoint folder ``path`` (the target's own) and bind it."""
    path = Path(path)
    if raw is None:
        raw = json.loads((path / "config.json").read_text())
    c = normalize_config(raw)
    if isinstance(target_model, TargetAdapter):
        target_model = target_model.model
    validate_against_target(c, target_model)
    weights = read_mtp_weights(path, c, target_model)
    if not weights:
        where = "mtp.*" if c.family == "qwen" else f"model.layers.{c.num_hidden_layers}.*"
        raise ValueError(
            f"mtp: {path} declares {c.depth} MTP layer(s) but its safetensors hold no MTP weights ({where}); "
            "mlx-lm conversions drop them: point draft_model at the original checkpoint folder"
        )
    if dtype is not None:
        weights = {k: v.astype(dtype) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
    return MtpDrafter(c, _build(c, target_model, weights), target_model, path)
