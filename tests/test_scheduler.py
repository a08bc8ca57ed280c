"""Spec: ``--num-draft-tokens auto`` - the adaptive draft-length scheduler.

It maximises expected tokens per second from a cost curve and running acceptance estimates,
drafts nothing when speculation would lose (but keeps probing so it can recover), and - since it
decides before any of a round's tokens are drawn - leaves the output distribution exact (the
chi-square test of tests/exactness.py, with a schedule that varies with the acceptance history).
"""

import mlx.core as mx
import pytest

from exactness import CONFIGS, chi_square_pvalue, exact_joint
from mlx_specdec_plugin.generate import prepare, stream_generate
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.sampling import SamplingParams
from mlx_specdec_plugin.scheduler import AdaptiveScheduler, CostCurve
from mlx_specdec_plugin.stats import RoundStats, SpecStats
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config
from tiny_lm import ContextLM, perturbed

VOCAB = 6
PROMPT = [1, 2, 3]


def feed(sched, stats, cap, outcome):
    """One round: ask the scheduler, then record `outcome(k)` accepted drafts."""
    k = sched(stats, cap)
    stats.record(RoundStats(k, min(outcome(k), k), 0.0, 0.0, 1))
    return k


def test_cost_curve_extrapolates_and_round_trips():
    c = CostCurve([1.0, 1.5, 2.0], [0.0, 0.1, 0.2])
    assert c.verify_time(5) == pytest.approx(3.0) and c.draft_time(4) == pytest.approx(0.4)
    assert CostCurve.from_dict(c.as_dict()) == c
    with pytest.raises(ValueError):
        CostCurve([0.0])


def test_flat_curve_and_good_drafts_choose_long_drafts():
    sched = AdaptiveScheduler(CostCurve.linear(1.0, 0.01, width=16))
    stats = SpecStats()
    ks = [feed(sched, stats, 8, lambda k: k) for _ in range(30)]  # everything accepted
    assert ks[-1] == 8


def test_steep_curve_prefers_short_drafts():
    # every extra verify token costs as much as a whole step: only near-certain drafts pay
    sched = AdaptiveScheduler(CostCurve.linear(1.0, 1.0, width=16))
    stats = SpecStats()
    ks = [feed(sched, stats, 8, lambda k: 1 if k else 0) for _ in range(60)]  # ~50% at position 1..
    assert max(ks[-20:]) <= 1


def test_always_rejected_drafts_stop_drafting_but_keep_probing_with_backoff():
    sched = AdaptiveScheduler(CostCurve.linear(1.0, 0.3, width=16), probe_every=4, max_probe_every=32)
    stats = SpecStats()
    ks = [feed(sched, stats, 8, lambda k: 0) for _ in range(400)]
    late = ks[100:]
    assert sum(k > 0 for k in late) <= len(late) // 16  # almost never drafts...
    assert any(k > 0 for k in late)  # ...but still probes
    probes = [i for i, k in enumerate(ks) if k > 0 and i > 50]
    gaps = [b - a for a, b in zip(probes, probes[1:])]
    assert max(gaps) == 32  # exponential back-off reached its cap


def probes_over(rounds, outcome, **kw):
    """Probe rounds an always-losing drafter gets in ``rounds`` rounds (the defaults' gaps)."""
    sched = AdaptiveScheduler(CostCurve.linear(1.0, 0.3, width=16), **kw)
    stats = SpecStats()
    for i in range(rounds):
        feed(sched, stats, 8, lambda k: outcome(i, k))
    return sched.probes


def test_an_always_rejected_drafter_gets_logarithmically_many_probes():
    # the gap doubles after every failed probe, with no cap: N rounds hold O(log N) probes
    # (a gap capped at 64 rounds, as before, gave ~N/64: 67 probes in 4096 rounds)
    few, many = probes_over(512, lambda i, k: 0), probes_over(4096, lambda i, k: 0)
    assert many <= 2 * 12  # 2 log2(4096)
    assert many - few <= 3  # 8x the rounds: 3 more doublings


def test_probes_that_keep_tokens_but_do_not_pay_back_off_too():
    # every extra verify token costs a whole step: even a kept probe (1 in 2 here) cannot pay,
    # so it counts as failed (resetting the gap whenever a probe kept anything probed every ~12 rounds: 342 probes)
    sched = AdaptiveScheduler(CostCurve.linear(1.0, 1.0, width=16))
    stats = SpecStats()
    kept = iter([1, 0] * 4096)
    for _ in range(4096):
        feed(sched, stats, 8, lambda k: next(kept) if k else 0)
    assert sched.probes <= 2 * 12


def test_recovery_after_long_failure_takes_at_most_about_as_long_as_the_failure():
    sched = AdaptiveScheduler(CostCurve.linear(1.0, 0.2, width=16))
    stats = SpecStats()
    for _ in range(1000):
        feed(sched, stats, 8, lambda k: 0)
    ks = [feed(sched, stats, 8, lambda k: k) for _ in range(1100)]
    first = next(i for i, k in enumerate(ks) if k > 1)  # drafting again, beyond a 1-token probe
    assert first <= 1100 and ks[-1] >= 4
    assert sched.probe_every == sched.base_probe_every


def test_recovers_when_drafts_become_good_again():
    sched = AdaptiveScheduler(CostCurve.linear(1.0, 0.2, width=16), probe_every=4, max_probe_every=16)
    stats = SpecStats()
    for _ in range(200):
        feed(sched, stats, 8, lambda k: 0)
    ks = [feed(sched, stats, 8, lambda k: k) for _ in range(120)]
    assert ks[-1] >= 4


def test_zero_cap_means_no_draft():
    sched = AdaptiveScheduler(CostCurve.linear(1.0, 0.0))
    assert sched(SpecStats(), 0) == 0


def test_auto_through_stream_generate_is_token_identical_at_t0():
    cfg = tiny_config("llama")
    target = make_tiny_model(cfg, seed=1, sharpness=3)
    draft = make_tiny_model(cfg, seed=1, sharpness=3)  # a perfect drafter: the schedule grows
    from mlx_specdec_plugin.bench.runner import byte_tokenizer

    tok = byte_tokenizer()
    tok.eos_token_ids = set()
    plain = [r.token for r in stream_generate(target, tok, "def f(x):", max_tokens=40)]
    stats = SpecStats()
    curve = CostCurve.linear(1.0, 0.05, width=9, draft_per_token=0.05)
    schedule = AdaptiveScheduler(curve, online=False)  # no wall-clock input: deterministic lengths
    ours = [r.token for r in stream_generate(target, tok, "def f(x):", max_tokens=40, draft_model=draft,
                                             num_draft_tokens="auto", stats=stats, draft_length=schedule)]
    assert ours == plain
    assert max(r.proposed for r in stats.rounds) > 3


SAMPLES = 12_000
ALPHA = 1e-3


def test_scheduled_loop_is_exact():
    """One scheduler shared by all draws: every round's length depends on the acceptance history
    of all earlier rounds (0, 1 or 2 drafts), and the 3-token joint still matches the target's."""
    target_model = ContextLM(VOCAB, 8, seed=1)
    draft_model = perturbed(target_model, seed=2)
    sampler_kw, proc_kw = CONFIGS["T1"]
    joint = exact_joint(target_model, PROMPT, 3, VOCAB, sampler_kw, proc_kw)
    # steep enough that the estimate's fluctuations move the choice between 0, 1 and 2
    sched = AdaptiveScheduler(CostCurve.linear(1.0, 0.45, width=4, draft_per_token=0.05), decay=0.9,
                              probe_every=3, online=False)
    mx.random.seed(1234)
    target = None
    samples = []
    for _ in range(SAMPLES):
        target, proposer, spec, sampling, _, _ = prepare(
            target_model, draft_model, draft_strategy="draft-model", acceptor="rejection",
            sampling=SamplingParams(**sampler_kw), num_draft_tokens=2, target=target)
        stats = SpecStats()
        gen = speculative_generate_step(mx.array(PROMPT), target, proposer, spec.accept, num_draft_tokens=2,
                                        max_tokens=3, sampling=sampling, stats=stats, draft_length=sched)
        samples.append(tuple(t for t, _, _ in gen))
    lengths = set(sched.history)
    assert {0, 1, 2} <= lengths, lengths
    assert chi_square_pvalue(samples, joint) > ALPHA
