"""``rejection``: token-level speculative sampling (Leviathan et al. 2023; Chen et al. 2023).

Keep x_i with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection emit a draw from
norm(max(0, p_i - q_i)) (p_i itself if that residual has no mass); if all g drafts are kept,
emit a draw from p_{g+1}.
"""

import mlx.core as mx

from ..drafting import Draft, Verdict
from ..sampling import sample_from
from . import TargetScores, draft_q_rows, draft_token_probs, first_false


def accept(draft: Draft, scores: TargetScores) -> Verdict:
    p = scores.probs()
    g = len(draft)
    if g == 0:
        return Verdict(0, int(sample_from(p[:1]).item()))
    q = draft_q_rows(draft, p.shape[-1])
    p_x = draft_token_probs(draft, p)
    q_x = draft_token_probs(draft, q)
    u = mx.random.uniform(shape=(g,))
    keep = (u * q_x <= p_x).tolist()  # u <= p/q without dividing by q
    tau = first_false(keep)
    if tau == g:
        return Verdict(g, int(sample_from(p[g : g + 1]).item()))
    residual = mx.maximum(p[tau] - q[tau], 0.0)
    mass = residual.sum()
    row = mx.where(mass > 1e-12, residual, p[tau])
    return Verdict(tau, int(sample_from(row[None]).item()))
