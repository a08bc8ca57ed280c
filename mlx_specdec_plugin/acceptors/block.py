"""``block``: block verification (Sun et al., "Block verification accelerates speculative
decoding", ICLR 2025). Exact, and its expected number of kept drafts is never below
``rejection``'s.

With w_0 = 1 and w_i = min(1, w_{i-1} p_i(x_i) / q_i(x_i)); for i < g the residual
r_i = max(0, w_i p_{i+1} - q_{i+1}) with mass s_i and stop probability
h_i = s_i / (s_i + 1 - w_i); h_g = w_g. Walking back from i = g to 1, stop at the first i whose
coin (prob. h_i) comes up; tau = that i, or 0. Emit x_1..x_tau and a draw from r_tau / s_tau
(p_{tau+1} if s_tau = 0; p_{g+1} when tau = g).
"""

import mlx.core as mx

from ..drafting import Draft, Verdict
from ..sampling import sample_from
from . import TargetScores, draft_q_rows, draft_token_probs


def accept(draft: Draft, scores: TargetScores) -> Verdict:
    p = scores.probs()
    g = len(draft)
    if g == 0:
        return Verdict(0, int(sample_from(p[:1]).item()))
    q = draft_q_rows(draft, p.shape[-1])
    p_x, q_x = draft_token_probs(draft, p), draft_token_probs(draft, q)
    ratios = (p_x / q_x).tolist()
    w = [1.0]
    for r in ratios:
        w.append(min(1.0, w[-1] * r))
    residuals = mx.maximum(mx.array(w[:g])[:, None] * p[:g] - q, 0.0)  # rows i = 0..g-1
    mass = residuals.sum(axis=-1)
    coins = mx.random.uniform(shape=(g,))
    mass_l, coins_l = mass.tolist(), coins.tolist()
    tau = 0
    for i in range(g, 0, -1):
        if i == g:
            h = w[g]
        else:
            denom = mass_l[i] + 1.0 - w[i]
            h = mass_l[i] / denom if denom > 0 else 0.0
        if coins_l[i - 1] < h:
            tau = i
            break
    if tau == g:
        row = p[g]
    else:
        row = residuals[tau] if mass_l[tau] > 1e-12 else p[tau]
    return Verdict(tau, int(sample_from(row[None]).item()))
