"""Spec: the drafter kinds of issue 15 keep sampling exact under every rejection-style acceptor.

For each kind, the joint of the first 3 tokens at T=1 over seeded generations on a tiny-vocabulary
qwen3 target matches the target's enumerated joint (chi-square, alpha 1e-3), and a planted wrong
variant of the same drafter fails the same test at the same sample size (its p-value is printed;
the assertion demands < 1e-6), which is the power of the test: a fault that shifts the joint as
much as the planted one cannot pass.

N per kind (EAGLE-3 1000, MTP 600, DeepSeek-style MTP 600; ~17 CPU ms per 3-token generation on this 2-core machine, so
10-17 CPU s per case). Power at those N, measured: reporting ``(q + uniform) / 2`` instead of q
gives p ~ 1e-5 at N = 600 and 5e-8 at 1000 for the EAGLE-3 head (its q is already close to
uniform on its 5 tokens), p ~ 2e-15 for the MTP head at 600; EAGLE-3 proposing draft-vocabulary
ids unmapped gives p = 0. Correct drafters give p ~ 0.5-0.8. The DeepSeek-style MTP head
(``deepseek_v3`` target: MLA + MoE, ~50 CPU ms per generation, so N = 400 and ~20 s per case)
draws a flatter q on a less peaked target (a peaked one makes block and rejection draw the same
samples); there the (q + uniform) / 2 fault gives only p ~ 7e-5 at N = 400, so its planted fault is
reporting q at half the temperature (``q^2`` renormalised): p ~ 5e-8. DFlash2 (N = 600, 5
selector candidates, so q is zero on 3 of the 8 tokens): correct p ~ 0.4-0.6 over four seeds,
(q + uniform) / 2 gives p ~ 4e-8. Gemma-4's assistant (N = 900, a vocabulary-8 gemma4_text target
with window 4): correct p ~ 0.4-0.5; its q is flat enough that (q + uniform) / 2 gives only p ~ 0.2
at N = 600, so its planted fault is q at half the temperature: p ~ 3e-17. On the shared 2-core machine these cases took 20-40 s each.
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx_specdec_plugin.sampling import make_sampler  # mlx-lm's arguments and draws, with a known distribution

from mlx_specdec_plugin.testing.drafters import kind_fixtures
from exactness import chi_square_pvalue, exact_joint
from mlx_specdec_plugin.contract import Draft
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.stats import SpecStats

VOCAB = 8
PROMPT = [1, 2, 3]
ALPHA = 1e-3
SAMPLES = {"eagle3": 1000, "mtp": 600, "mtp-deepseek": 400, "dflash2": 600, "assistant": 900}
STRATEGY = {"eagle3": "eagle3", "mtp": "mtp", "mtp-deepseek": "mtp", "dflash2": "dflash2", "assistant": "assistant"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pairs = kind_fixtures(tmp_path_factory.mktemp("kinds_exact"), VOCAB)
    models = {k: m for k, (m, _) in pairs.items()}
    drafters = {k: d for k, (_, d) in pairs.items()}
    joints = {k: exact_joint(m, PROMPT, 3, VOCAB, dict(temp=1.0), {}) for k, m in models.items()}
    return models, drafters, joints


def generate(model, drafter, strategy, acceptor, n, wrap=None):
    mx.random.seed(1234)
    target, samples, stats = None, [], SpecStats()
    for _ in range(n):
        target, proposer, spec, sampling, _, k = prepare(
            model, drafter, draft_strategy=strategy, acceptor=acceptor,
            sampler=make_sampler(temp=1.0), num_draft_tokens=2, target=target,
        )
        if wrap is not None:
            proposer = wrap(proposer)
        gen = speculative_generate_step(mx.array(PROMPT), target, proposer, spec.accept, num_draft_tokens=k,
                                        max_tokens=3, sampling=sampling, stats=stats)
        samples.append(tuple(t for t, _, _ in gen))
    return samples, stats


class _Planted:
    """A wrapped proposer with a planted fault in what it proposes."""

    def __init__(self, inner):
        self.inner, self.tap_layers, self.cap = inner, inner.tap_layers, inner.cap

    def extend(self, tokens, hidden):
        self.inner.extend(tokens, hidden)


class _MixedQ(_Planted):
    """Planted fault (any kind): drafts from q but reports ``(q + uniform) / 2``."""

    def propose(self, ctx, n):
        d = self.inner.propose(ctx, n)
        return Draft(d.tokens, 0.5 * d.q + 0.5 / d.q.shape[-1], d.deterministic)


class _SharpQ(_Planted):
    """Planted fault (any kind): drafts from q but reports it at half the temperature,
    ``q^2 / sum q^2`` (the reported row forgot a temperature the draw applied)."""

    def propose(self, ctx, n):
        d = self.inner.propose(ctx, n)
        q2 = d.q * d.q
        return Draft(d.tokens, q2 / q2.sum(axis=-1, keepdims=True), d.deterministic)


class _ForgetsD2T(_Planted):
    """Planted EAGLE-3 fault: proposes draft-vocabulary ids as if they were target ids (the
    reported q is the right one)."""

    def propose(self, ctx, n):
        draft = self.inner.propose(ctx, n)
        hot = self.inner.drafter.hot.tolist()
        wrong = [hot.index(t) for t in draft.tokens.tolist()]
        return Draft(mx.array(wrong, dtype=mx.uint32), draft.q, draft.deterministic)


PLANTED = [("eagle3", _MixedQ), ("eagle3", _ForgetsD2T), ("mtp", _MixedQ), ("mtp-deepseek", _SharpQ), ("dflash2", _MixedQ),
           ("assistant", _SharpQ)]


@pytest.mark.parametrize("acceptor", ["rejection", "block"])
@pytest.mark.parametrize("kind", list(SAMPLES))
def test_new_kinds_keep_sampling_exact(world, kind, acceptor):
    models, drafters, joints = world
    model, joint = models[kind], joints[kind]
    samples, stats = generate(model, drafters[kind], STRATEGY[kind], acceptor, SAMPLES[kind])
    p = chi_square_pvalue(samples, joint)
    print(f"{kind} x {acceptor}: N={SAMPLES[kind]} p={p:.3g} accepted {stats.accepted}/{stats.proposed}")
    assert p > ALPHA
    assert 0 < stats.accepted < stats.proposed  # both paths ran


@pytest.mark.parametrize("kind, fault", PLANTED, ids=[f"{k}-{f.__name__}" for k, f in PLANTED])
def test_the_test_catches_a_planted_fault(world, kind, fault):
    models, drafters, joints = world
    model, joint = models[kind], joints[kind]
    samples, _ = generate(model, drafters[kind], STRATEGY[kind], "rejection", SAMPLES[kind], wrap=fault)
    p = chi_square_pvalue(samples, joint)
    print(f"planted {kind} fault {fault.__name__}: N={SAMPLES[kind]} p={p:.3g}")
    assert p < 1e-6
