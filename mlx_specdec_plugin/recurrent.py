"""Per-position recurrent states from the verify forward, so a rollback selects instead of replays.

A *capture forward* is the model's forward re-run from its public pieces (embedding, masks from
mlx-lm's own helpers, each decoder layer, norm, head), where every recurrent layer also records,
for each position ``t`` of the forward, the cache state after ``t + 1`` tokens. It stores a
selector ``keep -> [conv_state, ssm_state]`` in the round's ``captured`` dict under
``id(leaf)``, and :func:`~mlx_specdec_plugin.caches.end_round` installs the state after the last
kept token. Nothing in mlx-lm is patched.

Implemented for Gated DeltaNet hybrids (``qwen3_next``, ``qwen3_5``, ``qwen3_5_moe``). Before
first use, :func:`capture_forward` proves it on a probe (logits, final states and every selected
state must match mlx-lm's own forward); a model that fails the probe, or any other recurrent
model, falls back to the generic snapshot-and-replay rollback in :mod:`.caches` (exact, slower).
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.base import create_attention_mask, create_ssm_mask
from mlx_lm.models.cache import ArraysCache
from mlx_lm.models.gated_delta import gated_delta_update, normalize_qk

# capture(model, tokens (1, L), cache, taps, record) -> (final hidden after norm, [tapped (1, L, H)]),
# the tap forward of :mod:`.target` that also records per-position states into ``record``
CaptureForward = Callable[[nn.Module, mx.array, List[Any], Sequence[int], Dict[int, Any]], Tuple[mx.array, List[mx.array]]]
CAPTURES: Dict[str, CaptureForward] = {}
PROBE = (1, 5, 2, 7, 3, 3, 0, 4)  # the token ids every forward is proven on (this one and the tap forwards)
PROBE_PREFIX = 5
TOLERANCE = 1e-4

# id(model) -> (weak reference to the model, its proven capture forward or None): probed once per model
_proven: Dict[int, Tuple[Any, Optional[CaptureForward]]] = {}


def _gdn_inputs(attn: nn.Module, x: mx.array) -> Tuple[mx.array, mx.array, mx.array, mx.array]:
    """The Gated DeltaNet projections: (mixed qkv (B, S, conv_dim), z, b, a)."""
    B, S, _ = x.shape
    if hasattr(attn, "in_proj_qkvz"):  # qwen3_next
        q, k, v, z, b, a = attn.fix_query_key_value_ordering(attn.in_proj_qkvz(x), attn.in_proj_ba(x))
        qkv = mx.concatenate([q.reshape(B, S, -1), k.reshape(B, S, -1), v.reshape(B, S, -1)], axis=-1)
        return qkv, z, b, a
    z = attn.in_proj_z(x).reshape(B, S, attn.num_v_heads, attn.head_v_dim)  # qwen3_5
    return attn.in_proj_qkv(x), z, attn.in_proj_b(x), attn.in_proj_a(x)


def gdn_capture(attn: nn.Module, x: mx.array, mask: Optional[mx.array], c: ArraysCache):
    """Run a Gated DeltaNet on ``x`` like its ``__call__`` (updating ``c``), recording the state
    after every position. Returns ``(out, selector)``; ``selector(keep)`` is ``c.cache`` as it
    would be after only the first ``keep`` positions (1 <= keep <= S)."""
    B, S, _ = x.shape
    qkv, z, b, a = _gdn_inputs(attn, x)
    n_keep = attn.conv_kernel_size - 1
    conv_state = c[0] if c[0] is not None else mx.zeros((B, n_keep, attn.conv_dim), dtype=x.dtype)
    if mask is not None:
        qkv = mx.where(mask[..., None], qkv, 0)
    conv_input = mx.concatenate([conv_state, qkv], axis=1)
    c[0] = mx.contiguous(conv_input[:, -n_keep:, :])
    conv_out = nn.silu(attn.conv1d(conv_input))
    q, k, v = [
        t.reshape(B, S, h, d)
        for t, h, d in zip(
            mx.split(conv_out, [attn.key_dim, 2 * attn.key_dim], -1),
            [attn.num_k_heads, attn.num_k_heads, attn.num_v_heads],
            [attn.head_k_dim, attn.head_k_dim, attn.head_v_dim],
        )
    ]
    q, k = normalize_qk(q, k, inv_scale=attn.head_k_dim**-0.5, eps=1e-6)
    state = c[1]
    ys, states = [], []
    for t in range(S):
        step = slice(t, t + 1)
        y, state = gated_delta_update(
            q[:, step], k[:, step], v[:, step], a[:, step], b[:, step], attn.A_log, attn.dt_bias,
            state, None if mask is None else mask[:, step], use_kernel=not attn.training,
        )
        ys.append(y)
        states.append(state)
    c[1] = state
    c.advance(S)
    out = attn.out_proj(attn.norm(mx.concatenate(ys, axis=1), z).reshape(B, S, -1))

    def selector(keep: int) -> List[Optional[mx.array]]:
        return [mx.contiguous(conv_input[:, keep : keep + n_keep, :]), states[keep - 1]]

    return out, selector


def _gdn_layer(layer: nn.Module, h: mx.array, mask, c: Any, record: Optional[Dict[int, Any]]) -> mx.array:
    plain = record is None or not layer.is_linear or type(c) is not ArraysCache
    if plain or c.lengths is not None or c.left_padding is not None:
        return layer(h, mask, c)
    r, selector = gdn_capture(layer.linear_attn, layer.input_layernorm(h), mask, c)
    record[id(c)] = selector
    h = h + r
    return h + layer.mlp(layer.post_attention_layernorm(h))


GDN_HYBRIDS = ("qwen3_next", "qwen3_5", "qwen3_5_moe")


def gdn_hybrid_forward(model, tokens, cache, taps, record: Optional[Dict[int, Any]] = None):
    """Gated DeltaNet hybrids' forward up to the final norm: ``(hidden, [tapped])``. One full-attention
    mask and one SSM mask, built from the first attention / linear layer's cache as the model's own
    forward does (``qwen3_5``'s ``Model`` wraps its text model). With ``record`` (a round's
    ``captured`` dict) every recurrent layer also records its per-position states; without it this
    is the plain tap forward (:mod:`.target` registers it as the family's)."""
    lm = getattr(model, "language_model", model)
    inner = lm.model
    h = inner.embed_tokens(tokens)
    fa_mask = create_attention_mask(h, cache[inner.fa_idx]) if inner.fa_idx is not None else None
    ssm_mask = create_ssm_mask(h, cache[inner.ssm_idx]) if inner.ssm_idx is not None else None
    wanted, tapped = set(taps), {}
    for i, (layer, c) in enumerate(zip(lm.layers, cache)):
        h = _gdn_layer(layer, h, ssm_mask if layer.is_linear else fa_mask, c, record)
        if i in wanted:
            tapped[i] = h
    return inner.norm(h), [tapped[i] for i in taps]


CAPTURES.update(dict.fromkeys(GDN_HYBRIDS, gdn_hybrid_forward))


def _max_rel_diff(ref: Sequence[Optional[mx.array]], ours: Sequence[Optional[mx.array]]) -> float:
    worst = 0.0
    for r, o in zip(ref, ours):
        if (r is None) != (o is None) or (r is not None and r.shape != o.shape):
            return float("inf")
        if r is not None:
            r, o = r.astype(mx.float32), o.astype(mx.float32)
            scale = 1.0 + float(mx.abs(r).max().item())
            worst = max(worst, float(mx.abs(r - o).max().item()) / scale)
    return worst


def probe_capture(model: nn.Module, make_cache: Callable[[], List[Any]], fwd: CaptureForward, vocab: int,
                  head: Callable[[mx.array], mx.array]) -> float:
    """Max relative difference between ``fwd`` (its hidden through ``head``) and mlx-lm's forward:
    logits, final cache states, and each selected per-position state against a cache fed only that
    prefix."""
    tokens = mx.array([[t % vocab for t in PROBE]], dtype=mx.uint32)
    prefix, rest = tokens[:, :PROBE_PREFIX], tokens[:, PROBE_PREFIX:]

    def primed():
        cache = make_cache()
        model(prefix, cache=cache)
        return cache

    ref_cache, our_cache, record = primed(), primed(), {}
    ref = model(rest, cache=ref_cache)
    hidden, _ = fwd(model, rest, our_cache, (), record)
    ours = head(hidden)
    recurrent = [i for i, c in enumerate(ref_cache) if type(c) is ArraysCache]
    if not recurrent or any(id(our_cache[i]) not in record for i in recurrent):
        return float("inf")
    diffs = [_max_rel_diff([ref], [ours])]
    diffs += [_max_rel_diff(ref_cache[i].cache, our_cache[i].cache) for i in recurrent]
    for keep in range(1, rest.shape[1] + 1):
        part = primed()
        model(rest[:, :keep], cache=part)
        diffs += [_max_rel_diff(part[i].cache, record[id(our_cache[i])](keep)) for i in recurrent]
    return max(diffs)


def capture_forward(adapter: Any) -> Optional[CaptureForward]:
    """The proven capture forward for ``adapter``'s model, or ``None`` (rollback replays)."""
    fwd = CAPTURES.get(adapter.model_type)
    ref, proven = _proven.get(id(adapter.model), (None, None))
    if ref is not None and ref() is adapter.model and (proven is None or proven is fwd):
        return proven
    if fwd is not None:
        diff = probe_capture(adapter.model, adapter.make_cache, fwd, adapter.vocab_size, adapter.head)
        if not diff <= TOLERANCE:
            warnings.warn(
                f"per-position state capture for model_type '{adapter.model_type}' does not reproduce "
                f"the model (relative difference {diff:.2e}); rolling back by replay instead"
            )
            fwd = None
    _proven[id(adapter.model)] = (weakref.ref(adapter.model), fwd)
    return fwd
