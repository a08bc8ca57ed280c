"""Acceptors: turn one verify pass into a :class:`~mlx_specdec_plugin.contract.Verdict`.

An acceptor is a plain function ``accept(draft, scores) -> Verdict``. Each built-in lives in its
own module and is registered through the ``register_acceptors`` hook as an
:class:`~mlx_specdec_plugin.contract.AcceptorSpec` (the types live in :mod:`~mlx_specdec_plugin.contract`).
Exactness contract: if ``draft.tokens[i] ~ draft.q[i]``, the emitted tokens are distributed as
the target's processed distribution would emit them, one at a time.
"""

from __future__ import annotations

import mlx.core as mx

from ..contract import AcceptorSpec, Draft, TargetScores

__all__ = ["AcceptorSpec", "TargetScores", "draft_q_rows", "draft_token_probs", "first_false"]


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
