"""``dflash2``: DFlash2 (a DFlash block pass with dynamic causal convolutions, then a candidate
selector drafting left to right; see :mod:`..drafters.dflash2`).

One parallel forward over ``[anchor, mask x g]`` gives g rows of logits (the anchor slot dropped,
as DFlash). Row i's candidates are its ``selector_top_k`` largest logits; proposal i is drawn from
``logit(c) + P[x_{i-1}] . (W h_i * S[c])`` over those candidates (``x_{-1}`` the anchor), through
the user's sampling chain with every other token at ``-inf``, and that q (zero outside the
candidates) is what the acceptor sees, so every acceptor stays exact. At temperature 0 the draw is
the arg-max of the scores, as mlx-vlm's greedy selector.

The context cache is :class:`~.dflash.BlockProposer`'s (committed target taps only, never rolled
back).
"""

from __future__ import annotations

import mlx.core as mx

from ..drafters import as_drafter, claims as _claims
from ..contract import Draft, DraftContext, StrategyOptions
from ..target import TargetAdapter
from .dflash import BlockProposer, sample_sequential

KIND = "dflash2"


class DFlash2Proposer(BlockProposer):
    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        g = min(max_tokens, self.cap)
        if g < 1:
            return Draft.empty()
        logits, hidden = self.base_logits(ctx.pending, g)
        selector = self.drafter.module.candidate_selector
        cands = selector.candidates(logits)  # (g, k)
        unary = mx.take_along_axis(logits, cands, axis=-1)
        projected = selector.hidden_projection(hidden)  # (g, r)
        floor = mx.full(logits.shape[-1:], -mx.inf, dtype=logits.dtype)

        def row(i: int, prev: mx.array) -> mx.array:
            scores = unary[i] + selector.edges(prev, projected[i], cands[i]).astype(logits.dtype)
            return _scatter(floor, cands[i], scores)

        return sample_sequential(row, g, ctx)


def _scatter(floor: mx.array, idx: mx.array, values: mx.array) -> mx.array:
    """``floor`` with ``values`` at ``idx``."""
    out = mx.array(floor)
    out[idx] = values
    return out


def build(target: TargetAdapter, draft, options: StrategyOptions) -> DFlash2Proposer:
    return DFlash2Proposer(as_drafter(draft, target.model, KIND), options)


def claims(draft) -> bool:
    return _claims(draft, KIND)
