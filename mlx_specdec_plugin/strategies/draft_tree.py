"""``tree`` with a classic draft model: a top-k draft tree, one draft-model forward per depth.

The draft model (an mlx-lm model with the target's tokenizer) grows the tree a depth at a time.
The round's first forward runs the committed tokens not yet in the draft cache and the pending
token (the root), as :mod:`.draft_model` does (for a draft model with sliding-window layers, as a
chain-shaped tree forward, so that the window is masked even for one token: such layers keep a
plain ``KVCache`` here, trimmable, growing with the context). Each node's children are its ``k`` most likely
tokens under the draft model (``log q``: the user's logits processors applied with the node's own
path, no temperature, as the block-drafter tree ranks them), scored by the path's log-probability
``sum log q``. At each depth the nodes of that depth that are among the ``N`` best candidates so
far (``N`` = the round's node budget) are fed to the draft model together, in one forward with a
tree attention mask (:func:`~mlx_specdec_plugin.tree.tree_forward` on the draft model, positions
by depth, proven on a probe for the draft model's family first). A candidate outside the current
best ``N - 1`` can never have a child in the final tree (more candidates only raise the bar, and
a child scores no more than its parent and ranks after it), so the result is the best-first tree
of ``N`` nodes under ``q`` with at most ``k`` children per node, and the growth stops at the
first depth with no such node.

Cost per round: at most ``min(N, D + 1)`` draft-model forwards for a tree of depth ``D`` (a chain
of ``N`` drafts costs ``N``; the ``+ 1`` is a last depth whose children all lost), the forward at
depth ``d`` over the ``n_d < N`` nodes expanded there. The tree
nodes are trimmed off the draft cache in :meth:`DraftTreeProposer.extend`; the accepted path's
tokens are fed again with the next root (same forward, no extra step).

The top-k tree is a deterministic function of the context, so the ``tree`` acceptor's point-mass
rule keeps it exact at any temperature (:mod:`~mlx_specdec_plugin.acceptors.tree`).

``mode="sampled"`` (opt-in; at temperature > 0 with a known sampling distribution) draws a *sampled* tree
instead (:mod:`.sampled_tree`): a shape fixed before the round's draws, then each sibling group
drawn without replacement from the draft model's tempered q at its node (the user's whole
sampling chain, with the node's path), a depth at a time with the same one forward per depth;
``Draft.q`` reports each node's group row and the acceptor's without-replacement rule keeps it
exact. At temperature 0 the tree is always the top-k one.
"""

from __future__ import annotations

import weakref
from typing import List, Optional, Sequence, Tuple

import mlx.core as mx
from mlx_lm.models.cache import KVCache, RotatingKVCache

from .. import caches, tree
from ..contract import Draft, DraftContext, StrategyOptions
from ..sampling import normalise
from ..target import TargetAdapter
from .draft_model import DraftModelProposer
from .sampled_tree import SiblingRates, sample_tree

MODES = ("sampled", "topk")
# at T > 0; top-k until sampled trees win at the default width too (docs/tree_verification.md,
# "Sampled tree, top-k tree and chain at equal verify width")
DEFAULT_MODE = "topk"


# draft models whose tree forward passed the probe (id -> model; the probe runs once per model)
_PROVEN: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


def top_k_rows(logprobs: mx.array, k: int) -> List[List[Tuple[float, int]]]:
    """The ``k`` most likely tokens of each row of ``(n, V)`` log-probabilities, best first
    (ties by token id; ``-inf`` dropped), with one host sync."""
    V = logprobs.shape[-1]
    k = min(k, V)
    idx = mx.argpartition(-logprobs, kth=k - 1, axis=-1)[:, :k] if k < V else mx.broadcast_to(mx.arange(V), logprobs.shape)
    vals = mx.take_along_axis(logprobs, idx, axis=-1)
    out = []
    for v, i in zip(vals.tolist(), idx.tolist()):
        pairs = sorted(zip(v, i), key=lambda t: (-t[0], t[1]))
        out.append([(s, int(t)) for s, t in pairs if s > float("-inf")])
    return out


class DraftTreeProposer(DraftModelProposer):
    """Per-generation state: the draft model's cache (committed tokens; the round's root and tree
    nodes on top while a round is open)."""

    drafts_trees = True

    def __init__(self, target: TargetAdapter, draft_model, options: StrategyOptions,
                 max_children: Optional[int] = None, max_depth: Optional[int] = None,
                 mode: str = DEFAULT_MODE, sibling_rate: Optional[float] = None):
        if mode not in MODES:
            raise ValueError(f"strategy 'tree': mode must be one of {', '.join(MODES)}, got {mode!r}")
        super().__init__(target, draft_model, options)
        # sliding-window layers keep every row in a plain KVCache here (a tree grows on top of the
        # draft cache and is trimmed off again); the window is applied by the mask: every
        # speculative forward is a tree forward, which masks by the layer's window
        self.windowed = any(type(c) is RotatingKVCache for c in self.cache)
        self.cache = [KVCache() if type(c) is RotatingKVCache and c.keep == 0 else c for c in self.cache]
        self.fuse = True
        if not caches.trimmable(self.cache):
            kinds = sorted({type(c).__name__ for c in caches.leaves(self.cache)})
            raise ValueError(
                f"strategy 'tree' with a draft model needs a draft cache that can be trimmed "
                f"(the draft model's is {', '.join(kinds)})"
            )
        self.adapter = TargetAdapter(draft_model)
        if _PROVEN.get(id(draft_model)) is not draft_model:
            try:
                self.adapter.check_tree()
            except ValueError as e:
                raise ValueError(f"strategy 'tree' grows the tree with the draft model, and for it: {e}") from None
            _PROVEN[id(draft_model)] = draft_model
        self.max_children = max_children
        self.max_depth = max_depth
        self.nodes_fed = 0  # tree nodes in the draft cache above the root (trimmed in extend)
        self.forwards = 0  # draft-model forwards of the last propose (root included)
        self.mode = mode
        self.rates = SiblingRates(sibling_rate)

    def rewind(self, n: int) -> bool:
        return False if self.nodes_fed else super().rewind(n)

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        tokens = list(tokens)
        self.committed += len(tokens)
        if self.fed:  # a round is open: the root is committed, the tree nodes go
            if self.nodes_fed:
                for c in caches.leaves(self.cache):
                    c.trim(self.nodes_fed)
            if not tokens or tokens[0] != self.last[0]:
                raise ValueError("draft tree: the round's first committed token is not its root")
            self.rates.commit(tokens)
            tokens, self.fed, self.nodes_fed = tokens[1:], 0, 0
        self.unfed.extend(tokens)

    def _rows(self, logits: mx.array, ctx: DraftContext, paths: List[List[int]]) -> mx.array:
        """``log q`` rows ``(n, V)`` for nodes with these paths (logits ``(n, V)``)."""
        processed = ctx.sampling.processed_rows(logits, [list(ctx.history) + p for p in paths])
        return normalise(processed).astype(mx.float32)

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        budget = int(max_tokens)
        if budget < 1:
            return Draft.empty()
        k = min(budget, self.max_children or budget)
        max_depth = min(budget, self.max_depth or budget)
        committed, self.unfed = self.unfed, []
        if len(committed) >= self.step_size:  # a long prefill in chunks first
            cut = len(committed) - len(committed) % self.step_size
            for start in range(0, cut, self.step_size):
                self.model(mx.array([committed[start : start + self.step_size]], dtype=mx.uint32), cache=self.cache)
            committed = committed[cut:]
        # the committed tail and the root in one forward (a chain-shaped tree: windows masked even
        # for a single token, which mlx-lm's own width-1 mask leaves to the ring)
        chain = mx.array([committed + [ctx.pending]], dtype=mx.uint32)
        if self.windowed:
            logits, _ = tree.tree_forward(self.adapter, chain, self.cache, (), tuple(range(-1, chain.shape[1] - 2)))
        else:
            logits = self.model(chain, cache=self.cache)
        root = logits[0, -1:]
        self.fed, self.nodes_fed, self.forwards = 1, 0, 1
        self.last = (ctx.pending, None)
        self.rates.drew(None, None)
        if self.mode == "sampled" and ctx.sampling.known and not ctx.sampling.greedy:
            return self._grow_sampled(ctx, root, budget, k, max_depth)

        # candidates: (score, parent candidate or -1, token, depth); fed: candidate -> fed index
        cands: List[Tuple[float, int, int, int]] = []
        fed_of: dict = {}
        fed_parents: List[int] = []  # parents of the fed nodes in fed numbering (-1: the root)
        paths: dict = {-1: []}

        def add_children(parent: int, children: List[Tuple[float, int]]) -> None:
            base = 0.0 if parent < 0 else cands[parent][0]
            depth = 1 if parent < 0 else cands[parent][3] + 1
            for lq, t in children:
                cands.append((base + lq, parent, t, depth))

        def best(n: int) -> List[int]:
            return sorted(range(len(cands)), key=lambda i: (-cands[i][0], i))[:n]

        add_children(-1, top_k_rows(self._rows(root, ctx, [[]]), k)[0])
        depth = 1
        while depth < max_depth:
            # the N-th best cannot gain a child (a child ranks after its parent): the best N - 1
            frontier = [i for i in sorted(best(budget - 1)) if cands[i][3] == depth]
            if not frontier:
                break
            for i in frontier:
                paths[i] = paths[cands[i][1]] + [cands[i][2]]
            first = 1 + len(fed_parents)
            for i in frontier:
                fed_of[i] = len(fed_parents)
                parent = cands[i][1]
                fed_parents.append(-1 if parent < 0 else fed_of[parent])
            tokens = mx.array([[cands[i][2] for i in frontier]], dtype=mx.uint32)
            logits, _ = tree.tree_forward(self.adapter, tokens, self.cache, (), fed_parents, first=first)
            self.nodes_fed += len(frontier)
            self.forwards += 1
            for i, children in zip(frontier, top_k_rows(self._rows(logits[0], ctx, [paths[i] for i in frontier]), k)):
                add_children(i, children)
            depth += 1

        chosen = sorted(best(budget), key=lambda i: (cands[i][3], i))  # parents before children
        index = {c: j for j, c in enumerate(chosen)}
        parents = tuple(-1 if cands[c][1] < 0 else index[cands[c][1]] for c in chosen)
        tokens = mx.array([cands[c][2] for c in chosen], dtype=mx.uint32)
        self.last = (ctx.pending, tokens)
        return Draft(tokens, None, True, parents)

    def _grow_sampled(self, ctx: DraftContext, root: mx.array, budget: int, k: int, max_depth: int) -> Draft:
        """A sampled tree: the shape first (:class:`~.sampled_tree.SiblingRates`), then a depth at a
        time, each group drawn without replacement from q at its node (one draft forward per
        depth over the nodes that have children in the shape)."""
        shape = self.rates.shape(budget, k, max_depth)
        fed_of: dict = {-1: -1}
        fed_parents: List[int] = []

        def logits_of(level: List[int], paths, token) -> mx.array:
            if level == [-1]:
                return root
            first = 1 + len(fed_parents)
            for c in level:
                fed_of[c] = len(fed_parents)
                fed_parents.append(fed_of[shape[c]])
            feed = mx.array([[token[c] for c in level]], dtype=mx.uint32)
            out, _ = tree.tree_forward(self.adapter, feed, self.cache, (), fed_parents, first=first)
            self.nodes_fed += len(level)
            self.forwards += 1
            return out[0]

        drawn = sample_tree(shape, ctx.sampling, ctx.history, logits_of)
        if drawn is None:
            self.last = (ctx.pending, mx.array([], dtype=mx.uint32))
            return Draft.empty()
        parents, tokens, q = drawn
        self.rates.drew(parents, tokens)
        self.last = (ctx.pending, mx.array(tokens, dtype=mx.uint32))
        return Draft(mx.array(tokens, dtype=mx.uint32), q, False, parents)
