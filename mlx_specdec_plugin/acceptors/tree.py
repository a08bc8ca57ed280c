"""``tree``: exact verification of a draft tree (chains included) by recursive rejection sampling.

The multi-draft rule of SpecInfer (Miao et al., "SpecInfer: Accelerating Large Language Model
Serving with Tree-based Speculative Inference and Verification", ASPLOS 2024) and of recursive
rejection sampling without replacement (Jeon et al., "Recursive Speculative Decoding:
Accelerating LLM Inference via Sampling Without Replacement", 2024, arXiv:2402.14160), applied
node by node down the tree. Proof sketch and the T = 0 rule: ``docs/tree_verification.md``.

At a node whose target row is ``p`` (processed as every acceptor sees it: logits processors with
the node's own path, then temperature / top-p / min-p / top-k), with children ``c_1..c_k`` in
sibling order, the residual starts as ``r = p``:

* siblings drawn without replacement from ``q`` (``draft.q``; ``q_1 = q``, ``q_{j+1}`` = ``q_j``
  with ``c_j`` removed, renormalised): keep ``c_j`` with probability
  ``min(1, r(c_j) / q_j(c_j))``; on rejection ``r := norm(max(r - q_j, 0))``;
* deterministic siblings (a function of the context, e.g. best-first top-k): the same with
  ``q_j`` the point mass on ``c_j``, i.e. keep ``c_j`` with probability ``r(c_j)``, and on
  rejection ``r := norm(r`` without ``c_j)``.

A kept child becomes the node and the walk goes on in its subtree; when no child is kept the
next token is drawn from ``r`` (from ``p`` at a leaf). Each step is one rejection-sampling step
whose target is the previous residual, so the emitted token at every node is distributed as ``p``.
At temperature 0 the walk follows the child equal to the target's argmax (mlx-lm's greedy pick)
and stops with the argmax: the longest greedy-matching path.
"""

from __future__ import annotations

from typing import List, Sequence

import mlx.core as mx

from .. import tree
from ..contract import Draft, TargetScores, Verdict
from ..sampling import sample_from

EPS = 1e-12


def _hits(vocab: int, tokens: List[int]) -> mx.array:
    """Boolean ``(V,)``: True at ``tokens``."""
    return (mx.arange(vocab)[None, :] == mx.array(tokens, dtype=mx.int32)[:, None]).any(axis=0)


def _parents(draft: Draft) -> Sequence[int]:
    return draft.parents if draft.parents is not None else tuple(range(-1, len(draft) - 1))


def accept(draft: Draft, scores: TargetScores) -> Verdict:
    if scores.sampling.greedy:
        return accept_greedy(draft, scores)
    if draft.q is None and not draft.deterministic:
        raise ValueError("acceptor 'tree' needs the draft distribution q, which the drafter did not report")
    if draft.deterministic:
        return _accept_point_masses(draft, scores)
    return _accept_without_replacement(draft, scores)


def accept_greedy(draft: Draft, scores: TargetScores) -> Verdict:
    """The longest path of children equal to the target's argmax, then the argmax."""
    best = scores.greedy_tokens()
    kids = tree.children(_parents(draft))
    tokens = draft.tokens.tolist()
    node, path = -1, []
    while True:
        want = best[node + 1]
        nxt = next((c for c in kids.get(node, ()) if tokens[c] == want), None)
        if nxt is None:
            return Verdict(len(path), want, tuple(path))
        node = nxt
        path.append(node)


def _accept_point_masses(draft: Draft, scores: TargetScores) -> Verdict:
    """Deterministic siblings: every decision needs only p at the children (one host sync)."""
    p = scores.probs()
    parents = _parents(draft)
    g = len(parents)
    if g == 0:
        return Verdict(0, int(sample_from(p[:1]).item()), ())
    rows = mx.array([p + 1 for p in parents], dtype=mx.int32)
    p_child = p[rows, draft.tokens.astype(mx.int32)]  # p of each node under its parent's row
    coins = mx.random.uniform(shape=(g,))
    mx.eval(p_child, coins)
    p_child, coins, tokens = p_child.tolist(), coins.tolist(), draft.tokens.tolist()
    kids = tree.children(parents)
    node, path = -1, []
    while True:
        removed, rejected = 0.0, []
        chosen = None
        for c in kids.get(node, ()):
            mass = 1.0 - removed
            if mass > EPS and coins[c] * mass < p_child[c]:  # coin < r(c) / |r|
                chosen = c
                break
            removed += p_child[c]
            rejected.append(c)
        if chosen is None:
            row = p[node + 1]
            if rejected:
                residual = mx.where(_hits(row.shape[-1], [tokens[c] for c in rejected]), 0.0, row)
                row = mx.where(residual.sum() > EPS, residual, row)
            return Verdict(len(path), int(sample_from(row[None]).item()), tuple(path))
        node = chosen
        path.append(node)


def _accept_without_replacement(draft: Draft, scores: TargetScores) -> Verdict:
    """Siblings drawn without replacement from ``draft.q`` (Jeon et al.'s recursive rejection)."""
    p = scores.probs()
    q_all = draft.q.astype(mx.float32)
    parents = _parents(draft)
    g = len(parents)
    if g == 0:
        return Verdict(0, int(sample_from(p[:1]).item()), ())
    tokens = draft.tokens.tolist()
    coins = mx.random.uniform(shape=(g,)).tolist()
    kids = tree.children(parents)
    node, path = -1, []
    while True:
        r = p[node + 1]
        group = kids.get(node, [])
        q = q_all[group[0]] if group else None
        chosen = None
        for c in group:
            t = tokens[c]
            r_c, q_c = mx.stack([r[t], q[t]]).tolist()
            if q_c > 0 and coins[c] * q_c < r_c:  # coin < min(1, r(c) / q(c))
                chosen = c
                break
            residual = mx.maximum(r - q, 0.0)
            mass = residual.sum()
            r = mx.where(mass > EPS, residual / mass, r)
            q = mx.where(_hits(q.shape[-1], [t]), 0.0, q)
            q_mass = q.sum()
            q = mx.where(q_mass > EPS, q / q_mass, q)
        if chosen is None:
            return Verdict(len(path), int(sample_from(r[None]).item()), tuple(path))
        node = chosen
        path.append(node)
