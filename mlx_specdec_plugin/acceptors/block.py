"""``block``: block verification (Sun et al., "Block verification accelerates speculative
decoding", ICLR 2025). Exact, and its expected number of kept drafts is never below
``rejection``'s.

With w_0 = 1 and w_i = min(1, w_{i-1} p_i(x_i) / q_i(x_i)); for i < g the residual
r_i = max(0, w_i p_{i+1} - q_{i+1}) with mass s_i and stop probability
h_i = s_i / (s_i + 1 - w_i); h_g = w_g. Walking back from i = g to 1, stop at the first i whose
coin (prob. h_i) comes up; tau = that i, or 0. Emit x_1..x_tau and a draw from r_tau / s_tau
(p_{tau+1} if s_tau = 0; p_{g+1} when tau = g).

One host sync per round: the weights, masses, coins and one candidate next token for every
possible tau are computed in one compiled graph; the candidates are drawn independently of the
coins and of one another, so the one the walk picks is an exact draw from its row.
"""

from functools import partial

import mlx.core as mx

from ..contract import Draft, TargetScores, Verdict
from ..sampling import sample_from
from . import draft_q_rows


@partial(mx.compile, inputs=mx.random.state, outputs=mx.random.state)
def _weights_and_candidates(p: mx.array, q: mx.array, tokens: mx.array):
    """``p (g+1, V)``, ``q (g, V)``, drafts ``(g,)``: w ``(g+1,)``, residual masses s ``(g,)``,
    coins ``(g,)`` and candidates ``(g+1,)`` (row i < g from r_i / s_i, or p_i if s_i is 0;
    row g from p_g)."""
    g = tokens.shape[0]
    idx = tokens[:, None].astype(mx.int32)
    ratios = mx.take_along_axis(p[:g], idx, axis=-1)[:, 0] / mx.take_along_axis(q, idx, axis=-1)[:, 0]
    w = [mx.ones((1,), dtype=p.dtype)]
    for i in range(g):
        w.append(mx.minimum(1.0, w[-1] * ratios[i : i + 1]))
    w = mx.concatenate(w)
    residuals = mx.maximum(w[:g, None] * p[:g] - q, 0.0)  # rows i = 0..g-1
    mass = residuals.sum(axis=-1)
    rows = mx.where(mass[:, None] > 1e-12, residuals, p[:g])
    coins = mx.random.uniform(shape=(g,))
    return w, mass, coins, sample_from(mx.concatenate([rows, p[g:]], axis=0))


def accept(draft: Draft, scores: TargetScores) -> Verdict:
    p = scores.probs()
    g = len(draft)
    if g == 0:
        return Verdict(0, int(sample_from(p[:1]).item()))
    out = _weights_and_candidates(p, draft_q_rows(draft, p.shape[-1]), draft.tokens)
    mx.eval(out)
    w, mass, coins, candidates = (a.tolist() for a in out)
    tau = 0
    for i in range(g, 0, -1):
        if i == g:
            h = w[g]
        else:
            denom = mass[i] + 1.0 - w[i]
            h = mass[i] / denom if denom > 0 else 0.0
        if coins[i - 1] < h:
            tau = i
            break
    return Verdict(tau, candidates[tau])
