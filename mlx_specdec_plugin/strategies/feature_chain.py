"""Proposer for heads that chain on the target's features: EAGLE-3 and native MTP heads.

Such a head sees *pairs*: at position t the embedding of token ``t + 1`` and a feature of the
target at t (EAGLE-3: ``fc`` of the fused low/mid/high taps; MTP: the target's final-normed
hidden state); its output at t predicts token ``t + 2``. A committed position's pair is complete
once the next token is known, so :meth:`FeatureChainProposer.extend` only queues the tapped
features and the next :meth:`~FeatureChainProposer.propose` runs them through the head with their
successors (the last one is ``ctx.pending``): that pass's last output gives the first proposal.
Each further proposal is one speculative step on (previous proposal, the head's own previous
output), appended to the head's KV cache and trimmed off again before the next committed pass.
So the head's state is rolled back with the target's: after every round its cache holds exactly
the pairs of committed positions, each computed from the target's own feature there (the proposer
owns that cache).

Every proposal is drawn through the user's sampling chain from the head's logits, and that q is
reported, so every acceptor stays exact.

The drafter object supplies ``tap_layers``, ``default_proposals``, ``make_cache()``,
``embed(tokens (1, L)) -> (1, L, E)``, ``project(tapped (1, L, n*H)) -> (1, L, D)``,
``step(embeds, features, cache) -> out (1, L, D)`` (the pre-head output, also the next step's
feature) and ``head(out) -> logits (.., V)`` over the target vocabulary.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import mlx.core as mx

from ..contract import Draft, DraftContext, StrategyOptions
from .dflash import sample_sequential


class FeatureChainProposer:
    """Per-generation state of a feature-chained head: its KV cache of committed pairs and the
    tapped features of committed positions whose successor is not known yet."""

    def __init__(self, drafter: Any, name: str, options: StrategyOptions):
        self.drafter, self.name = drafter, name
        self.tap_layers: Tuple[int, ...] = tuple(drafter.tap_layers)
        if options.block_size is not None and int(options.block_size) < 2:
            raise ValueError(f"block_size (verify width, anchor included) must be >= 2, got {options.block_size}")
        self.cap = int(options.block_size) - 1 if options.block_size is not None else int(drafter.default_proposals)
        self.cache = drafter.make_cache()
        self.paired = 0  # committed positions whose pair is in the cache
        self.speculative = 0  # cache entries appended by the last propose (trimmed before the next pass)
        self._queued: List[mx.array] = []
        self._last: Optional[mx.array] = None  # the head's output (1, 1, D) at the last committed pair

    def _drop_speculative(self) -> None:
        if self.speculative:
            for c in self.cache:
                c.trim(self.speculative)
            self.speculative = 0

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        if hidden is None:
            raise ValueError(f"strategy '{self.name}' needs the target's hidden states")
        if hidden.shape[1] != len(tokens):
            raise ValueError(f"extend: {len(tokens)} tokens but {hidden.shape[1]} hidden rows")
        self._drop_speculative()
        if len(tokens):
            self._queued.append(hidden)

    def _pair_queued(self, history: Sequence[int]) -> None:
        """Run the queued features with their successor tokens through the head (committed)."""
        hidden = self._queued[0] if len(self._queued) == 1 else mx.concatenate(self._queued, axis=1)
        k = hidden.shape[1]
        successors = list(history[self.paired + 1 : self.paired + 1 + k])
        if len(successors) != k:
            raise ValueError(f"{self.name}: {k} queued positions but only {len(successors)} known successors")
        d = self.drafter
        out = d.step(d.embed(mx.array([successors], dtype=mx.uint32)), d.project(hidden), self.cache)
        self._queued, self.paired, self._last = [], self.paired + k, out[:, -1:]

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        self._drop_speculative()
        g = min(max_tokens, self.cap)
        if self._queued:
            self._pair_queued(ctx.history)
        if g < 1 or self._last is None:  # nothing committed yet (a one-token prompt): no feature to draft from
            return Draft.empty()
        d, state = self.drafter, {"h": self._last}

        def row(i: int, prev: mx.array) -> mx.array:
            if i > 0:
                state["h"] = d.step(d.embed(prev.reshape(1, 1)), state["h"], self.cache)
                self.speculative += 1
            return d.head(state["h"])[0, 0]

        return sample_sequential(row, g, ctx)
