"""Spec: each acceptor, fed drafts x_i ~ q_i, emits tokens distributed as the target's p, and
keeps as many drafts as its rule promises: E[match] = prod sum p q, E[rejection] =
sum_k prod_{i<=k} sum min(p_i, q_i), and block >= rejection."""

from collections import Counter

import mlx.core as mx
import numpy as np
import pytest
from scipy.stats import chisquare

from mlx_specdec_plugin.acceptors import TargetScores, block, greedy, match, rejection
from mlx_specdec_plugin.contract import Draft, Verdict
from mlx_specdec_plugin.sampling import Sampling, make_sampler

V, G = 3, 2
N = 30_000
rng = np.random.default_rng(7)
P = rng.dirichlet(np.ones(V) * 0.7, size=G + 1)  # target rows, independent of the prefix
Q = rng.dirichlet(np.ones(V) * 0.7, size=G)  # draft rows


def run(accept, n=N, seed=0):
    """n rounds; each emitted block is completed with fresh target draws to G+1 tokens. Drafts and
    completions come from their own generator (``seed``), so a run does not depend on which runs
    came before it in this process."""
    rng = np.random.default_rng(seed)
    mx.random.seed(3)
    sampling = Sampling.create(make_sampler(1.0))
    scores = TargetScores(mx.log(mx.array(P, dtype=mx.float32)), sampling)
    drafts = np.stack([rng.choice(V, size=n, p=Q[i]) for i in range(G)], axis=1)
    q = mx.array(Q, dtype=mx.float32)
    seqs, taus = [], []
    for row in drafts:
        scores._probs = None
        v = accept(Draft(mx.array(row, dtype=mx.uint32), q), scores)
        emitted = list(row[: v.accepted]) + [v.next_token]
        emitted += [rng.choice(V, p=P[j]) for j in range(len(emitted), G + 1)]
        seqs.append(tuple(emitted))
        taus.append(v.accepted)
    return seqs, np.array(taus)


def pvalue(seqs):
    joint = {}
    for cell in np.ndindex(*(V,) * (G + 1)):
        joint[cell] = float(np.prod([P[i][c] for i, c in enumerate(cell)]))
    counts = Counter(seqs)
    cells = list(joint)
    obs = [counts.get(c, 0) for c in cells]
    exp = np.array([joint[c] for c in cells]) * len(seqs)
    return chisquare(obs, exp / exp.sum() * len(seqs)).pvalue


ACCEPTORS = {"rejection": rejection, "block": block, "match": match}


@pytest.fixture(scope="module")
def results():
    """``results(name) -> (emitted blocks, kept counts)``: each acceptor's N rounds, run once per
    process and only when a test asks for them (test processes may split this module's tests)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = run(ACCEPTORS[name].accept, seed=list(ACCEPTORS).index(name) + 1)
        return cache[name]

    return get


@pytest.mark.parametrize("name", ["rejection", "block", "match"])
def test_emitted_tokens_follow_the_target(results, name):
    seqs, _ = results(name)
    assert pvalue(seqs) > 1e-3


def test_expected_kept_drafts(results):
    beta = np.minimum(P[:G], Q).sum(axis=1)
    rejection_expected = sum(np.prod(beta[: k + 1]) for k in range(G))
    dot = (P[:G] * Q).sum(axis=1)
    match_expected = sum(np.prod(dot[: k + 1]) for k in range(G))
    se = lambda t: t.std() / np.sqrt(len(t))  # noqa: E731
    tau_rej, tau_block, tau_match = (results(n)[1] for n in ("rejection", "block", "match"))
    assert abs(tau_rej.mean() - rejection_expected) < 4 * se(tau_rej)
    assert abs(tau_match.mean() - match_expected) < 4 * se(tau_match)
    assert rejection_expected > match_expected
    assert tau_block.mean() > rejection_expected - 3 * se(tau_block)


def test_wrong_rule_fails_the_same_check():
    def keep_all(draft, scores):
        return Verdict(len(draft), int(scores.sample()[len(draft)].item()))

    seqs, _ = run(keep_all, 5_000, seed=4)
    assert pvalue(seqs) < 1e-12


def test_greedy_keeps_the_argmax_prefix():
    logits = mx.array([[0.0, 5.0, 1.0], [3.0, 0.0, 1.0], [0.0, 0.0, 9.0]])
    scores = TargetScores(logits, Sampling.create(None))
    assert greedy.accept(Draft(mx.array([1, 0], dtype=mx.uint32), None, True), scores) == Verdict(2, 2)
    assert greedy.accept(Draft(mx.array([1, 2], dtype=mx.uint32), None, True), scores) == Verdict(1, 0)
    assert greedy.accept(Draft(mx.array([2, 0], dtype=mx.uint32), None, True), scores) == Verdict(0, 1)


def test_empty_draft_is_a_plain_step():
    scores = TargetScores(mx.log(mx.array([[0.0, 1.0, 0.0]])), Sampling.create(make_sampler(1.0)))
    for mod in (rejection, block, match):
        assert mod.accept(Draft.empty(), scores) == Verdict(0, 1)
