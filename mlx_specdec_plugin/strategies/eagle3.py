"""``eagle3``: EAGLE-3 (Li et al. 2025): a one-layer head on fused low/mid/high target features.

The head sees *pairs*: at position t the embedding of token ``t + 1`` and the fused target
feature ``fc([h_low ; h_mid ; h_high]_t)``; its output at t predicts token ``t + 2``. A committed
position's pair is complete once the next token is known, so :meth:`Eagle3Proposer.extend` only
queues the tapped features and the next :meth:`~Eagle3Proposer.propose` runs them through the
head with their successors (the last one is ``ctx.pending``): that pass's last output gives the
first proposal. Each further proposal is one speculative step on (previous proposal, the head's
own previous output), appended to the head's KV cache and trimmed off again before the next
committed pass (the proposer owns that cache; committed pairs are never rolled back).

Every proposal is drawn through the user's sampling chain from the head's logits spread over the
target vocabulary (``-inf`` outside a reduced draft vocabulary), and that q is reported, so every
acceptor stays exact.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import mlx.core as mx

from ..drafters import as_drafter, claims as _claims
from ..drafters_eagle3 import Eagle3Drafter
from ..drafting import Draft, DraftContext, StrategyOptions
from ..target import TargetAdapter
from .dflash import sample_sequential

KIND = "eagle3"


class Eagle3Proposer:
    """Per-generation EAGLE-3 state: the head's KV cache of committed pairs and queued features."""

    def __init__(self, drafter: Eagle3Drafter, options: StrategyOptions):
        self.drafter = drafter
        self.tap_layers: Tuple[int, ...] = tuple(drafter.taps)
        if options.block_size is not None and int(options.block_size) < 2:
            raise ValueError(f"block_size (verify width, anchor included) must be >= 2, got {options.block_size}")
        self.cap = int(options.block_size) - 1 if options.block_size is not None else drafter.config.default_proposals
        self.cache = drafter.make_cache()
        self.paired = 0  # committed positions whose pair is in the cache
        self.speculative = 0  # cache entries appended by the last propose (trimmed before the next pass)
        self._queued: List[mx.array] = []  # tapped features of committed positions not yet paired
        self._last: Optional[mx.array] = None  # the head's output (1, 1, H) at the last committed pair

    def _drop_speculative(self) -> None:
        if self.speculative:
            for c in self.cache:
                c.trim(self.speculative)
            self.speculative = 0

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        if hidden is None:
            raise ValueError("strategy 'eagle3' needs the target's hidden states")
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
            raise ValueError(f"eagle3: {k} queued positions but only {len(successors)} known successors")
        d = self.drafter
        out = d.module(d.embed(mx.array([successors], dtype=mx.uint32)), d.module.project(hidden), self.cache)
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
                state["h"] = d.module(d.embed(prev.reshape(1, 1)), state["h"], self.cache)
                self.speculative += 1
            return d.head(state["h"])[0, 0]

        return sample_sequential(row, g, ctx)


def build(target: TargetAdapter, draft, options: StrategyOptions) -> Eagle3Proposer:
    return Eagle3Proposer(as_drafter(draft, target.model, KIND), options)


def claims(draft) -> bool:
    return _claims(draft, KIND)
