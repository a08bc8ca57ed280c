"""``dspark``: DeepSpec's semi-autoregressive drafter (parallel backbone + Markov head).

One parallel forward over ``[anchor, mask x (g - 1)]`` gives base logits ``U_i`` (row 0, the
anchor slot, predicts the first proposal). Proposals are then drawn left to right with the rank-r
first-order Markov correction ``logits_i = U_i + W2 W1[x_{i-1}]`` (``x_{-1}`` = the anchor), each
row through the user's sampling chain, so the q handed to the acceptor is the Markov-corrected
distribution at every position.

Confidence truncation (``options.extra["confidence_threshold"]``, checkpoints with a confidence
head): before drawing proposal i, ``c_i = sigmoid(w . [h_i ; W1[x_{i-1}]])`` is computed from the
draft hidden state and the *already drawn* previous token; if ``c_i < threshold`` the block ends
before position i. Why this is exact: the decision to draft position i is a function of the
context and ``x_<i`` only (a stopping time), so conditional on drafting it, ``x_i`` is still
distributed as the reported ``q_i`` and the acceptor's per-position test is unchanged. A
*retrospective* rule (look at ``x_i``, then drop it) would change the distribution of what is
proposed and break exactness (DSpark paper, appendix A). The threshold is 0 (off) by default.
"""

from __future__ import annotations

import mlx.core as mx

from ..drafters import Drafter, as_drafter, claims as _claims
from ..contract import Draft, DraftContext, StrategyOption, StrategyOptions
from ..target import TargetAdapter
from .dflash import BlockProposer, sample_sequential

KIND = "dspark"
OPTIONS = (StrategyOption("confidence_threshold", float, 0.0,
                          "end a block before a position whose estimated survival is below this (0: off)"),)


class DSparkProposer(BlockProposer):
    def __init__(self, drafter: Drafter, options: StrategyOptions):
        super().__init__(drafter, options)
        threshold = float(options.extra.get("confidence_threshold", 0.0) or 0.0)
        if threshold > 0 and "confidence_head" not in drafter.module:
            raise ValueError(
                "confidence_threshold needs a checkpoint with a confidence head (enable_confidence_head: true)"
            )
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold

    def markov(self, prev: mx.array) -> mx.array:
        """The first-order bias ``(V,)`` given the previous token."""
        return self.drafter.module.markov_head(prev)

    def confidence(self, hidden_row: mx.array, prev: mx.array) -> mx.array:
        """Estimated survival probability of the proposal at this row (scalar float32)."""
        head = self.drafter.module.confidence_head
        feats = hidden_row
        if self.config.confidence_head_with_markov:
            w1 = self.drafter.module.markov_head.rows(prev)
            feats = mx.concatenate([hidden_row, w1.astype(hidden_row.dtype)], axis=-1)
        return head(feats)

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        g = min(max_tokens, self.cap)
        if g < 1:
            return Draft.empty()
        base, hidden = self.base_logits(ctx.pending, g)
        stop = None
        if self.threshold > 0:
            stop = lambda i, prev: float(self.confidence(hidden[i], prev).item()) < self.threshold
        return sample_sequential(lambda i, prev: base[i] + self.markov(prev).astype(base.dtype), g, ctx, stop)


def build(target: TargetAdapter, draft, options: StrategyOptions) -> DSparkProposer:
    return DSparkProposer(as_drafter(draft, target.model, KIND), options)


def claims(draft) -> bool:
    return _claims(draft, KIND)
