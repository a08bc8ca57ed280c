"""Acceptors: turn one verify pass into a :class:`~mlx_specdec_plugin.contract.Verdict`.

An acceptor is a plain function ``accept(draft, scores) -> Verdict``. Each built-in lives in its
own module and is registered through the ``register_acceptors`` hook as an :class:`AcceptorSpec`.
Exactness contract: if ``draft.tokens[i] ~ draft.q[i]``, the emitted tokens are distributed as
the target's processed distribution would emit them, one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import mlx.core as mx

from .. import tree as _tree
from ..contract import Draft, Verdict
from ..sampling import Sampling, greedy_tokens, normalise


@dataclass
class TargetScores:
    """The target's verify pass over ``[pending, x1..xg]``.

    ``logprobs``: ``(g+1, V)`` processed (logits processors applied with each row's own history)
    and normalised; row ``i`` is the target's view of the token after ``x_i`` (row 0: after the
    pending token). ``processed``: the same rows before normalisation, when known
    (:meth:`from_logits`); then ``logprobs`` stays a lazy graph that runs only if someone reads
    it, and the acceptors' distributions and argmaxes skip it. Distributions are cached.
    """

    logprobs: mx.array
    sampling: Sampling
    _probs: Optional[mx.array] = None
    processed: Optional[mx.array] = None

    @classmethod
    def from_logits(
        cls, logits: mx.array, history: Sequence[int], sampling: Sampling, parents: Optional[Sequence[int]] = None
    ) -> "TargetScores":
        """Scores of verify logits ``(g+1, V)``; ``history`` as for :meth:`Sampling.processed`.
        With ``parents`` (a tree draft; ``history`` ends with its g nodes) row ``1 + i``'s
        processors see the committed tokens and node i's own root-to-node path."""
        if parents is None:
            processed = sampling.processed(logits, history)
        else:
            g = len(parents)
            base, nodes = list(history[: len(history) - g]), list(history[len(history) - g :])
            rows = [base] + [base + [nodes[j] for j in _tree.path_to(parents, i)] for i in range(g)]
            processed = sampling.processed_rows(logits, rows)
        return cls(normalise(processed), sampling, None, processed)

    def probs(self) -> mx.array:
        """``(g+1, V)`` float32 sampling distributions p_i."""
        if self._probs is None:
            self._probs = (self.sampling.distribution(self.processed) if self.processed is not None
                           else self.sampling.probs(self.logprobs))
        return self._probs

    def argmax(self) -> mx.array:
        return mx.argmax(self.logprobs, axis=-1).astype(mx.uint32)

    def greedy_tokens(self) -> List[int]:
        """Each row's argmax of ``logprobs``, exactly as mlx-lm's greedy sampler picks it (one sync)."""
        if self.processed is None:
            return self.argmax().tolist()
        return greedy_tokens(self.processed)

    def sample(self) -> mx.array:
        """One independent draw per row with the user's own sampler."""
        return self.sampling.sample(self.logprobs)


@dataclass(frozen=True)
class AcceptorSpec:
    """An acceptor as registered. ``needs_distribution``: needs p (a known sampler);
    ``needs_q``: needs the draft's q (or a deterministic draft); ``greedy_only``: exact only at
    temperature 0; ``trees``: takes tree drafts (``Draft.parents``), chains included."""

    name: str
    accept: Callable[[Draft, TargetScores], Verdict]
    description: str = ""
    needs_distribution: bool = False
    needs_q: bool = False
    greedy_only: bool = False
    trees: bool = False


def draft_token_probs(draft: Draft, probs_rows: mx.array) -> mx.array:
    """``probs_rows[i, draft.tokens[i]]`` for i < g, as a float32 ``(g,)`` array."""
    g = len(draft)
    return mx.take_along_axis(probs_rows[:g], draft.tokens[:, None].astype(mx.int32), axis=-1)[:, 0]


def draft_q_rows(draft: Draft, vocab: int) -> mx.array:
    """The draft's q as ``(g, V)`` rows (one-hot rows for a deterministic draft)."""
    if draft.q is not None:
        return draft.q.astype(mx.float32)
    if not draft.deterministic:
        raise ValueError("this acceptor needs the draft distribution q, which the drafter did not report")
    return (mx.arange(vocab)[None, :] == draft.tokens[:, None]).astype(mx.float32)


def first_false(flags) -> int:
    for i, ok in enumerate(flags):
        if not ok:
            return i
    return len(flags)
