"""DFlash2 drafters (``architectures: ["DFlash2DraftModel"]``): checkpoint reading and modules.

The layout is z-lab DFlash's (a Qwen3-style backbone whose attention reads the projected target
taps as context, one parallel pass over ``[anchor, mask x g]``, the target's embedding and LM
head; ``model_type`` names the backbone, ``qwen3``), with these differences, all read from
``config.json``:

* **``dflash_config`` keys**: ``block_size`` (anchor included), ``mask_token_id``,
  ``target_layer_ids``, ``runtime_block_size`` (default ``min(5, block_size)``: 4 proposals),
  ``input_embedding_scale`` (multiplies the target's embedding), ``output_multiplier``
  (multiplies the logits, before ``final_logit_softcapping``), ``conv_kernel_size``,
  ``conv_group_size``, ``selector_rank``, ``selector_top_k``; ``num_target_layers`` at the top
  level. Queries are never causal (``is_causal`` is refused), the activation is SiLU only.
* **Grouped dynamic causal convolutions** around attention and MLP in every layer
  (``layers.{i}.attention_conv`` / ``mlp_conv``: ``base_kernel (2, K, H)`` and
  ``kernel_projection (2 K G, H)``, G = H / group size). From the normed input ``x`` the
  projection gives per-position kernels ``d (2, K, G)``; the sub-layer sees
  ``conv(x; base[0] + d[0])`` and its output ``y`` is returned as ``conv(y; base[1] + d[1])``,
  where ``conv(z; w)_t = sum_{o<K} w_{t,o} * z_{t-o}`` (group g's scalar weight on its channel
  slice; ``z`` is zero before the block's first slot). The convolution runs over the block only;
  the context keys/values are the plain DFlash ones.
* **A candidate selector** instead of independent rows: per position the ``selector_top_k``
  largest logits are the candidates; proposals are drawn left to right from
  ``score(c) = logit(c) + sum_r P[prev]_r * (W h_i)_r * S[c]_r`` over the candidates
  (``candidate_selector.{predecessor,successor}_codebook (V, r)``, stored as bare parameters,
  ``hidden_projection (r, H)``), ``prev`` the previous proposal (the anchor first). The proposer
  draws each row through the user's sampling chain with ``-inf`` outside the candidates and
  reports that q (see :mod:`.strategies.dflash2`).

mlx-vlm 0.7.10 grows its DFlash2 blocks adaptively from 3; here the block length is the loop's
(``--num-draft-tokens`` / ``auto``), capped by ``block_size - 1``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional

import mlx.core as mx
import mlx.nn as nn

from ..target import TargetAdapter, lm_head
from .checkpoint import (Drafter, build_module, drafter_embed_scale, normalize_config, read_weights, register_kind,
                         validate_against_target)
from .config import DrafterConfig
from .layers import BlockDrafterModel, DecoderLayer

KIND = "dflash2"
_CODEBOOKS = ("candidate_selector.predecessor_codebook", "candidate_selector.successor_codebook")


def is_dflash2(raw: dict) -> bool:
    return any("DFlash2" in str(a) for a in raw.get("architectures") or ())


@dataclass(frozen=True)
class DFlash2Extras:
    input_embedding_scale: float
    output_multiplier: float
    conv_kernel_size: int
    conv_group_size: int
    selector_rank: int
    selector_top_k: int


def normalize(raw: dict) -> DrafterConfig:
    """The DFlash backbone config with :class:`DFlash2Extras` as ``extras``; one ``ValueError``
    naming the key that is wrong."""
    nested = raw.get("dflash_config")
    if not isinstance(nested, dict):
        raise ValueError("DFlash2 drafter config: 'dflash_config' object is missing")
    if nested.get("causal") or raw.get("is_causal") or raw.get("dflash_query_causal"):
        raise ValueError("DFlash2 drafter config: causal draft blocks are not supported (DFlash2 blocks are bidirectional)")
    if nested.get("draft_window_size") or raw.get("draft_window_size"):
        raise ValueError("DFlash2 drafter config: 'draft_window_size' (a windowed context) is not supported")
    if "runtime_block_size" not in nested and "runtime_block_size" not in raw:
        raw = {**raw, "runtime_block_size": min(5, int(nested.get("block_size", raw.get("block_size", 5))))}
    c = normalize_config(raw)

    def get(key, default=None):
        return nested[key] if key in nested else raw.get(key, default)

    ints = {}
    for k in ("conv_kernel_size", "conv_group_size", "selector_rank", "selector_top_k"):
        v = get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"DFlash2 drafter config: '{k}' must be a positive integer (in dflash_config), got {v!r}")
        ints[k] = v
    if c.hidden_size % ints["conv_group_size"]:
        raise ValueError(f"DFlash2 drafter config: 'hidden_size' {c.hidden_size} is not a multiple of "
                         f"'conv_group_size' {ints['conv_group_size']}")
    if ints["selector_top_k"] > c.vocab_size:
        raise ValueError(f"DFlash2 drafter config: 'selector_top_k' {ints['selector_top_k']} exceeds the vocabulary {c.vocab_size}")
    extras = DFlash2Extras(float(get("input_embedding_scale", 1.0)), float(get("output_multiplier", 1.0)), **ints)
    return replace(c, kind=KIND, extras=extras)


def extras_of(c: DrafterConfig) -> DFlash2Extras:
    return c.extras


# --------------------------------------------------------------------------- modules


class GroupedCausalConv(nn.Module):
    """The pair of per-position grouped causal convolutions around one sub-layer."""

    def __init__(self, H: int, kernel: int, group: int):
        super().__init__()
        self.kernel, self.group = kernel, group
        self.base_kernel = mx.zeros((2, kernel, H))
        self.kernel_projection = nn.Linear(H, 2 * kernel * (H // group), bias=False)

    def _conv(self, z: mx.array, dyn: mx.array, base: mx.array) -> mx.array:
        """``z (B, L, H)``, ``dyn (B, L, K, G)``, ``base (K, H)``: ``sum_o (base_o + dyn_{t,o}) z_{t-o}``."""
        B, L, H = z.shape
        G = H // self.group
        zg = z.reshape(B, L, G, self.group)
        out = None
        for o in range(min(self.kernel, L)):
            shifted = zg if o == 0 else mx.pad(zg[:, : L - o], [(0, 0), (o, 0), (0, 0), (0, 0)])
            w = base[o].reshape(G, self.group).astype(z.dtype) + dyn[:, :, o, :, None]
            term = w * shifted
            out = term if out is None else out + term
        return out.reshape(B, L, H)

    def around(self, x: mx.array, sublayer) -> mx.array:
        B, L, _ = x.shape
        dyn = self.kernel_projection(x).reshape(B, L, 2, self.kernel, -1)
        y = sublayer(self._conv(x, dyn[:, :, 0], self.base_kernel[0]))
        return self._conv(y, dyn[:, :, 1], self.base_kernel[1])


class DFlash2Layer(DecoderLayer):
    def __init__(self, c: DrafterConfig, sliding: bool):
        super().__init__(c, sliding)
        e = extras_of(c)
        self.attention_conv = GroupedCausalConv(c.hidden_size, e.conv_kernel_size, e.conv_group_size)
        self.mlp_conv = GroupedCausalConv(c.hidden_size, e.conv_kernel_size, e.conv_group_size)

    def __call__(self, x, ctx_k, ctx_v, offset, rope):
        h = x + self.attention_conv.around(self.input_layernorm(x),
                                           lambda z: self.self_attn(z, ctx_k, ctx_v, offset, rope))
        return h + self.mlp_conv.around(self.post_attention_layernorm(h), self.mlp)


class CandidateSelector(nn.Module):
    def __init__(self, c: DrafterConfig):
        super().__init__()
        e = extras_of(c)
        self.top_k = e.selector_top_k
        self.predecessor_codebook = nn.Embedding(c.vocab_size, e.selector_rank)
        self.successor_codebook = nn.Embedding(c.vocab_size, e.selector_rank)
        self.hidden_projection = nn.Linear(c.hidden_size, e.selector_rank, bias=False)

    def candidates(self, logits: mx.array) -> mx.array:
        """The ``top_k`` highest-logit token ids per row, ``(g, k)``."""
        return mx.argpartition(logits, -self.top_k, axis=-1)[..., -self.top_k :]

    def edges(self, prev: mx.array, projected_row: mx.array, cands: mx.array) -> mx.array:
        """Pairwise scores ``(k,)`` of the candidates after ``prev`` at one position."""
        pred = self.predecessor_codebook(prev.reshape(-1))[0]
        return (self.successor_codebook(cands) * (pred * projected_row)).sum(axis=-1)


class DFlash2DrafterModel(BlockDrafterModel):
    """The DFlash backbone with convolution-wrapped layers and the candidate selector."""

    def __init__(self, c: DrafterConfig):
        super().__init__(c)
        self.layers = [DFlash2Layer(c, t == "sliding_attention") for t in c.layer_types]
        self.candidate_selector = CandidateSelector(c)


# --------------------------------------------------------------------------- drafter


@dataclass
class DFlash2Drafter(Drafter):
    """A DFlash2 drafter bound to one target (the target's embedding and head, scaled)."""

    def embed(self, tokens: mx.array) -> mx.array:
        h = self.target_model.model.embed_tokens(tokens) if "embed_tokens" not in self.module else self.module.embed_tokens(tokens)
        scale = self.embed_scale * extras_of(self.config).input_embedding_scale
        return h * mx.array(scale, dtype=h.dtype) if scale != 1.0 else h

    def head(self, h: mx.array) -> mx.array:
        out = lm_head(self.target_model, h, softcap=False)
        mult = extras_of(self.config).output_multiplier
        if mult != 1.0:
            out = out * mult
        cap = self.config.final_logit_softcapping
        return mx.tanh(out / cap) * cap if cap else out


def _rename(weights: Dict[str, mx.array]) -> Dict[str, mx.array]:
    return {(k + ".weight" if k in _CODEBOOKS else k): v for k, v in weights.items()}


def load_dflash2(path, target_model: nn.Module, *, raw: dict, dtype: Optional[mx.Dtype] = None) -> DFlash2Drafter:
    path = Path(path)
    if isinstance(target_model, TargetAdapter):
        target_model = target_model.model
    c = normalize(raw)
    validate_against_target(c, target_model)
    weights = _rename(read_weights(path))
    if dtype is not None:
        weights = {k: v.astype(dtype) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
    module = build_module(c, weights, DFlash2DrafterModel(c))
    return DFlash2Drafter(c, module, target_model, path, drafter_embed_scale(target_model, c))


register_kind(KIND, sys.modules[__name__])
