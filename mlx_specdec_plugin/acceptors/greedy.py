"""``greedy``: keep drafts while they equal the target's argmax (exact at temperature 0 only)."""

from ..contract import Draft, TargetScores, Verdict
from . import first_false


def accept(draft: Draft, scores: TargetScores) -> Verdict:
    best = scores.greedy_tokens()
    tau = first_false([d == t for d, t in zip(draft.tokens.tolist(), best)])
    return Verdict(tau, best[tau])
