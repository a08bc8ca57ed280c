"""``rejection``: token-level speculative sampling (Leviathan et al. 2023; Chen et al. 2023).

Keep x_i with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection emit a draw from
norm(max(0, p_i - q_i)) (p_i itself if that residual has no mass); if all g drafts are kept,
emit a draw from p_{g+1}.

One host sync per round: the coins and one candidate next token for every possible stopping
position (each residual row and p_{g+1}) are drawn in one compiled graph, independently of one
another, and the host picks the candidate at the first rejection. The candidate of a row is
independent of the coins, so the emitted token is an exact draw from that row, as if only it
had been drawn.
"""

from functools import partial

import mlx.core as mx

from ..contract import Draft, TargetScores, Verdict
from ..sampling import sample_from
from . import draft_q_rows, first_false


@partial(mx.compile, inputs=mx.random.state, outputs=mx.random.state)
def _coins_and_candidates(p: mx.array, q: mx.array, tokens: mx.array):
    """``p (g+1, V)``, ``q (g, V)``, drafts ``(g,)``: keep flags ``(g,)`` and candidates
    ``(g+1,)`` (row i < g: a draw from norm(max(0, p_i - q_i)), else p_i; row g: from p_g)."""
    g = tokens.shape[0]
    idx = tokens[:, None].astype(mx.int32)
    p_x = mx.take_along_axis(p[:g], idx, axis=-1)[:, 0]
    q_x = mx.take_along_axis(q, idx, axis=-1)[:, 0]
    keep = mx.random.uniform(shape=(g,)) * q_x <= p_x  # u <= p/q without dividing by q
    residual = mx.maximum(p[:g] - q, 0.0)
    rows = mx.where(residual.sum(axis=-1, keepdims=True) > 1e-12, residual, p[:g])
    return keep, sample_from(mx.concatenate([rows, p[g:]], axis=0))


def accept(draft: Draft, scores: TargetScores) -> Verdict:
    p = scores.probs()
    g = len(draft)
    if g == 0:
        return Verdict(0, int(sample_from(p[:1]).item()))
    keep, candidates = _coins_and_candidates(p, draft_q_rows(draft, p.shape[-1]), draft.tokens)
    mx.eval(keep, candidates)
    tau = first_false(keep.tolist())
    return Verdict(tau, candidates.tolist()[tau])
