"""The Gemma-4 DSpark backbone (DeepSpec's ``deepseek-ai/dspark_gemma4_*_block7``).

Recognised by ``architectures: ["Gemma4DSparkModel"]``; the published config is flat (a Gemma-4
text config, ``model_type: gemma4_text``, with the DSpark keys at the top level; a nested
``dflash_config`` is read too). Block semantics are DSpark's: the checkpoint ``block_size`` counts
proposals (``dspark_bonus_anchor`` does not apply) and the block length is fixed by the options
(no adaptive shrinking). The drafting itself is the ``dspark`` strategy's, unchanged: one parallel
forward over ``[anchor, mask x (g - 1)]`` then the rank-r Markov correction row by row.

What differs from the Qwen3-style backbone in :mod:`.drafters`:

* **Attention geometry per layer type.** ``full_attention`` layers use ``global_head_dim`` and,
  with ``attention_k_eq_v``, one ``k_proj`` of ``num_global_key_value_heads`` heads whose output
  is both the keys (after ``k_norm`` and RoPE) and the values (raw); there is no ``v_proj``.
  ``sliding_attention`` layers use ``head_dim``, ``num_key_value_heads`` and separate K/V, and see
  the last ``sliding_window - 1`` context rows. The softmax scale is 1 (q/k are RMS-normed).
* **RoPE per layer type** from ``rope_parameters[layer_type]`` (Gemma-4's ``proportional`` RoPE on
  full layers, over ``global_head_dim``; plain RoPE over ``head_dim`` on sliding layers).
* **Gemma sandwich block**: ``h = x + post_attention_norm(attn(input_norm(x)))``,
  ``out = (h + post_feedforward_norm(mlp(pre_feedforward_norm(h)))) * layer_scalar``, with the
  GeGLU MLP ``down(gelu_tanh(gate(x)) * up(x))`` (``hidden_activation: gelu_pytorch_tanh``).
* **Own untied ``embed_tokens`` and ``lm_head``** (required), the embedding scaled by ``sqrt(H)``,
  logits soft-capped by ``final_logit_softcapping``. Only the target's hidden states are shared.

mlx-vlm 0.7.10 uses a single RoPE (that of layer 0's type) for every draft layer; the two agree
whenever the draft layers are all of one type (the published checkpoint's case) -- here each
layer uses its own type's RoPE, as Gemma-4 does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.cache import KVCache
from mlx_lm.models.rope_utils import initialize_rope

from .config import DrafterConfig
from .layers import MLP, ConfidenceHead, ContextAttention, MarkovHead

ARCHITECTURE = "Gemma4DSparkModel"
ACTIVATIONS = ("gelu_pytorch_tanh",)
# Gemma-4's defaults (Hugging Face ``Gemma4TextConfig``) when a config omits rope_parameters.
DEFAULT_ROPE = {
    "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0, "rope_type": "proportional"},
    "sliding_attention": {"partial_rotary_factor": 1.0, "rope_theta": 10000.0, "rope_type": "default"},
}


@dataclass(frozen=True)
class Gemma4Backbone:
    """The Gemma-4-only part of a drafter config (see the module docstring)."""

    global_head_dim: int
    num_global_key_value_heads: int  # 0: full layers use num_key_value_heads
    attention_k_eq_v: bool
    rope_parameters: Tuple[Tuple[str, Tuple[Tuple[str, Any], ...]], ...]  # frozen {type: params}
    rope_traditional: bool
    intermediate_sizes: Tuple[int, ...]  # per draft layer (double-wide MLP on KV-shared layers)

    def rope_params(self, layer_type: str) -> dict:
        return dict(dict(self.rope_parameters)[layer_type])

    def head_dim(self, c: DrafterConfig, layer_type: str) -> int:
        return self.global_head_dim if layer_type == "full_attention" else c.head_dim

    def kv_heads(self, c: DrafterConfig, layer_type: str) -> int:
        if self.k_eq_v(layer_type) and self.num_global_key_value_heads:
            return self.num_global_key_value_heads
        return c.num_key_value_heads

    def k_eq_v(self, layer_type: str) -> bool:
        return self.attention_k_eq_v and layer_type == "full_attention"


def is_gemma4_dspark(raw: dict) -> bool:
    return ARCHITECTURE in [str(a) for a in raw.get("architectures") or ()]


def _positive(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Gemma-4 DSpark drafter config: '{key}' must be an integer >= 1, got {value!r}")
    return value


def read_backbone(
    raw: dict, layer_types: Tuple[str, ...], heads: int, head_dim: int, intermediate: int, max_positions: int
) -> Gemma4Backbone:
    """Validate and freeze the Gemma-4 keys of ``raw`` (one ``ValueError`` naming the key)."""
    act = raw.get("hidden_activation", raw.get("hidden_act", "gelu_pytorch_tanh"))
    if act not in ACTIVATIONS:
        raise ValueError(
            f"Gemma-4 DSpark drafter config: 'hidden_activation' {act!r} is not supported (the backbone is "
            "Gemma-4's GeGLU, gelu_pytorch_tanh)"
        )
    # Absent keys take the published drafter's values (mlx-vlm's defaults too); a wrong guess
    # shows up as a weight-shape error that names the key.
    k_eq_v = bool(raw.get("attention_k_eq_v", True))
    has_full = "full_attention" in layer_types
    global_hd = raw.get("global_head_dim", 512)
    if has_full:
        global_hd = _positive("global_head_dim", global_hd)
    global_kv = raw.get("num_global_key_value_heads", 1)
    if has_full and k_eq_v and global_kv is not None:
        global_kv = _positive("num_global_key_value_heads", global_kv)
        if heads % global_kv:
            raise ValueError(
                f"Gemma-4 DSpark drafter config: 'num_attention_heads' {heads} is not a multiple of "
                f"'num_global_key_value_heads' {global_kv}"
            )

    params = raw.get("rope_parameters")
    if params is None:
        params = DEFAULT_ROPE
    if not isinstance(params, dict):
        raise ValueError(f"Gemma-4 DSpark drafter config: 'rope_parameters' must be an object, got {params!r}")
    if not any(t in params for t in DEFAULT_ROPE):  # one flat set for every layer type
        params = {t: params for t in DEFAULT_ROPE}
    frozen = []
    for t in sorted(set(layer_types)):
        p = params.get(t)
        if not isinstance(p, dict) or "rope_theta" not in p:
            raise ValueError(
                f"Gemma-4 DSpark drafter config: 'rope_parameters' has no {t!r} entry with a rope_theta "
                f"(got {params!r})"
            )
        frozen.append((t, tuple(sorted(p.items()))))

    n = len(layer_types)
    shared = int(raw.get("num_kv_shared_layers", 0) or 0)
    wide = bool(raw.get("use_double_wide_mlp", False))
    first_shared = n - shared  # Gemma-4's rule: the last num_kv_shared_layers layers may be double-wide
    sizes = tuple(intermediate * (2 if wide and i >= first_shared > 0 else 1) for i in range(n))
    backbone = Gemma4Backbone(
        global_head_dim=int(global_hd or 0),
        num_global_key_value_heads=int(global_kv or 0),
        attention_k_eq_v=k_eq_v,
        rope_parameters=tuple(frozen),
        rope_traditional=bool(raw.get("rope_traditional", False)),
        intermediate_sizes=sizes,
    )
    for t in set(layer_types):  # an unknown rope_type is a config error now, not at first use
        _rope(backbone, t, backbone.global_head_dim if t == "full_attention" else head_dim, max_positions)
    return backbone


def _rope(g: Gemma4Backbone, layer_type: str, dims: int, max_positions: int):
    params = g.rope_params(layer_type)
    kind = params.get("rope_type") or params.get("type") or "default"
    try:
        return initialize_rope(
            dims, float(params["rope_theta"]), g.rope_traditional,
            None if kind == "default" else params, max_positions,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"Gemma-4 DSpark drafter config: 'rope_parameters' for {layer_type} is not supported ({params!r}: {e})"
        ) from None


def shape_hint(c: DrafterConfig, name: str) -> str:
    """Which config keys set the shape of weight ``name`` (appended to shape errors)."""
    parts = name.split(".")
    if c.gemma4 is None or len(parts) < 3 or parts[0] != "layers" or not parts[1].isdigit():
        return ""
    i = int(parts[1])
    if i >= len(c.layer_types):
        return ""
    t, g = c.layer_types[i], c.gemma4
    if parts[2] == "self_attn":
        if t == "full_attention":
            kv = (f"'num_global_key_value_heads' = {g.num_global_key_value_heads} K=V heads"
                  if g.k_eq_v(t) and g.num_global_key_value_heads else f"'num_key_value_heads' = {c.num_key_value_heads}")
            return f" (layer {i} is full_attention: 'global_head_dim' = {g.global_head_dim}, {kv})"
        return f" (layer {i} is sliding_attention: 'head_dim' = {c.head_dim}, 'num_key_value_heads' = {c.num_key_value_heads})"
    if parts[2] == "mlp":
        return f" (layer {i} MLP width {g.intermediate_sizes[i]} from 'intermediate_size'/'use_double_wide_mlp')"
    return ""


def unexpected_hint(c: DrafterConfig, names: List[str]) -> str:
    if c.gemma4 is not None and c.gemma4.attention_k_eq_v and any(n.endswith("self_attn.v_proj.weight") for n in names):
        return " (with 'attention_k_eq_v' full-attention layers share k_proj for the values and have no v_proj)"
    return ""


# --------------------------------------------------------------------------- modules


class Gemma4ContextAttention(ContextAttention):
    """:class:`ContextAttention` with Gemma-4's per-layer-type geometry, unit scale and K=V."""

    def __init__(self, c: DrafterConfig, layer_type: str):
        nn.Module.__init__(self)
        g, H = c.gemma4, c.hidden_size
        hd = g.head_dim(c, layer_type)
        self.n_heads, self.n_kv, self.head_dim = c.num_attention_heads, g.kv_heads(c, layer_type), hd
        self.scale = 1.0
        self.window = c.sliding_window if layer_type == "sliding_attention" else None
        self.causal = c.causal
        self.k_eq_v = g.k_eq_v(layer_type)
        self.q_proj = nn.Linear(H, self.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(H, self.n_kv * hd, bias=False)
        if not self.k_eq_v:
            self.v_proj = nn.Linear(H, self.n_kv * hd, bias=False)
        self.o_proj = nn.Linear(self.n_heads * hd, H, bias=False)
        self.q_norm = nn.RMSNorm(hd, eps=c.rms_norm_eps)
        self.k_norm = nn.RMSNorm(hd, eps=c.rms_norm_eps)
        if c.attention_sink_bias:
            self.attention_sink_bias = mx.zeros((self.n_heads,))

    def _kv(self, x: mx.array, offset: int, rope) -> Tuple[mx.array, mx.array]:
        B, L, _ = x.shape
        raw = self.k_proj(x).reshape(B, L, self.n_kv, -1)
        k = rope(self.k_norm(raw).transpose(0, 2, 1, 3), offset=offset)
        v = raw if self.k_eq_v else self.v_proj(x).reshape(B, L, self.n_kv, -1)
        return k, v.transpose(0, 2, 1, 3)


class Gemma4DecoderLayer(nn.Module):
    def __init__(self, c: DrafterConfig, index: int):
        super().__init__()
        H, eps = c.hidden_size, c.rms_norm_eps
        self.self_attn = Gemma4ContextAttention(c, c.layer_types[index])
        self.mlp = MLP(H, c.gemma4.intermediate_sizes[index], nn.gelu_approx)
        self.input_layernorm = nn.RMSNorm(H, eps=eps)
        self.post_attention_layernorm = nn.RMSNorm(H, eps=eps)
        self.pre_feedforward_layernorm = nn.RMSNorm(H, eps=eps)
        self.post_feedforward_layernorm = nn.RMSNorm(H, eps=eps)
        self.layer_scalar = mx.ones((1,))

    def __call__(self, x, ctx_k, ctx_v, offset, rope):
        h = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), ctx_k, ctx_v, offset, rope))
        h = h + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(h)))
        return h * self.layer_scalar


class Gemma4DSparkDrafterModel(nn.Module):
    """The Gemma-4 DSpark drafter's weights (checkpoint names, ``model.`` stripped); the same
    interface as :class:`~mlx_specdec_plugin.drafters.BlockDrafterModel`."""

    def __init__(self, c: DrafterConfig):
        super().__init__()
        H = c.hidden_size
        self.fc = nn.Linear(len(c.target_layer_ids) * H, H, bias=False)
        self.hidden_norm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.layers = [Gemma4DecoderLayer(c, i) for i in range(c.num_hidden_layers)]
        self.norm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.embed_tokens = nn.Embedding(c.vocab_size, H)
        self.lm_head = nn.Linear(H, c.vocab_size, bias=False)
        self.markov_head = MarkovHead(c.vocab_size, c.markov_rank)
        if c.enable_confidence_head:
            self.confidence_head = ConfidenceHead(H + (c.markov_rank if c.confidence_head_with_markov else 0))
        g = c.gemma4
        self.ropes = {
            t: _rope(g, t, g.head_dim(c, t), c.max_position_embeddings) for t in sorted(set(c.layer_types))
        }
        self._layer_types = c.layer_types

    def _layer_ropes(self):
        return [self.ropes[t] for t in self._layer_types]

    def extend_context(self, caches: List[KVCache], hidden: mx.array) -> None:
        """Append target features ``(1, S, n_t*H)`` as context K/V to every layer's cache."""
        h_ctx = self.hidden_norm(self.fc(hidden))
        offset = caches[0].offset
        for layer, rope, cache in zip(self.layers, self._layer_ropes(), caches):
            cache.update_and_fetch(*layer.self_attn.context_kv(h_ctx, offset, rope))

    def block(self, x: mx.array, caches: List[KVCache]) -> mx.array:
        """Block embeddings ``(1, L, H)`` -> final-normed hidden ``(1, L, H)`` (nothing cached)."""
        offset = caches[0].offset
        for layer, rope, cache in zip(self.layers, self._layer_ropes(), caches):
            ctx_k, ctx_v = cache.keys_and_values() if cache.offset else (None, None)
            x = layer(x, ctx_k, ctx_v, offset, rope)
        return self.norm(x)


def embed_scale(c: DrafterConfig) -> float:
    """The drafter's own embedding scale, ``sqrt(H)`` (not the target's)."""
    return math.sqrt(c.hidden_size)


def check_target(c: DrafterConfig, model_type: str) -> Optional[str]:
    """An error message if the target is not a Gemma-4 text model, else ``None``."""
    if not model_type.startswith("gemma4"):
        return (f"dspark drafter: architectures ['{ARCHITECTURE}'] is a Gemma-4 drafter, but the target is "
                f"'{model_type}'")
    return None
