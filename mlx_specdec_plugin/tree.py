"""Draft trees: their shape, the target's tree forward (one pass, tree attention mask) and helpers.

A tree draft is a :class:`~mlx_specdec_plugin.contract.Draft` with ``parents``: node ``i``'s
parent is ``parents[i]`` (``-1``: the pending token, the root), parents come before children,
and siblings are listed in the order they were drawn. The verify input is
``[pending, node 0, node 1, ...]``; *round numbering* used below puts the root at 0 and draft
node ``i`` at ``i + 1``.

The tree forward runs every node in one target pass. Node ``n`` at depth ``d`` (the root has
depth 0) gets position ``P + d`` (``P`` = the root's position) and attends to the whole prefix
and to its own ancestors (itself included), nothing else; so its logits are exactly those of a
chain forward over its root-to-node path. mlx-lm's attention applies RoPE with one scalar offset
per call, so for a tree the decoder layers are re-run from the model's own public modules (its
projections, norms, RoPE and mlx-lm's ``scaled_dot_product_attention``), per family;
:func:`check_tree_forward` proves it on a probe (chain logits and branch logits equal
``model(x)``) before it is trusted.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.base import scaled_dot_product_attention

from . import caches


# -- shape


def depths(parents: Sequence[int]) -> List[int]:
    """Depth of each draft node (children of the root: 1)."""
    out: List[int] = []
    for i, p in enumerate(parents):
        if not -1 <= p < i:
            raise ValueError(f"tree node {i} has parent {p}: parents must come before their children")
        out.append(1 if p < 0 else out[p] + 1)
    return out


def path_to(parents: Sequence[int], node: int) -> List[int]:
    """Draft nodes from the root's child down to ``node`` (inclusive); ``[]`` for ``node = -1``."""
    path = []
    while node >= 0:
        path.append(node)
        node = parents[node]
    return path[::-1]


def children(parents: Sequence[int]) -> Dict[int, List[int]]:
    """``{node: [child, ...]}`` in sibling order, the root as ``-1``."""
    out: Dict[int, List[int]] = {}
    for i, p in enumerate(parents):
        out.setdefault(p, []).append(i)
    return out


def is_chain(parents: Optional[Sequence[int]]) -> bool:
    return parents is None or all(p == i - 1 for i, p in enumerate(parents))


def round_parents(parents: Sequence[int]) -> Tuple[int, ...]:
    """Parents in round numbering (root 0, draft node i at i + 1) for round nodes 1..N."""
    return tuple(p + 1 for p in parents)


def ancestor_matrix(rparents: Sequence[int]) -> List[List[bool]]:
    """``anc[i][j]``: round node ``j`` is round node ``i`` or one of its ancestors."""
    n = len(rparents) + 1
    anc = [[False] * n for _ in range(n)]
    anc[0][0] = True
    for i in range(1, n):
        anc[i] = list(anc[rparents[i - 1]])
        anc[i][i] = True
    return anc


def relative_max_diff(ref: mx.array, ours: mx.array) -> float:
    """``max |ref - ours| / (1 + max |ref|)`` in float32: how a re-implemented forward is checked
    against the model's own."""
    scale = 1.0 + float(mx.abs(ref).max().item())
    return float(mx.abs(ref.astype(mx.float32) - ours.astype(mx.float32)).max().item()) / scale


def take_rows(x: mx.array, rows: Sequence[int], axis: int) -> mx.array:
    """``x``'s entries ``rows`` along ``axis`` (a slice when ``rows`` is ``0..n-1``)."""
    rows = list(rows)
    if rows == list(range(len(rows))):
        index = [slice(None)] * axis + [slice(0, len(rows))]
        return x[tuple(index)]
    return mx.take(x, mx.array(rows, dtype=mx.int32), axis=axis)


# -- the tree forward


def tree_mask(cache: Any, anc: List[List[bool]], first: int, width: int,
              rdepth: Optional[Sequence[int]] = None, window: Optional[int] = None) -> mx.array:
    """Boolean ``(L, S)`` mask for round nodes ``first .. first + L - 1`` fed to a layer whose cache
    already holds the prefix and round nodes ``0 .. first - 1``; called before the layer's update.
    ``S`` is the key length the cache's ``update_and_fetch`` will return; columns past the round's
    nodes (a bucketed buffer's padding) are masked.

    ``window`` (a sliding-window layer, or a ring from ``max_kv_size``; ``rdepth``: the round
    nodes' depths) limits each node to the keys a chain forward over its own path would see with
    mlx-lm's windowed causal mask, where a query at key index ``i`` sees indices ``> i - window``:
    prefix row ``j`` iff ``j > prefix + depth - window``, an ancestor iff its depth is
    ``> depth - window``."""
    L = width
    if type(cache) is caches.RotatingKVCache:
        if first or L < 2:
            raise ValueError("a tree round on a RotatingKVCache must be one multi-token forward")
        prefix = caches.ring_rows_kept(cache)
    else:
        prefix = caches.stored_rows(cache) - first  # rows before this call's update, less earlier nodes
    S = caches.fetched_rows(cache, L)
    n_round = first + L
    rows = [anc[first + i][:n_round] for i in range(L)]
    tree_part = mx.array(rows, dtype=mx.bool_)
    prefix_part = mx.ones((L, prefix), dtype=mx.bool_)
    if window is not None:
        d = mx.array([rdepth[first + i] for i in range(L)], dtype=mx.int32)[:, None]
        prefix_part = mx.arange(prefix)[None, :] > prefix + d - window
        tree_part = tree_part & (mx.array(list(rdepth[:n_round]), dtype=mx.int32)[None, :] > d - window)
    parts = [prefix_part, tree_part]
    if S > prefix + n_round:
        parts.append(mx.zeros((L, S - prefix - n_round), dtype=mx.bool_))
    return mx.concatenate(parts, axis=1)


def _rope_by_position(rope: Callable, x: mx.array, groups: List[Tuple[int, mx.array]], inverse: mx.array) -> mx.array:
    """RoPE ``x (1, H, L, D)`` with per-token positions: tokens sharing a position form a batch
    of length-1 sequences rotated with that scalar offset (any mlx-lm RoPE class takes one)."""
    parts = []
    for pos, idx in groups:
        xs = mx.take(x, idx, axis=2).transpose(2, 1, 0, 3)  # (n, H, 1, D)
        parts.append(rope(xs, offset=pos).transpose(2, 1, 0, 3))
    out = parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=2)
    return mx.take(out, inverse, axis=2)


def _attention(attn: nn.Module, x: mx.array, mask: mx.array, cache: Any, groups, inverse) -> mx.array:
    B, L, _ = x.shape
    queries, keys, values = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    queries = queries.reshape(B, L, attn.n_heads, -1)
    keys = keys.reshape(B, L, attn.n_kv_heads, -1)
    if hasattr(attn, "q_norm"):  # qwen3
        queries, keys = attn.q_norm(queries), attn.k_norm(keys)
    queries, keys = queries.transpose(0, 2, 1, 3), keys.transpose(0, 2, 1, 3)
    values = values.reshape(B, L, attn.n_kv_heads, -1).transpose(0, 2, 1, 3)
    queries = _rope_by_position(attn.rope, queries, groups, inverse)
    keys = _rope_by_position(attn.rope, keys, groups, inverse)
    keys, values = cache.update_and_fetch(keys, values)
    out = scaled_dot_product_attention(queries, keys, values, cache=cache, scale=attn.scale, mask=mask)
    return attn.o_proj(out.transpose(0, 2, 1, 3).reshape(B, L, -1))


def _positions(cache0: Any, rparents: Sequence[int], first: int, L: int):
    """For round nodes ``first .. first + L - 1``: the ancestor matrix, round depths, and the RoPE
    groups (position, node indices) with the permutation that puts the grouped nodes back."""
    anc = ancestor_matrix(rparents)
    rdepth = [0] + depths([p - 1 for p in rparents])
    base = caches.offset_of(cache0) - first  # the root's position
    by_pos: Dict[int, List[int]] = {}
    for i in range(L):
        by_pos.setdefault(base + rdepth[first + i], []).append(i)
    groups = [(pos, mx.array(idx, dtype=mx.int32)) for pos, idx in sorted(by_pos.items())]
    order = [i for _, idx in sorted(by_pos.items()) for i in idx]
    inverse = mx.array(sorted(range(L), key=order.__getitem__), dtype=mx.int32)
    return anc, rdepth, groups, inverse


def _decoder_tree_forward(model, tokens, cache, taps, rparents, first):
    """llama / qwen2 / qwen3 / mistral / smollm3 decoder stacks (pre-norm attention + MLP)."""
    inner = model.model
    L = tokens.shape[1]
    anc, rdepth, groups, inverse = _positions(cache[0], rparents, first, L)
    h = inner.embed_tokens(tokens)
    wanted, tapped = set(taps), {}
    masks: Dict[int, mx.array] = {}
    for i, (layer, c) in enumerate(zip(inner.layers, cache)):
        # the window mlx-lm's mask gives the layer: its sliding window, or the ring's size
        window = getattr(inner, "sliding_window", None) if getattr(layer, "use_sliding", False) else None
        if window is None and type(c) is caches.RotatingKVCache:
            window = c.max_size
        key = (caches.fetched_rows(c, L), window, type(c) is caches.RotatingKVCache)
        if key not in masks:
            masks[key] = tree_mask(c, anc, first, L, rdepth, window)
        r = _attention(layer.self_attn, layer.input_layernorm(h), masks[key], c, groups, inverse)
        h = h + r
        h = h + layer.mlp(layer.post_attention_layernorm(h))
        if i in wanted:
            tapped[i] = h
    return inner.norm(h), [tapped[i] for i in taps]


def _gemma4_attention(attn: nn.Module, x: mx.array, mask: mx.array, cache: Any, shared, groups, inverse):
    """Gemma-4 attention with per-node positions: q/k RMS-normed, K=V on full layers that say so, a
    KV-shared layer reading the keys/values its source layer fetched (``shared``)."""
    B, L, _ = x.shape
    queries = attn.q_norm(attn.q_proj(x).reshape(B, L, attn.n_heads, attn.head_dim))
    if shared is not None:
        keys, values = shared
    else:
        keys = attn.k_proj(x).reshape(B, L, attn.n_kv_heads, attn.head_dim)
        values = keys if attn.use_k_eq_v else attn.v_proj(x).reshape(B, L, attn.n_kv_heads, attn.head_dim)
        keys = _rope_by_position(attn.rope, attn.k_norm(keys).transpose(0, 2, 1, 3), groups, inverse)
        values = attn.v_norm(values).transpose(0, 2, 1, 3)
        keys, values = cache.update_and_fetch(keys, values)
    queries = _rope_by_position(attn.rope, queries.transpose(0, 2, 1, 3), groups, inverse)
    out = scaled_dot_product_attention(queries, keys, values, cache=cache, scale=attn.scale, mask=mask)
    return attn.o_proj(out.transpose(0, 2, 1, 3).reshape(B, L, -1)), (keys, values)


def _gemma4_block(layer: nn.Module, h: mx.array, attended: mx.array, per_layer_input) -> mx.array:
    """The rest of mlx-lm's Gemma-4 ``DecoderLayer`` after attention (``attended``, the attention
    output of ``input_layernorm(h)``): sandwich norms, the MLP (plus experts), per-layer input
    gating, the layer scalar -- the same steps in the same order."""
    h = h + layer.post_attention_layernorm(attended)
    residual = h
    if layer.enable_moe:
        h1 = layer.post_feedforward_layernorm_1(layer.mlp(layer.pre_feedforward_layernorm(h)))
        top_k_indices, top_k_weights = layer.router(h)
        h2 = layer.experts(layer.pre_feedforward_layernorm_2(h), top_k_indices, top_k_weights)
        h = h1 + layer.post_feedforward_layernorm_2(h2)
    else:
        h = layer.mlp(layer.pre_feedforward_layernorm(h))
    h = residual + layer.post_feedforward_layernorm(h)
    if layer.per_layer_input_gate is not None and per_layer_input is not None:
        gate = nn.gelu_approx(layer.per_layer_input_gate(h)) * per_layer_input
        h = h + layer.post_per_layer_input_norm(layer.per_layer_projection(gate))
    return h * layer.layer_scalar if layer.layer_scalar is not None else h


def _gemma4_tree_forward(model, tokens, cache, taps, rparents, first):
    """Gemma-4 text stacks (mlx-lm's ``gemma4_text``, and mlx-vlm's ``gemma4`` language model after
    the prompt, whose layers have the same parts): scaled embedding, per-layer inputs, sliding and full layers, the
    last layers reading the keys/values of the last earlier layer of their type."""
    inner = model.model
    n, L = len(inner.layers), tokens.shape[1]
    anc, rdepth, groups, inverse = _positions(cache[0], rparents, first, L)
    embedded = inner.embed_tokens(tokens)
    h = embedded * inner.embed_scale
    per_layer = [None] * n
    if inner.hidden_size_per_layer_input:
        if hasattr(inner, "_get_per_layer_inputs"):  # mlx-lm's gemma4_text
            inputs = inner._project_per_layer_inputs(h, inner._get_per_layer_inputs(tokens, embedded))
        else:  # mlx-vlm's gemma4 language model
            inputs = inner.project_per_layer_inputs(h, inner.get_per_layer_inputs(tokens))
        per_layer = [inputs[:, :, i, :] for i in range(n)]
    owned = list(cache) + [None] * (n - len(cache))
    fetched: Dict[int, Tuple[mx.array, mx.array]] = {}
    masks: Dict[int, mx.array] = {}
    wanted, tapped = set(taps), {}
    for i, (layer, c, src, pli) in enumerate(zip(inner.layers, owned, inner.previous_kvs, per_layer)):
        sliding = layer.layer_type == "sliding_attention"
        if c is not None:  # before this layer's update: the keys it will fetch
            masks[i] = tree_mask(c, anc, first, L, rdepth, inner.window_size if sliding else None)
        shared = fetched.get(src) if src != i else None
        attended, fetched[i] = _gemma4_attention(layer.self_attn, layer.input_layernorm(h), masks[src], c,
                                                 shared, groups, inverse)
        h = _gemma4_block(layer, h, attended, pli)
        if i in wanted:
            tapped[i] = h
    return inner.norm(h), [tapped[i] for i in taps]


TREE_FAMILIES: Dict[str, Callable] = {t: _decoder_tree_forward for t in ("llama", "qwen2", "qwen3", "mistral", "smollm3")}
TREE_FAMILIES["gemma4_text"] = _gemma4_tree_forward


def tree_forward(target, tokens: mx.array, cache: List[Any], taps: Sequence[int], parents: Sequence[int], first: int = 0):
    """Logits ``(1, L, V)`` and tapped hidden states of round nodes ``first .. first + L - 1``
    (``tokens (1, L)``; ``parents`` in draft numbering, for every round node up to the last fed).
    The cache must hold exactly the prefix and round nodes ``< first``; it gains the fed nodes in
    order (round node ``j`` at the prefix length + ``j``)."""
    forward = TREE_FAMILIES.get(target.model_type)
    if forward is None:
        raise ValueError(
            f"tree verification is not implemented for model_type '{target.model_type}' "
            f"(supported: {', '.join(sorted(TREE_FAMILIES))})"
        )
    h, tapped = forward(target.model, tokens, cache, taps, round_parents(parents), first)
    return target.head(h), (mx.concatenate(tapped, axis=-1) if taps else None)


def probe_tolerance(dtype: mx.Dtype) -> float:
    """How far a re-implemented forward may be from the model's own: float32 sums in another order
    differ by ~1e-6; bfloat16 / float16 ones by up to ~1e-2 (8 / 11 bits of mantissa), while a wrong
    position or mask moves logits by O(1)."""
    return 1e-4 if dtype == mx.float32 else 5e-2


def check_tree_forward(target) -> None:
    """Raise ``ValueError`` unless :func:`tree_forward` reproduces ``model(x)`` for the target: a
    probe prefix, then a tree of two branches; each node's logits must equal a chain forward's
    over its own path (relative difference within :func:`probe_tolerance`)."""
    if target.model_type not in TREE_FAMILIES:
        raise ValueError(
            f"tree verification is not implemented for model_type '{target.model_type}' "
            f"(supported: {', '.join(sorted(TREE_FAMILIES))})"
        )
    cache = target.make_cache()
    caches.check_rollback(cache, trees=True)
    V = target.vocab_size
    prefix = [t % V for t in (1, 5, 2, 7)]
    tok = [t % V for t in (3, 4, 6, 0, 2, 5)]
    parents = (-1, -1, 0, 1, 1, 3)  # two branches, one splitting again
    root = 9 % V
    target(mx.array([prefix], dtype=mx.uint32), cache)  # the adapter's plain forward: the model's own
    logits, _ = tree_forward(target, mx.array([[root] + tok], dtype=mx.uint32), cache, (), parents)
    diffs = []
    for node in range(-1, len(tok)):
        path = [root] + [tok[i] for i in path_to(parents, node)]
        ref = target(mx.array([prefix + path], dtype=mx.uint32), target.make_cache())[0][0, -1]
        ours = logits[0, node + 1]
        diffs.append(relative_max_diff(ref, ours))
    if max(diffs) > probe_tolerance(logits.dtype):
        raise ValueError(
            f"the tree forward for model_type '{target.model_type}' does not reproduce model(x) "
            f"(relative max difference {max(diffs):.2e}); refusing tree verification"
        )
