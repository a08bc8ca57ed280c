"""Per-round speculative statistics, public to callers (``stats=`` or ``response.spec``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass(frozen=True)
class RoundStats:
    """One round: ``proposed`` drafts, ``accepted`` of them kept (plus one target token),
    ``draft_time`` / ``verify_time`` in seconds (verify includes acceptance; for a round that
    drafts nothing, pipelined as a plain step, the time between two tokens), ``emitted`` tokens
    actually yielded (the budget may cut a round short), ``commit_time`` the cache rollback and
    the proposer's update (queued work, mostly host time).

    Tree rounds also record ``depth`` (the draft's longest root-to-leaf path) and ``reach`` (draft
    positions the kept path was offered: ``accepted``, plus one when the node it stopped at had
    children). For a chain both default to what they are there: ``proposed`` and
    ``min(proposed, accepted + 1)``. So :meth:`SpecStats.acceptance_by_position` means the same
    for trees and chains: position ``k`` is depth ``k``."""

    proposed: int
    accepted: int
    draft_time: float
    verify_time: float
    emitted: int
    commit_time: float = 0.0
    depth: Optional[int] = None
    reach: Optional[int] = None

    @property
    def draft_depth(self) -> int:
        return self.proposed if self.depth is None else self.depth

    @property
    def offered(self) -> int:
        return min(self.proposed, self.accepted + 1) if self.reach is None else self.reach


@dataclass
class SpecStats:
    """Accumulates :class:`RoundStats` for one generation; ``strategy``/``acceptor`` name what ran."""

    strategy: str = ""
    acceptor: str = ""
    rounds: List[RoundStats] = field(default_factory=list)

    def record(self, r: RoundStats) -> None:
        self.rounds.append(r)

    @property
    def num_rounds(self) -> int:
        return len(self.rounds)

    @property
    def proposed(self) -> int:
        return sum(r.proposed for r in self.rounds)

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.rounds)

    @property
    def emitted(self) -> int:
        return sum(r.emitted for r in self.rounds)

    @property
    def mean_accepted_length(self) -> float:
        """tau: tokens per round, the target's own token included."""
        return (self.accepted + self.num_rounds) / self.num_rounds if self.rounds else 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def draft_time(self) -> float:
        return sum(r.draft_time for r in self.rounds)

    @property
    def verify_time(self) -> float:
        return sum(r.verify_time for r in self.rounds)

    @property
    def commit_time(self) -> float:
        return sum(r.commit_time for r in self.rounds)

    def acceptance_by_position(self) -> List[float]:
        """Conditional acceptance of draft position k (1-based index k-1): of the rounds that
        kept k-1 drafts and were offered a k-th (a chain that proposed at least k; a tree whose
        kept path had a child at depth k), the share that kept one."""
        longest = max((r.draft_depth for r in self.rounds), default=0)
        rates = []
        for k in range(1, longest + 1):
            reached = [r for r in self.rounds if r.offered >= k and r.accepted >= k - 1]
            rates.append(sum(r.accepted >= k for r in reached) / len(reached) if reached else 0.0)
        return rates

    def as_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "acceptor": self.acceptor,
            "rounds": self.num_rounds,
            "proposed": self.proposed,
            "accepted": self.accepted,
            "mean_accepted_length": self.mean_accepted_length,
            "acceptance_rate": self.acceptance_rate,
            "acceptance_by_position": self.acceptance_by_position(),
            "draft_time_s": self.draft_time,
            "verify_time_s": self.verify_time,
        }

    def summary(self) -> str:
        pos = ", ".join(f"{a:.2f}" for a in self.acceptance_by_position())
        return (
            f"Speculative: strategy={self.strategy} acceptor={self.acceptor} rounds={self.num_rounds} "
            f"mean accepted length={self.mean_accepted_length:.2f} "
            f"acceptance={self.acceptance_rate:.1%} ({self.accepted}/{self.proposed}) "
            f"by position=[{pos}] tokens from drafter={self.accepted}/{self.emitted} "
            f"draft {self.draft_time:.3f}s verify {self.verify_time:.3f}s"
        )
