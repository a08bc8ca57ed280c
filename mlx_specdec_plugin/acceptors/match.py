"""``match``: upstream's rule, kept for comparison. The target draws its own token at every
position with the user's sampler; drafts are kept while they equal those draws.

Exact for any sampler (every emitted token is a target draw), but a position is accepted with
probability sum_x p(x) q(x) instead of rejection sampling's sum_x min(p(x), q(x)).
"""

from ..contract import Draft, TargetScores, Verdict
from . import first_false


def accept(draft: Draft, scores: TargetScores) -> Verdict:
    own = scores.sample().tolist()
    tau = first_false([d == t for d, t in zip(draft.tokens.tolist(), own)])
    return Verdict(tau, own[tau])
