"""``tree``: a draft tree from one block-drafter pass (DDTree-style best-first), verified at once.

(With a classic mlx-lm draft model instead, ``build`` returns the top-k tree of
:mod:`.draft_tree`: one draft-model forward per depth; with Gemma-4's assistant,
:class:`AssistantTreeProposer`: one assistant call per depth.)

The block drafter (a DSpark or DFlash checkpoint) runs its usual single forward over
``[anchor, mask x (g - 1)]`` and gives one row of logits per depth ``1..g``; DSpark's rows are
corrected by its Markov head with the parent node's token. Each node's children are ranked by
``log q`` (the user's logits processors applied with the node's own path, untempered), and the
tree grows best-first by the product of q along the path (the prefix mass DDTree ranks by: under
the drafter's own factorised distribution, the expected accepted length of a tree is the sum of
its nodes' prefix masses, so popping the largest first fills the budget best), one node per step, until ``max_tokens`` nodes (the round's node
budget; the verify width is ``nodes + 1``) or depth ``g``. ``options.extra["max_children"]``
caps the branching (default: the budget).

The tree is a deterministic function of the context, so the ``tree`` acceptor's point-mass rule
keeps it exact at any temperature (:mod:`~mlx_specdec_plugin.acceptors.tree`).

``mode="sampled"`` (temperature > 0, a known sampling distribution): a sampled tree instead
(:mod:`.sampled_tree`), its shape fixed before the round's draws and each sibling group drawn
without replacement from the tempered q of the node's row (Markov-corrected by the node's own
parent token for DSpark), reported in ``Draft.q`` for the acceptor's without-replacement rule.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import mlx.core as mx

from .. import tree
from ..drafters import as_drafter, claims as _claims
from ..contract import Draft, DraftContext, StrategyOption, StrategyOptions
from ..sampling import normalise
from ..target import TargetAdapter
from . import assistant
from .dflash import BlockProposer
from .draft_model import is_mlx_lm_model
from .draft_tree import DEFAULT_MODE, MODES, DraftTreeProposer
from .dspark import DSparkProposer
from .sampled_tree import SiblingRates, sample_tree

OPTIONS = (
    StrategyOption("max_children", int, None, "children per node at most (default: the node budget)"),
    StrategyOption("max_depth", int, None, "draft-model and assistant trees: depth at most (default: the node budget)"),
    StrategyOption("mode", str, DEFAULT_MODE, "at T > 0: 'sampled' (siblings drawn without replacement from q) "
                   "or 'topk' (the best-first top-k tree, the default); T = 0 is always top-k"),
    StrategyOption("sibling_rate", float, None, "sampled trees: the modelled chance that a sibling is kept once "
                   "its elders were rejected, which fixes the shape (default: estimated from earlier rounds)"),
)

# children_of(node, path tokens) -> [(log q, token), ...] best first; node -1 is the root
ChildrenFn = Callable[[int, List[int]], List[Tuple[float, int]]]


def best_first(children_of: ChildrenFn, budget: int, max_depth: int) -> Tuple[List[int], Tuple[int, ...]]:
    """Grow a tree best-first by path log-probability: ``(tokens, parents)``, nodes in pop order
    (parents first, siblings by rank)."""
    tokens: List[int] = []
    parents: List[int] = []
    depth: List[int] = []
    score: List[float] = []
    kids: Dict[int, List[Tuple[float, int]]] = {-1: children_of(-1, [])}
    heap: List[Tuple[float, int, int, int]] = []
    counter = 0
    if kids[-1] and budget > 0 and max_depth > 0:
        heappush(heap, (-kids[-1][0][0], counter, -1, 0))
    while heap and len(tokens) < budget:
        neg, _, parent, rank = heappop(heap)
        node = len(tokens)
        tokens.append(kids[parent][rank][1])
        parents.append(parent)
        depth.append(1 if parent < 0 else depth[parent] + 1)
        score.append(-neg)
        base = 0.0 if parent < 0 else score[parent]
        counter += 1
        if rank + 1 < len(kids[parent]):
            heappush(heap, (-(base + kids[parent][rank + 1][0]), counter, parent, rank + 1))
        if depth[node] < max_depth and len(tokens) < budget:
            path = [tokens[i] for i in tree.path_to(parents, node)]
            kids[node] = children_of(node, path)
            if kids[node]:
                counter += 1
                heappush(heap, (-(score[node] + kids[node][0][0]), counter, node, 0))
    return tokens, tuple(parents)


def top_children(logprobs: mx.array, k: int) -> List[Tuple[float, int]]:
    """The ``k`` most likely tokens of a ``(V,)`` log-probability row, best first (finite only)."""
    k = min(k, logprobs.shape[-1])
    idx = mx.argpartition(-logprobs, kth=k - 1)[:k] if k < logprobs.shape[-1] else mx.arange(k)
    vals = logprobs[idx]
    pairs = sorted(zip(vals.tolist(), idx.tolist()), key=lambda t: (-t[0], t[1]))
    return [(v, int(i)) for v, i in pairs if v > float("-inf")]


class BlockTreeProposer:
    """Tree proposals from a :class:`BlockProposer` (DSpark or DFlash) and its context cache."""

    drafts_trees = True

    def __init__(self, block: BlockProposer, max_children: Optional[int], mode: str = DEFAULT_MODE,
                 sibling_rate: Optional[float] = None):
        self.block = block
        self.tap_layers = block.tap_layers
        self.cap = block.cap
        self.max_children = max_children
        self.markov = isinstance(block, DSparkProposer)
        self.mode = mode
        self.rates = SiblingRates(sibling_rate)

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        self.rates.commit(tokens)
        self.block.extend(tokens, hidden)

    def _row(self, base: mx.array, d: int, parent_token: int) -> mx.array:
        row = base[d]
        if self.markov:
            row = row + self.block.markov(mx.array(parent_token, dtype=mx.uint32)).astype(row.dtype)
        return row

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        g = min(max_tokens, self.cap)
        if g < 1:
            return Draft.empty()
        base, _ = self.block.base_logits(ctx.pending, g)
        sampling = ctx.sampling
        self.rates.drew(None, None)
        if self.mode == "sampled" and sampling.known and not sampling.greedy:
            return self._sampled(ctx, base, max_tokens, g)
        k = min(max_tokens, self.max_children or max_tokens)
        shared: Dict[int, List[Tuple[float, int]]] = {}

        def children_of(node: int, path: List[int]) -> List[Tuple[float, int]]:
            d = len(path)  # the children's depth - 1: their row in the block
            if d >= g:
                return []
            per_node = self.markov or bool(sampling.processors)
            if not per_node and d in shared:
                return shared[d]
            row = base[d]
            if self.markov:
                prev = mx.array(path[-1] if path else ctx.pending, dtype=mx.uint32)
                row = row + self.block.markov(prev).astype(row.dtype)
            lp = normalise(sampling.processed(row[None], list(ctx.history) + path))[0]
            out = top_children(lp.astype(mx.float32), k)
            if not per_node:
                shared[d] = out
            return out

        tokens, parents = best_first(children_of, max_tokens, g)
        if not tokens:
            return Draft.empty()
        return Draft(mx.array(tokens, dtype=mx.uint32), None, True, parents)

    def _sampled(self, ctx: DraftContext, base: mx.array, budget: int, g: int) -> Draft:
        """The shape first, then a depth at a time each group drawn without replacement from q at
        its node (the block row of its depth, Markov-corrected by its parent's token)."""
        k = min(budget, self.max_children or budget)

        def logits_of(level: List[int], paths, token) -> mx.array:
            d = len(paths[level[0]])  # one depth per level
            return mx.stack([self._row(base, d, paths[n][-1] if paths[n] else ctx.pending) for n in level])

        drawn = sample_tree(self.rates.shape(budget, k, g), ctx.sampling, ctx.history, logits_of)
        if drawn is None:
            return Draft.empty()
        parents, tokens, q = drawn
        self.rates.drew(parents, tokens)
        return Draft(mx.array(tokens, dtype=mx.uint32), q, False, parents)


class AssistantTreeProposer(assistant.AssistantProposer):
    """Tree drafts from Gemma-4's assistant (:mod:`.assistant`): a node's children come from one
    assistant step on (its token, its parent's projected output); steps of different nodes do not
    see each other, so a depth runs as rows of one call. Nothing of its own to roll back."""

    drafts_trees = True

    def __init__(self, drafter, options: StrategyOptions, max_children: Optional[int] = None,
                 max_depth: Optional[int] = None, mode: str = DEFAULT_MODE, sibling_rate: Optional[float] = None):
        super().__init__(drafter, options)
        self.max_children, self.max_depth, self.mode = max_children, max_depth, mode
        self.rates = SiblingRates(sibling_rate)

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        self.rates.commit(tokens)
        super().extend(tokens, hidden)

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        budget = int(max_tokens)
        self.rates.drew(None, None)
        if budget < 1 or self._last is None:
            return Draft.empty()
        if ctx.cache is None:
            raise ValueError(f"strategy 'tree' with an {assistant.KIND} drafter reads the target's cache, which this caller "
                             "does not pass (DraftContext.cache)")
        d, sampling, history = self.drafter, ctx.sampling, list(ctx.history)
        shared, position = d.shared_kv(ctx.cache)

        def steps(tokens: List[int], feats: mx.array) -> Tuple[mx.array, mx.array]:
            """One assistant call over independent rows: (next features (n, B), logits (n, V))."""
            inputs = mx.concatenate([d.embed(mx.array([tokens], dtype=mx.uint32)), feats[None]], axis=-1)
            f, logits = d.step(inputs, shared, position)
            return f[0], logits[0]

        root_f, root_logits = steps([ctx.pending], d.feature(self._last)[0])
        k = min(budget, self.max_children or budget)
        max_depth = min(budget, self.max_depth or budget)
        if self.mode == "sampled" and sampling.known and not sampling.greedy:
            return self._sampled(ctx, steps, root_f, root_logits, budget, k, max_depth)
        feats: Dict[Tuple[int, ...], mx.array] = {(): root_f[0]}  # a node's projected output (B,), by path

        def children_of(node: int, path: List[int]) -> List[Tuple[float, int]]:
            if path:
                f, logits = steps(path[-1:], feats[tuple(path[:-1])][None])
                feats[tuple(path)], row = f[0], logits[0]
            else:
                row = root_logits[0]
            lp = normalise(sampling.processed(row[None], history + path))[0]
            return top_children(lp.astype(mx.float32), k)

        tokens, parents = best_first(children_of, budget, max_depth)
        if not tokens:
            return Draft.empty()
        return Draft(mx.array(tokens, dtype=mx.uint32), None, True, parents)

    def _sampled(self, ctx, steps, root_f, root_logits, budget: int, k: int, max_depth: int) -> Draft:
        shape = self.rates.shape(budget, k, max_depth)
        feat: Dict[int, mx.array] = {-1: root_f[0]}

        def logits_of(level: List[int], paths, token) -> mx.array:
            if level == [-1]:
                return root_logits
            f, logits = steps([token[c] for c in level], mx.stack([feat[shape[c]] for c in level]))
            for j, c in enumerate(level):
                feat[c] = f[j]
            return logits

        drawn = sample_tree(shape, ctx.sampling, ctx.history, logits_of)
        if drawn is None:
            return Draft.empty()
        parents, tokens, q = drawn
        self.rates.drew(parents, tokens)
        return Draft(mx.array(tokens, dtype=mx.uint32), q, False, parents)


def build(target: TargetAdapter, draft, options: StrategyOptions):
    max_children = options.extra.get("max_children")
    max_children = int(max_children) if max_children is not None else None
    if max_children is not None and max_children < 1:
        raise ValueError(f"max_children must be >= 1, got {max_children}")
    mode = options.extra.get("mode") or DEFAULT_MODE
    if mode not in MODES:
        raise ValueError(f"strategy 'tree': mode must be one of {', '.join(MODES)}, got {mode!r}")
    rate = options.extra.get("sibling_rate")
    rate = float(rate) if rate is not None else None
    SiblingRates(rate)  # checks the range, before any generation
    for kind, cls in (("dspark", DSparkProposer), ("dflash", BlockProposer)):
        if _claims(draft, kind):
            return BlockTreeProposer(cls(as_drafter(draft, target.model, kind), options), max_children, mode, rate)
    max_depth = options.extra.get("max_depth")
    max_depth = int(max_depth) if max_depth is not None else None
    if max_depth is not None and max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    if _claims(draft, assistant.KIND):
        return AssistantTreeProposer(as_drafter(draft, target.model, assistant.KIND), options,
                                     max_children, max_depth, mode, rate)
    if is_mlx_lm_model(draft):
        return DraftTreeProposer(target, draft, options, max_children, max_depth, mode, rate)
    raise ValueError(
        "strategy 'tree' needs a DSpark or DFlash drafter (a checkpoint folder or a loaded drafter), a Gemma-4 "
        "assistant, or an mlx-lm draft model with the target's tokenizer"
    )
