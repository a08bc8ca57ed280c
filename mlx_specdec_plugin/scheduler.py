"""``--num-draft-tokens auto``: choose each round's draft length from a cost curve and running
acceptance estimates, to maximise expected tokens per second.

For a round that drafts ``k`` tokens, with conditional acceptance ``a_1, a_2, ...`` by draft
position (``a_j`` = P(draft j kept | drafts 1..j-1 kept)), the expected number of tokens it emits
is ``E(k) = 1 + sum_{j<=k} prod_{i<=j} a_i`` (the target's own token included) and it costs
``T_draft(k) + T_verify(k + 1)``. The scheduler picks ``argmax_k E(k) / cost(k)`` over
``0..cap``; ``k = 0`` is a plain decoding step (one-token verify, no drafting), chosen when
speculation would lose. While it drafts nothing it still *probes* now and then (a short draft)
so it can recover when the text becomes predictable again. A probe *fails* when, with its outcome
counted, the estimates still say drafting loses (a probe that kept its token but not enough to pay
fails too); each failure doubles the gap to the next probe, without bound by default, so with a
drafter that never pays ``N`` rounds hold ``O(log N)`` probes. The gap is back to its base as soon
as the estimates choose to draft again. All of it is decided from acceptance counts, never from
the wall clock.

Exactness: the choice reads only :class:`~mlx_specdec_plugin.stats.SpecStats` of finished rounds
(and wall-clock costs), i.e. it is made before any of the round's tokens are drawn. Every
acceptor is exact for any draft length fixed in advance, so the output distribution is the
target's whatever the schedule (the chi-square test in ``tests/test_scheduler.py`` checks it).

The cost curve comes from :mod:`mlx_specdec_plugin.costs` (cached per machine/model), or is
injected (``CostCurve([...])``) - tests use synthetic curves with ``tests/tiny_lm.ContextLM``.
By default nothing measured during generation feeds back, so a seeded run gives the same
schedule and the same tokens every time. With ``online=True`` (opt-in) the curve is refined from
the rounds' own measured draft/verify times, which adapts to load but breaks that reproducibility.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import mlx.core as mx

from .costs import CostCurve, cached_or_quick_curve
from .contract import Proposer
from .stats import SpecStats
from .target import TargetAdapter

__all__ = ["AdaptiveScheduler", "CostCurve", "make_scheduler"]


class _Running:
    """Per-key running mean with exponential forgetting."""

    def __init__(self, decay: float):
        self.decay = decay
        self.sum: Dict[int, float] = {}
        self.n: Dict[int, float] = {}

    def add(self, key: int, value: float) -> None:
        self.sum[key] = self.decay * self.sum.get(key, 0.0) + value
        self.n[key] = self.decay * self.n.get(key, 0.0) + 1.0

    def get(self, key: int):
        n = self.n.get(key, 0.0)
        return (self.sum[key] / n, n) if n > 0 else (None, 0.0)


class AdaptiveScheduler:
    """A ``draft_length(stats, cap)`` callable for :func:`~mlx_specdec_plugin.loop.speculative_generate_step`.

    ``cost``: the :class:`CostCurve`. ``prior``: assumed acceptance of a position before any
    evidence (``prior_weight`` pseudo-observations, shrunk towards the previous position's
    estimate). ``decay``: forgetting factor of the acceptance counts (recent rounds weigh more).
    ``probe_len`` / ``probe_every`` / ``max_probe_every``: while the best length is 0, draft
    ``probe_len`` tokens once every ``probe_every`` rounds, doubling the gap after each failed
    probe (one after which the best length is still 0), up to ``max_probe_every`` (``None``: no
    cap, so ``N`` rounds of a drafter that never pays hold ``O(log N)`` probes). ``probes`` counts
    the probe rounds. ``online``: blend the measured per-round draft and verify
    times into the curve (off for deterministic tests). ``history`` records the chosen lengths.
    """

    def __init__(
        self,
        cost: CostCurve,
        *,
        prior: float = 0.6,
        prior_weight: float = 1.0,
        decay: float = 0.99,
        probe_len: int = 1,
        probe_every: int = 8,
        max_probe_every: Optional[int] = None,
        online: bool = False,
        online_weight: float = 4.0,
        min_gain: float = 1.02,
    ):
        self.cost = cost
        self.prior, self.prior_weight, self.decay = prior, prior_weight, decay
        self.probe_len, self.base_probe_every, self.max_probe_every = probe_len, probe_every, max_probe_every
        self.online, self.online_weight, self.min_gain = online, online_weight, min_gain
        self.kept: Dict[int, float] = {}  # position (1-based) -> decayed count of kept drafts
        self.reached: Dict[int, float] = {}  # position -> decayed count of rounds that reached it
        self.seen_rounds = 0
        self.idle = 0  # rounds since the last draft
        self.probe_every = probe_every
        self.probing = False  # a probe was chosen and its round is not recorded yet
        self.judging = False  # a probe's round is recorded: the next choice says whether it paid
        self.probes = 0
        self.verify_obs = _Running(0.95)
        self.draft_obs = _Running(0.95)
        self.history: List[int] = []
        self._stats: Optional[SpecStats] = None

    # ---- estimates -------------------------------------------------------------------------
    def _observe(self, stats: SpecStats) -> None:
        if stats is not self._stats:  # a new generation: its rounds start from 0, estimates carry over
            self._stats, self.seen_rounds = stats, 0
        for r in stats.rounds[self.seen_rounds:]:
            g, a = r.proposed, r.accepted
            for j in range(1, min(a + 1, g) + 1):
                self.reached[j] = self.decay * self.reached.get(j, 0.0) + 1.0
                self.kept[j] = self.decay * self.kept.get(j, 0.0) + (1.0 if j <= a else 0.0)
            if self.online and g > 0:  # plain rounds are pipelined: their times overlap
                self.verify_obs.add(g + 1, r.verify_time)
                self.draft_obs.add(g, r.draft_time)
            if g > 0:
                if self.probing:
                    self.probing, self.judging = False, True
                self.idle = 0
            else:
                self.idle += 1
        self.seen_rounds = len(stats.rounds)

    def acceptance(self, cap: int) -> List[float]:
        """Conditional acceptance estimates for positions 1..cap."""
        rates, prev = [], self.prior
        for j in range(1, cap + 1):
            n, s = self.reached.get(j, 0.0), self.kept.get(j, 0.0)
            prev = (s + self.prior_weight * prev) / (n + self.prior_weight)
            rates.append(prev)
        return rates

    def _blend(self, prior: float, obs: _Running, key: int, scale: float) -> float:
        mean, n = obs.get(key)
        base = prior * scale
        if mean is None:
            return base
        return (n * mean + self.online_weight * base) / (n + self.online_weight)

    def _scale(self) -> float:
        """Observed / calibrated verify time over the widths seen (machine load, longer context)."""
        num = den = 0.0
        for w, n in self.verify_obs.n.items():
            mean, _ = self.verify_obs.get(w)
            num += n * mean
            den += n * self.cost.verify_time(w)
        return num / den if den > 0 else 1.0

    def round_cost(self, k: int, scale: float = 1.0) -> float:
        if not self.online:
            return self.cost.draft_time(k) + self.cost.verify_time(k + 1)
        verify = self._blend(self.cost.verify_time(k + 1), self.verify_obs, k + 1, scale)
        draft = self._blend(self.cost.draft_time(k), self.draft_obs, k, scale)
        return draft + verify

    def expected_rates(self, cap: int) -> List[float]:
        """Expected tokens per second for k = 0..cap."""
        acc = self.acceptance(cap)
        scale = self._scale() if self.online else 1.0
        out, tokens, run = [], 1.0, 1.0
        for k in range(cap + 1):
            if k > 0:
                run *= acc[k - 1]
                tokens += run
            out.append(tokens / max(self.round_cost(k, scale), 1e-12))
        return out

    # ---- the hook --------------------------------------------------------------------------
    def __call__(self, stats: SpecStats, cap: int) -> int:
        self._observe(stats)
        if cap <= 0:
            k = 0
        else:
            rates = self.expected_rates(cap)
            k = max(range(cap + 1), key=lambda i: (rates[i], -i))
            if k > 0 and rates[k] < self.min_gain * rates[0]:
                k = 0
            if k > 0:  # drafting pays again (after a probe or not): probes restart from the base gap
                self.probe_every = self.base_probe_every
            elif self.judging:  # the last probe did not make drafting pay: wait longer for the next
                gap = 2 * self.probe_every
                self.probe_every = gap if self.max_probe_every is None else min(gap, self.max_probe_every)
            self.judging = False
            if k == 0 and self.idle + 1 >= self.probe_every:
                k, self.probing = min(self.probe_len, cap), True
                self.probes += 1
        self.history.append(k)
        return k


def make_scheduler(
    cost: Optional[CostCurve] = None,
    *,
    model=None,
    draft_model=None,
    strategy: Optional[str] = None,
    width: int = 8,
    build: Optional[Callable[[], Tuple[TargetAdapter, Proposer]]] = None,
    target: Optional[TargetAdapter] = None,
    **kwargs,
) -> AdaptiveScheduler:
    """A scheduler from ``cost``, or from the cached calibration for ``model`` and ``draft_model``
    (measuring it now, quickly, when there is none: the drafter is timed in proposers from
    ``build``, e.g. :func:`~.generate.proposer_factory`). Decisions read only the curve and the
    acceptance counts, so a seeded run is reproducible; ``online=True`` also feeds measured round
    times back (adapts to load, but the same seed may then give another schedule and so other draws)."""
    if cost is None:
        # A first-run calibration builds modules and draws from mlx's global RNG; a cached curve
        # does not. Reseeding from one draw made either way leaves the caller's random stream in
        # the same state afterwards, so a seeded run gives the same tokens on the first call too.
        resume = int(mx.random.randint(0, 2**31 - 1, shape=(1,)).item())
        cost = cached_or_quick_curve(model, draft_model=draft_model, strategy=strategy, width=width, build=build,
                                     target=target)
        mx.random.seed(resume)
    return AdaptiveScheduler(cost, **kwargs)
