"""Spec: on the same draft pair at T=1, through the whole loop, rejection keeps more drafts per
round than upstream's match rule, and block verification at least as many as rejection; and a
seeded run is reproducible."""

import mlx.core as mx
import numpy as np
import pytest

from mlx_specdec_plugin import SpecStats
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.sampling import make_sampler
from tiny_lm import ContextLM, perturbed

PROMPT = mx.array([1, 2, 3])


def generate(target_model, draft_model, acceptor, seed, tokens=16, k=4):
    target, proposer, spec, sampling, _, _ = prepare(
        target_model, draft_model, acceptor=acceptor, sampler=make_sampler(1.0), num_draft_tokens=k
    )
    stats = SpecStats()
    mx.random.seed(seed)
    out = [t for t, _, _ in speculative_generate_step(
        PROMPT, target, proposer, spec.accept, num_draft_tokens=k, max_tokens=tokens, sampling=sampling, stats=stats)]
    return out, stats


@pytest.fixture(scope="module")
def kept_per_round():
    target = ContextLM(8, 8, seed=1)
    draft = perturbed(target, seed=2, noise=0.4)
    kept = {}
    for acceptor in ("match", "rejection", "block"):
        per_round = []
        for seed in range(150):
            _, stats = generate(target, draft, acceptor, seed)
            per_round += [r.accepted for r in stats.rounds if r.proposed == 4]
        kept[acceptor] = np.array(per_round, dtype=float)
    return kept


def se(x):
    return x.std() / np.sqrt(len(x))


def test_rejection_keeps_more_than_match(kept_per_round):
    rej, mat = kept_per_round["rejection"], kept_per_round["match"]
    assert rej.mean() - mat.mean() > 3 * np.hypot(se(rej), se(mat))


def test_block_keeps_at_least_as_many_as_rejection(kept_per_round):
    blk, rej = kept_per_round["block"], kept_per_round["rejection"]
    assert blk.mean() > rej.mean() - 2 * np.hypot(se(blk), se(rej))


def test_seeded_sampling_is_reproducible():
    target = ContextLM(8, 8, seed=1)
    draft = perturbed(target, seed=2, noise=0.4)
    for acceptor in ("rejection", "block", "match"):
        a, _ = generate(target, draft, acceptor, seed=7, tokens=24)
        b, _ = generate(target, draft, acceptor, seed=7, tokens=24)
        c, _ = generate(target, draft, acceptor, seed=8, tokens=24)
        assert a == b
        assert a != c
