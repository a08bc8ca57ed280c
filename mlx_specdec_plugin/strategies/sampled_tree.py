"""Sampled draft trees: sibling groups drawn without replacement from the drafter's tempered q.

At temperature > 0 a tree whose siblings are the drafter's top-k tokens keeps a node with
probability ``p(node)`` only, while a sampled chain keeps its draft with probability
``sum min(p, q)``. A *sampled* tree keeps the chain's advantage and adds siblings: each node's
children are drawn without replacement from ``q`` at that node (the user's sampling chain, as
:func:`~mlx_specdec_plugin.contract.draw` draws a chain), and the ``tree`` acceptor's
without-replacement rule (Jeon et al. 2024, arXiv:2402.14160) keeps it exact.

The shape is fixed before anything is drawn in the round: it is the best-first tree of the node
budget under a model of how often the sibling of rank ``j`` is the one kept, ``s_j = h_j
prod_{i<j} (1 - h_i)`` with ``h_j`` the chance that rank ``j`` is kept once ranks ``< j`` were
rejected. A node's modelled reach is the product of ``s`` over the ranks on its path, which
falls going down and (for these ``s``) going right, so taking the largest ``N`` (as
:func:`~mlx_specdec_plugin.strategies.tree.best_first` does for q) maximises the modelled
expected accepted length. ``h_j`` is a fixed option (``sibling_rate``), or estimated from this
generation's earlier rounds (:class:`SiblingRates`: counts of rank ``j`` tried and kept, with a
``Beta(1, 1)`` prior). Either way the shape is a function of the options, the budget and rounds
already committed: it does not depend on the target's rows of this round, nor on this round's
draws (``docs/tree_verification.md`` has the proof, and why that is what it needs).

A group is drawn with the Gumbel top-k trick: the tokens of the ``k`` largest ``log q + G``
(``G`` i.i.d. standard Gumbel), in decreasing order, are ``k`` draws without replacement from
``q`` in draw order (Kool, van Hoof and Welling 2019, "Stochastic Beams and Where to Find
Them"). When ``q`` has fewer than ``k`` tokens of positive mass (top-k, top-p, min-p), the group
is cut to them, a decision made from ``q`` alone, before the draw.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import mlx.core as mx

from .. import tree


def rank_rates(hazards: Sequence[float]) -> List[float]:
    """``s_j = h_j prod_{i<j} (1 - h_i)``: the chance that the rank-``j`` sibling is the kept one."""
    out, left = [], 1.0
    for h in hazards:
        out.append(left * h)
        left *= 1.0 - h
    return out


def shape(rates: Sequence[float], budget: int, max_depth: int) -> Tuple[int, ...]:
    """The best-first tree of at most ``budget`` nodes when a node's reach is the product of
    ``rates[rank]`` along its path (``len(rates)``: children per node at most), depth at most
    ``max_depth``: ``parents`` in breadth-first order, each sibling group contiguous and in
    rank (draw) order. A sibling enters only after its elder sibling, a child only after its
    parent, so the node set is always a tree whose groups are prefixes of their draws."""
    if budget < 1 or max_depth < 1 or not rates or rates[0] <= 0:
        return ()
    picked: List[Tuple[int, int, int]] = []  # (parent pick index or -1, rank, depth)
    reach: List[float] = []
    heap: List[Tuple[float, int, int, int]] = [(-rates[0], 0, -1, 0)]
    counter = 1
    while heap and len(picked) < budget:
        neg, _, parent, rank = heappop(heap)
        node = len(picked)
        depth = 1 if parent < 0 else picked[parent][2] + 1
        picked.append((parent, rank, depth))
        reach.append(-neg)
        base = 1.0 if parent < 0 else reach[parent]
        if rank + 1 < len(rates) and rates[rank + 1] > 0:
            heappush(heap, (-(base * rates[rank + 1]), counter, parent, rank + 1))
            counter += 1
        if depth < max_depth:
            heappush(heap, (-(reach[node] * rates[0]), counter, node, 0))
            counter += 1
    # breadth-first: by depth, then by the parent's new index, then by rank
    order: List[int] = []
    new = {-1: -1}
    for d in range(1, max(p[2] for p in picked) + 1):
        level = sorted((i for i, p in enumerate(picked) if p[2] == d), key=lambda i: (new[picked[i][0]], picked[i][1]))
        for i in level:
            new[i] = len(order)
            order.append(i)
    return tuple(new[picked[i][0]] for i in order)


class SiblingRates:
    """``h_j`` for the shape: fixed (``sibling_rate``), or this generation's counts of the rank-``j``
    sibling tried and kept (the ``tree`` acceptor tries siblings in order, so the accepted path
    tells them: at each node of the path, the ranks before the kept child were rejected; at its
    last node, every child was), with a ``Beta(1, 1)`` prior."""

    def __init__(self, fixed: Optional[float] = None):
        if fixed is not None and not 0.0 < fixed <= 1.0:
            raise ValueError(f"sibling_rate must be in (0, 1], got {fixed}")
        self.fixed = fixed
        self.tried: List[int] = []
        self.kept: List[int] = []
        self.pending: Optional[Tuple[Tuple[int, ...], List[int]]] = None  # the open round's tree

    def drew(self, parents: Optional[Tuple[int, ...]], tokens: Optional[List[int]]) -> None:
        """This round's sampled tree (``None``: the round drew none), counted at :meth:`commit`."""
        self.pending = None if parents is None else (parents, tokens)

    def commit(self, tokens: Sequence[int]) -> None:
        """The round's commit (the pending token, then the kept path): count the open tree, if any."""
        if self.pending is not None:
            self.observe(*self.pending, list(tokens)[1:])
            self.pending = None

    def hazards(self, k: int) -> List[float]:
        if self.fixed is not None:
            return [self.fixed] * k
        out = []
        for j in range(k):
            tried = self.tried[j] if j < len(self.tried) else 0
            kept = self.kept[j] if j < len(self.kept) else 0
            out.append((kept + 1.0) / (tried + 2.0))
        return out

    def shape(self, budget: int, k: int, max_depth: int) -> Tuple[int, ...]:
        return shape(rank_rates(self.hazards(k)), budget, max_depth)

    def observe(self, parents: Sequence[int], tokens: Sequence[int], accepted: Sequence[int]) -> None:
        """Count one round: ``accepted`` are the tokens kept after the root (siblings are distinct
        tokens, so they name the path)."""
        kids = tree.children(parents)
        node, i = -1, 0
        while True:
            group = kids.get(node, [])
            want = accepted[i] if i < len(accepted) else None
            rank = next((r for r, c in enumerate(group) if tokens[c] == want), None)
            tried = len(group) if rank is None else rank + 1
            while len(self.tried) < tried:
                self.tried.append(0)
                self.kept.append(0)
            for r in range(tried):
                self.tried[r] += 1
            if rank is None:
                return
            self.kept[rank] += 1
            node, i = group[rank], i + 1


def draw_groups(q: mx.array, sizes: Sequence[int]) -> List[List[int]]:
    """For each row of ``q (n, V)``, ``sizes[i]`` tokens drawn without replacement from it, in
    draw order (Gumbel top-k; one host sync). A row with fewer tokens of positive mass gives
    all of them: the cut depends on ``q`` only."""
    k = max(sizes) if sizes else 0
    if k == 0:
        return [[] for _ in sizes]
    V = q.shape[-1]
    k = min(k, V)
    keys = mx.log(q.astype(mx.float32)) + mx.random.gumbel(shape=q.shape)
    idx = mx.argpartition(-keys, kth=k - 1, axis=-1)[:, :k] if k < V else mx.broadcast_to(mx.arange(V), q.shape)
    vals = mx.take_along_axis(keys, idx, axis=-1)
    support = (q > 0).sum(axis=-1)
    mx.eval(vals, idx, support)
    out = []
    for v, i, n, size in zip(vals.tolist(), idx.tolist(), support.tolist(), sizes):
        ranked = sorted(zip(v, i), key=lambda t: -t[0])
        out.append([int(t) for _, t in ranked[: min(size, int(n))]])
    return out


# logits_of(level, paths, token): raw drafter logits (n, V) at the nodes of ``level`` (shape node ids,
# ``-1`` the root), given every drawn node's path and token so far
LevelLogits = Callable[[List[int], Dict[int, List[int]], Dict[int, int]], mx.array]


def sample_tree(shape_: Sequence[int], sampling, history: Sequence[int], logits_of: LevelLogits):
    """Draw a sampled tree of shape ``shape_`` a depth at a time: each level's rows through the
    user's sampling chain (each node's own path as its history), each group drawn without
    replacement (:func:`draw_groups`). Returns ``(parents, tokens, q)`` with ``q (n, V)`` each
    node's group row, or ``None`` when nothing was drawn."""
    kids = tree.children(shape_)
    token: Dict[int, int] = {}
    rows: Dict[int, mx.array] = {}
    paths: Dict[int, List[int]] = {-1: []}
    level = [-1]
    while level:
        raw = logits_of(level, paths, token)
        q = sampling.distribution(sampling.processed_rows(raw, [list(history) + paths[n] for n in level]))
        q = q.astype(mx.float32)
        nxt = []
        for j, (n, group) in enumerate(zip(level, draw_groups(q, [len(kids[n]) for n in level]))):
            for c, t in zip(kids[n], group):  # a group cut to q's support drops its tail
                token[c], rows[c], paths[c] = t, q[j], paths[n] + [t]
                if c in kids:
                    nxt.append(c)
        level = nxt
    chosen = [c for c in range(len(shape_)) if c in token]  # breadth-first, groups in draw order
    if not chosen:
        return None
    index = {c: j for j, c in enumerate(chosen)}
    parents = tuple(-1 if shape_[c] < 0 else index[shape_[c]] for c in chosen)
    return parents, [token[c] for c in chosen], mx.stack([rows[c] for c in chosen])
