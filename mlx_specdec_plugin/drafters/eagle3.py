"""EAGLE-3 drafters: checkpoint reading, validation, the module and its tap convention.

``load_eagle3(path, target_model)`` reads an EAGLE-3 head as it is published, in either layout:

* **Speculators** (vLLM's ``*-speculator.eagle3``, what mlx-vlm 0.7.10 reads):
  ``speculators_model_type: "eagle3"`` (or ``model_type: "eagle3"``), the decoder shape in
  ``transformer_layer_config``, ``draft_vocab_size``, ``norm_before_residual``, optional
  ``target_hidden_size`` and ``eagle_aux_hidden_state_layer_ids``; ``speculators_config.
  proposal_methods[0].speculative_tokens`` is the trained draft length. Weights ``fc``,
  ``layers.{i}.*`` (layer 0 takes ``[norm(embed) ; hidden_norm(h)]``, 2H wide), ``norm``,
  ``lm_head``, ``d2t``, ``t2d``, optionally ``embed_tokens`` and ``verifier_*`` (ignored).
* **SpecForge / SGLang** (``*EAGLE3*`` repos trained with SpecForge or the EAGLE authors' code):
  a flat Llama config with ``architectures: ["LlamaForCausalLMEagle3"]`` and ``draft_vocab_size``,
  the aux layers (if any) in ``eagle_config.eagle_aux_hidden_state_layer_ids``; the decoder layer
  is stored as ``midlayer.*`` (read as ``layers.0.*``).

**Taps.** The drafter reads three (any number, as ``fc`` says) target hidden states, low / mid /
high, concatenated. Conventions differ by layout and are normalised to our tap ids (tap ``i`` =
output of decoder layer ``i``): speculators' top-level ids are Hugging Face ``hidden_states``
indices (vLLM captures the *input* of layer ``id``), so tap = ``id - 1``; SGLang's
``eagle_config`` ids are layer outputs (tap = ``id``). Without ids, vLLM's and SGLang's default
``[2, n // 2, n - 3]`` input-of-layer ids of the *target* depth ``n`` are used (mlx-vlm 0.7.10
takes ``n`` from the one-layer drafter instead). Id 0 (the embedding output) is refused.

**Draft vocabulary.** With ``draft_vocab_size < vocab_size`` the head predicts ``Vd`` tokens;
draft id ``d`` is target token ``d + d2t[d]``. ``t2d`` (the inverse mask) is checked, not needed.
The proposer spreads the ``Vd`` logits over the target vocabulary with ``-inf`` elsewhere, so the
reported ``q`` is a distribution over target tokens (zero outside the draft vocabulary).

Checkpoint code is never executed; every problem is one ``ValueError`` naming the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten
from mlx_lm.models.base import create_attention_mask, scaled_dot_product_attention
from mlx_lm.models.cache import KVCache
from mlx_lm.models.rope_utils import initialize_rope

from ..target import TargetAdapter, text_model
from .config import check_weights, rope_settings
from .config import read_weights as read_config_weights

PathLike = Union[str, Path]
KIND = "eagle3"


def is_eagle3(raw: dict) -> bool:
    """True for a config.json of either EAGLE-3 layout."""
    archs = " ".join(str(a) for a in raw.get("architectures") or ())
    return (
        str(raw.get("speculators_model_type", "")).lower() == "eagle3"
        or str(raw.get("model_type", "")).lower() == "eagle3"
        or "Eagle3" in archs
    )


@dataclass(frozen=True)
class Eagle3Config:
    """An EAGLE-3 checkpoint's config, layout-independent.

    ``aux_ids`` are the checkpoint's own layer ids; ``aux_is_layer_output`` says whether they
    already are our tap ids (SGLang) or ``hidden_states`` indices (speculators: tap = id - 1);
    ``None`` ids mean "the default for the target's depth" (resolved by :func:`taps_for`).
    """

    layout: str  # "speculators" | "specforge"
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    draft_vocab_size: int
    target_hidden_size: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: Optional[dict]
    rope_traditional: bool
    max_position_embeddings: int
    attention_bias: bool
    norm_before_residual: bool
    norm_before_fc: bool
    tie_word_embeddings: bool
    aux_ids: Optional[Tuple[int, ...]]
    aux_is_layer_output: bool
    default_proposals: int
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def uses_draft_vocab(self) -> bool:
        return self.draft_vocab_size != self.vocab_size


def _int(key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"eagle3 drafter config: '{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def normalize_config(raw: dict) -> Eagle3Config:
    """Normalise a speculators or SpecForge EAGLE-3 config (see the module docstring)."""
    speculators = isinstance(raw.get("transformer_layer_config"), dict)
    text = raw["transformer_layer_config"] if speculators else raw
    act = text.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise ValueError(f"eagle3 drafter config: 'hidden_act' {act!r} is not supported (the layer is SwiGLU)")
    H = _int("hidden_size", text.get("hidden_size"))
    heads = _int("num_attention_heads", text.get("num_attention_heads"))
    kv = _int("num_key_value_heads", text.get("num_key_value_heads", heads))
    if heads % kv:
        raise ValueError(f"eagle3 drafter config: 'num_attention_heads' {heads} is not a multiple of 'num_key_value_heads' {kv}")
    vocab = _int("vocab_size", text.get("vocab_size"))
    draft_vocab = _int("draft_vocab_size", raw.get("draft_vocab_size", vocab))
    if draft_vocab > vocab:
        raise ValueError(f"eagle3 drafter config: 'draft_vocab_size' {draft_vocab} exceeds 'vocab_size' {vocab}")
    if speculators:
        ids = raw.get("eagle_aux_hidden_state_layer_ids")
        layer_output = False
    else:
        ids = (raw.get("eagle_config") or {}).get("eagle_aux_hidden_state_layer_ids")
        layer_output = True
    if ids is not None:
        if not isinstance(ids, (list, tuple)) or not ids or not all(isinstance(i, int) and i >= 0 for i in ids):
            raise ValueError(f"eagle3 drafter config: 'eagle_aux_hidden_state_layer_ids' must be a list of layer ids, got {ids!r}")
        ids = tuple(ids)
    proposals = None
    methods = (raw.get("speculators_config") or {}).get("proposal_methods") or []
    if methods and isinstance(methods[0], dict) and methods[0].get("speculative_tokens") is not None:
        proposals = _int("speculative_tokens", methods[0]["speculative_tokens"])
    elif raw.get("block_size") is not None:
        proposals = max(1, _int("block_size", raw["block_size"]) - 1)
    rope_theta, rope_scaling = rope_settings(text)
    return Eagle3Config(
        layout="speculators" if speculators else "specforge",
        hidden_size=H,
        intermediate_size=_int("intermediate_size", text.get("intermediate_size")),
        num_hidden_layers=_int("num_hidden_layers", text.get("num_hidden_layers", 1)),
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=_int("head_dim", text.get("head_dim") or H // heads),
        vocab_size=vocab,
        draft_vocab_size=draft_vocab,
        target_hidden_size=_int("target_hidden_size", raw.get("target_hidden_size") or H),
        rms_norm_eps=float(text.get("rms_norm_eps", 1e-6)),
        rope_theta=float(rope_theta),
        rope_scaling=rope_scaling,
        rope_traditional=bool(text.get("rope_traditional", False)),
        max_position_embeddings=int(text.get("max_position_embeddings", 131072)),
        attention_bias=bool(text.get("attention_bias", False)),
        norm_before_residual=bool(raw.get("norm_before_residual", False)),
        norm_before_fc=bool(raw.get("norm_before_fc", False)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        aux_ids=ids,
        aux_is_layer_output=layer_output,
        default_proposals=proposals or 3,
        raw=raw,
    )


def taps_for(c: Eagle3Config, num_target_layers: int) -> Tuple[int, ...]:
    """Our tap ids (layer outputs) for a target of ``num_target_layers`` decoder layers."""
    if c.aux_ids is None:
        n = num_target_layers
        ids, layer_output = (2, n // 2, n - 3), False
    else:
        ids, layer_output = c.aux_ids, c.aux_is_layer_output
    if layer_output:
        return tuple(ids)
    if 0 in ids:
        raise ValueError(
            f"eagle3 drafter: 'eagle_aux_hidden_state_layer_ids' {list(ids)} names hidden state 0 (the embedding "
            "output), which is not a decoder layer output"
        )
    return tuple(i - 1 for i in ids)


# --------------------------------------------------------------------------- modules


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        return self.down_proj(nn.silu(self.gate_proj(x)) * self.up_proj(x))


class _Attention(nn.Module):
    """Causal self-attention over the drafter's own cache; ``in_dim`` is 2H in layer 0."""

    def __init__(self, c: Eagle3Config, in_dim: int, rope):
        super().__init__()
        hd, bias = c.head_dim, c.attention_bias
        self.n_heads, self.n_kv, self.scale = c.num_attention_heads, c.num_key_value_heads, hd**-0.5
        self.q_proj = nn.Linear(in_dim, self.n_heads * hd, bias=bias)
        self.k_proj = nn.Linear(in_dim, self.n_kv * hd, bias=bias)
        self.v_proj = nn.Linear(in_dim, self.n_kv * hd, bias=bias)
        self.o_proj = nn.Linear(self.n_heads * hd, c.hidden_size, bias=bias)
        self._rope = [rope]  # shared, not a parameter

    def __call__(self, x: mx.array, mask, cache: KVCache) -> mx.array:
        B, L, _ = x.shape
        rope = self._rope[0]
        q = self.q_proj(x).reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)
        k = self.k_proj(x).reshape(B, L, self.n_kv, -1).transpose(0, 2, 1, 3)
        v = self.v_proj(x).reshape(B, L, self.n_kv, -1).transpose(0, 2, 1, 3)
        q, k = rope(q, offset=cache.offset), rope(k, offset=cache.offset)
        k, v = cache.update_and_fetch(k, v)
        o = scaled_dot_product_attention(q, k, v, cache=cache, scale=self.scale, mask=mask)
        return self.o_proj(o.transpose(0, 2, 1, 3).reshape(B, L, -1))


class _FirstLayer(nn.Module):
    """Layer 0: attention over ``[input_layernorm(embed) ; hidden_norm(h)]``; the residual is ``h``
    (or ``hidden_norm(h)`` with ``norm_before_residual``)."""

    def __init__(self, c: Eagle3Config, rope):
        super().__init__()
        H = c.hidden_size
        self.input_layernorm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.hidden_norm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.self_attn = _Attention(c, 2 * H, rope)
        self.post_attention_layernorm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.mlp = _MLP(H, c.intermediate_size)
        self.norm_before_residual = c.norm_before_residual

    def __call__(self, embeds: mx.array, hidden: mx.array, mask, cache: KVCache) -> mx.array:
        h_normed = self.hidden_norm(hidden)
        residual = h_normed if self.norm_before_residual else hidden
        x = mx.concatenate([self.input_layernorm(embeds), h_normed], axis=-1)
        h = residual + self.self_attn(x, mask, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class _Layer(nn.Module):
    def __init__(self, c: Eagle3Config, rope):
        super().__init__()
        H = c.hidden_size
        self.input_layernorm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.self_attn = _Attention(c, H, rope)
        self.post_attention_layernorm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.mlp = _MLP(H, c.intermediate_size)

    def __call__(self, x: mx.array, mask, cache: KVCache) -> mx.array:
        h = x + self.self_attn(self.input_layernorm(x), mask, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class Eagle3Module(nn.Module):
    """The EAGLE-3 weights (speculators names). ``embed_tokens`` / ``lm_head`` / ``input_norm``
    exist only when the checkpoint ships them or the config needs them."""

    def __init__(self, c: Eagle3Config, n_taps: int, own_embed: bool, own_head: bool):
        super().__init__()
        H = c.hidden_size
        rope = initialize_rope(c.head_dim, c.rope_theta, c.rope_traditional, c.rope_scaling, c.max_position_embeddings)
        self.fc = nn.Linear(n_taps * c.target_hidden_size, H, bias=False)
        if c.norm_before_fc:
            self.input_norm = nn.RMSNorm(n_taps * c.target_hidden_size, eps=c.rms_norm_eps)
        self.layers = [_FirstLayer(c, rope)] + [_Layer(c, rope) for _ in range(1, c.num_hidden_layers)]
        self.norm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        if own_embed:
            self.embed_tokens = nn.Embedding(c.vocab_size, H)
        if own_head:
            self.lm_head = nn.Linear(H, c.draft_vocab_size, bias=False)

    def project(self, taps: mx.array) -> mx.array:
        """Concatenated target taps ``(1, L, n_t * H_t)`` -> ``(1, L, H)``."""
        if "input_norm" in self:
            taps = self.input_norm(taps)
        return self.fc(taps)

    def __call__(self, embeds: mx.array, hidden: mx.array, caches: List[KVCache]) -> mx.array:
        """One causal pass over ``L`` (token embedding, hidden) pairs; returns the pre-norm output
        ``(1, L, H)`` (what the next speculative step takes as its hidden)."""
        mask = create_attention_mask(hidden, caches[0])
        h = self.layers[0](embeds, hidden, mask, caches[0])
        for layer, cache in zip(self.layers[1:], caches[1:]):
            h = layer(h, mask, cache)
        return h


# --------------------------------------------------------------------------- loading


@dataclass
class Eagle3Drafter:
    """A loaded EAGLE-3 head bound to one target model.

    ``taps``: our tap ids for this target. ``hot``: int32 ``(Vd,)`` target ids of the draft
    vocabulary (``None`` when the draft vocabulary is the target's). ``module`` is owned and
    shared across generations; per-generation caches live in the proposer.
    """

    config: Eagle3Config
    module: Eagle3Module
    target_model: nn.Module
    taps: Tuple[int, ...]
    hot: Optional[mx.array]
    path: Optional[Path] = None
    kind: str = KIND

    @property
    def tap_layers(self) -> Tuple[int, ...]:
        return self.taps

    @property
    def default_proposals(self) -> int:
        return self.config.default_proposals

    def project(self, tapped: mx.array) -> mx.array:
        """Concatenated target taps -> the head's feature (``fc``, after ``input_norm`` if any)."""
        return self.module.project(tapped)

    def step(self, embeds: mx.array, features: mx.array, cache: List[KVCache]) -> mx.array:
        """One causal pass over pairs; the pre-norm output (the next step's feature)."""
        return self.module(embeds, features, cache)

    def embed(self, tokens: mx.array) -> mx.array:
        table = self.module.embed_tokens if "embed_tokens" in self.module else _target_embedding(self.target_model)
        return table(tokens)

    def head(self, h: mx.array) -> mx.array:
        """Final-normed logits over the *target* vocabulary ``(.., V)`` (``-inf`` off the draft vocab)."""
        h = self.module.norm(h)
        if "lm_head" in self.module:
            out = self.module.lm_head(h)
        else:  # tied, full vocabulary
            table = self.module.embed_tokens if "embed_tokens" in self.module else _target_embedding(self.target_model)
            out = table.as_linear(h)
        if self.hot is None:
            return out
        full = mx.full(out.shape[:-1] + (self.config.vocab_size,), -mx.inf, dtype=out.dtype)
        full[..., self.hot] = out
        return full

    def make_cache(self) -> List[KVCache]:
        return [KVCache() for _ in self.module.layers]

    def bind(self, target_model: nn.Module) -> "Eagle3Drafter":
        if isinstance(target_model, TargetAdapter):
            target_model = target_model.model
        taps = validate_against_target(self.config, self.module, target_model)
        return replace(self, target_model=target_model, taps=taps)


def _target_embedding(target_model: nn.Module):
    return text_model(target_model).model.embed_tokens


def validate_against_target(c: Eagle3Config, module: Eagle3Module, target_model: nn.Module) -> Tuple[int, ...]:
    """The tap ids for ``target_model``; one ``ValueError`` naming the key that does not fit."""
    t = TargetAdapter(target_model)
    if c.vocab_size != t.vocab_size:
        raise ValueError(f"eagle3 drafter: 'vocab_size' {c.vocab_size} differs from the target's vocabulary {t.vocab_size}")
    if t.hidden_size and c.target_hidden_size != t.hidden_size:
        raise ValueError(
            f"eagle3 drafter: target hidden size {c.target_hidden_size} ('target_hidden_size' or 'hidden_size') differs "
            f"from the target's {t.hidden_size}"
        )
    taps = taps_for(c, t.num_layers)
    n_taps = module.fc.weight.shape[1] // c.target_hidden_size
    if len(taps) != n_taps:
        raise ValueError(
            f"eagle3 drafter: 'eagle_aux_hidden_state_layer_ids' gives {len(taps)} tap layer(s) {list(taps)}, but "
            f"fc.weight {tuple(module.fc.weight.shape)} reads {n_taps} target hidden states"
        )
    bad = [i for i in taps if not 0 <= i < t.num_layers]
    if bad:
        raise ValueError(
            f"eagle3 drafter: tap layer(s) {bad} (from 'eagle_aux_hidden_state_layer_ids' {list(c.aux_ids or ())}) are "
            f"outside the target's {t.num_layers} decoder layers"
        )
    if "embed_tokens" not in module and t.hidden_size and c.hidden_size != t.hidden_size:
        raise ValueError(
            f"eagle3 drafter: the checkpoint has no embed_tokens and its 'hidden_size' {c.hidden_size} differs from the "
            f"target's embedding width {t.hidden_size}"
        )
    return taps


def read_weights(path: Path, layout: str) -> Dict[str, mx.array]:
    """The checkpoint's tensors (:func:`.config.read_weights`), SpecForge's ``midlayer.*`` as layer 0,
    the verifier's own tensors (``verifier_*``) left out."""
    out: Dict[str, mx.array] = {}
    for k, v in read_config_weights(path).items():
        if k.startswith("verifier_"):
            continue
        if layout == "specforge" and k.startswith("midlayer."):
            k = "layers.0." + k[len("midlayer.") :]
        if k in out:
            raise ValueError(f"eagle3 drafter checkpoint {path}: weight '{k}' appears twice")
        out[k] = v
    return out


def _hot_ids(c: Eagle3Config, weights: Dict[str, mx.array]) -> Optional[mx.array]:
    """Target ids of the draft vocabulary from ``d2t`` (checked against ``t2d`` when present)."""
    d2t, t2d = weights.pop("d2t", None), weights.pop("t2d", None)
    if not c.uses_draft_vocab:
        return None
    if d2t is None:
        raise ValueError(
            f"eagle3 drafter checkpoint: 'draft_vocab_size' {c.draft_vocab_size} < 'vocab_size' {c.vocab_size} but the "
            "draft-to-target map 'd2t' is missing"
        )
    d2t = np.array(d2t).astype(np.int64).reshape(-1)
    if d2t.shape[0] != c.draft_vocab_size:
        raise ValueError(f"eagle3 drafter checkpoint: 'd2t' has {d2t.shape[0]} entries, 'draft_vocab_size' is {c.draft_vocab_size}")
    hot = np.arange(c.draft_vocab_size) + d2t
    if hot.min() < 0 or hot.max() >= c.vocab_size or len(np.unique(hot)) != len(hot):
        raise ValueError("eagle3 drafter checkpoint: 'd2t' maps draft ids outside the target vocabulary or onto one token twice")
    if t2d is not None:
        mask = np.array(t2d).astype(bool).reshape(-1)
        if mask.shape[0] != c.vocab_size or mask.sum() != c.draft_vocab_size or not mask[hot].all():
            raise ValueError("eagle3 drafter checkpoint: 't2d' does not mark exactly the target tokens 'd2t' maps to")
    return mx.array(hot.astype(np.int32))


def build_module(c: Eagle3Config, weights: Dict[str, mx.array]) -> Eagle3Module:
    fc = weights.get("fc.weight")
    if fc is None:
        raise ValueError("eagle3 drafter checkpoint: missing weight 'fc.weight'")
    if fc.ndim != 2 or fc.shape[1] % c.target_hidden_size:
        raise ValueError(f"eagle3 drafter checkpoint: 'fc.weight' has shape {tuple(fc.shape)}, not (H, n_taps * {c.target_hidden_size})")
    n_taps = fc.shape[1] // c.target_hidden_size
    if c.aux_ids is not None and len(c.aux_ids) != n_taps:
        raise ValueError(
            f"eagle3 drafter: 'eagle_aux_hidden_state_layer_ids' names {len(c.aux_ids)} layer(s) {list(c.aux_ids)}, but "
            f"fc.weight {tuple(fc.shape)} reads {n_taps} target hidden states"
        )
    own_head = "lm_head.weight" in weights or c.uses_draft_vocab or not c.tie_word_embeddings
    if c.norm_before_fc is False:
        weights.pop("input_norm.weight", None)
    module = Eagle3Module(c, n_taps, "embed_tokens.weight" in weights, own_head)
    check_weights(dict(tree_flatten(module.parameters())), weights, "eagle3 drafter checkpoint", hint=" from config.json")
    module.load_weights(list(weights.items()), strict=True)
    mx.eval(module.parameters())
    return module


def load_eagle3(path: PathLike, target_model: nn.Module, *, raw: Optional[dict] = None,
                dtype: Optional[mx.Dtype] = None) -> Eagle3Drafter:
    """Load an EAGLE-3 checkpoint folder and bind it to ``target_model`` (validated)."""
    path = Path(path)
    if raw is None:
        raw = json.loads((path / "config.json").read_text())
    c = normalize_config(raw)
    if isinstance(target_model, TargetAdapter):
        target_model = target_model.model
    weights = read_weights(path, c.layout)
    hot = _hot_ids(c, weights)
    if dtype is not None:
        weights = {k: v.astype(dtype) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
    module = build_module(c, weights)
    taps = validate_against_target(c, module, target_model)
    return Eagle3Drafter(c, module, target_model, taps, hot, path)
