"""The speculative decoding loop: propose -> verify -> accept -> commit/rollback -> emit.

:func:`speculative_generate_step` has mlx-lm's generator protocol: it yields
``(token, logprobs, from_draft)`` one token at a time. It knows nothing about any particular
drafter or acceptor; those come in as a :class:`~mlx_specdec_plugin.contract.Proposer` and an
acceptor function (see :mod:`mlx_specdec_plugin.plugins` for how names are resolved).

A round whose draft length is 0 (``draft_length``'s choice, e.g. ``auto`` when drafting would
lose) is a plain decoding step, pipelined as mlx-lm's ``generate_step`` is: while it runs, the
next empty round is already queued on its lazy token, so such rounds cost what plain decoding
costs (not for a ``lockstep`` proposer, whose every token the acceptor decides: see
:mod:`.distributed`). The draft length of each round is decided once, after the previous round is recorded and
before any of its own tokens are drawn.

Tree drafts (``Draft.parents``) take the same round: the target verifies every node in one
forward (``tree=draft.parents``), the verdict names the accepted path, and the loop keeps the verify
rows ``verdict.rows`` (the pending token and that path) in the cache (compacted into place), the
hidden states and the emitted log-probabilities. For a chain those rows are ``0..accepted``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Generator, List, Optional, Sequence, Tuple

import mlx.core as mx

from . import caches
from .contract import TargetScores
from .contract import Draft, DraftContext, Proposer, Verdict
from .sampling import Sampling
from .stats import RoundStats, SpecStats
from .target import TargetAdapter
from .tree import depths as tree_depths
from .tree import take_rows

Acceptor = Callable[[Draft, TargetScores], Verdict]
# prefill(target, cache, tokens, proposer, step_size): put ``tokens`` in ``cache``, hand them on.
Prefill = Callable[[TargetAdapter, List[Any], Sequence[int], Proposer, int], None]


def prefill(
    target: TargetAdapter,
    cache: List[Any],
    tokens: Sequence[int],
    proposer: Proposer,
    step_size: int,
) -> None:
    """Run ``tokens`` through the target in chunks, handing each chunk (and its taps) on."""
    for start in range(0, len(tokens), step_size):
        chunk = list(tokens[start : start + step_size])
        _, hidden = target(mx.array([chunk], dtype=mx.uint32), cache, proposer.tap_layers)
        mx.eval([c.state for c in caches.leaves(cache)], hidden)
        proposer.extend(chunk, hidden)


def speculative_generate_step(
    prompt: mx.array,
    target: TargetAdapter,
    proposer: Proposer,
    acceptor: Acceptor,
    *,
    num_draft_tokens: int = 3,
    max_tokens: int = 256,
    sampling: Optional[Sampling] = None,
    prompt_cache: Optional[List[Any]] = None,
    prefill_step_size: int = 2048,
    stats: Optional[SpecStats] = None,
    draft_length: Optional[Callable[[SpecStats, int], int]] = None,
    prefill_fn: Optional[Prefill] = None,
    cached_tokens: int = 0,
) -> Generator[Tuple[int, mx.array, bool], None, None]:
    """Generate tokens after ``prompt`` (1-D token array), ``max_tokens`` at most (-1: no limit).

    ``prompt_cache`` (owned by the caller if given, updated in place) must hold no more than the
    context *before* ``prompt``. ``draft_length(stats, cap)``, if given, chooses each round's
    number of proposals in ``0..cap`` before any of that round's tokens are drawn.
    ``prefill_fn``, if given, replaces :func:`prefill` for ``prompt[:-1]`` (e.g. mlx-vlm prompt
    embeddings with an image in them, :mod:`.vlm`); it must leave the same state behind.
    ``cached_tokens``: the first ``cached_tokens`` of ``prompt`` (fewer than all of them) are already
    in ``prompt_cache`` and in the proposer's state (a prefix cache, :mod:`.prefix_cache`); only the
    rest is prefilled. The whole prompt is still the history drafters and processors read.
    """
    if num_draft_tokens < 1:
        raise ValueError(f"num_draft_tokens must be >= 1, got {num_draft_tokens}")
    sampling = sampling or Sampling.create()
    stats = stats if stats is not None else SpecStats()
    cache = prompt_cache if prompt_cache is not None else target.make_cache()
    caches.check_rollback(cache, trees=bool(getattr(proposer, "drafts_trees", False)))
    history = [int(t) for t in prompt.tolist()]
    if not history:
        raise ValueError("the prompt must contain at least one token")
    if not 0 <= cached_tokens < len(history) or (cached_tokens and prefill_fn is not None):
        raise ValueError(f"cached_tokens must be in [0, {len(history)}) without a prefill_fn, got {cached_tokens}")

    (prefill_fn or prefill)(target, cache, history[cached_tokens:-1], proposer, prefill_step_size)
    emitted = 0

    def next_budget() -> int:
        """Proposals for the next round, decided from finished rounds only (before any of its
        tokens are drawn), so every acceptor stays exact whatever the schedule."""
        budget = num_draft_tokens if max_tokens < 0 else min(num_draft_tokens, max_tokens - emitted - 1)
        if draft_length is not None:
            budget = min(budget, draft_length(stats, budget))
        return budget

    # a proposer that runs in lockstep with other processes (:mod:`.distributed`) has every token
    # decided by the acceptor, so a round that drafts nothing is not the pipelined plain step
    lockstep = bool(getattr(proposer, "lockstep", False))
    budget = next_budget()
    while max_tokens < 0 or emitted < max_tokens:
        if budget == 0 and not sampling.processors and not lockstep:
            # A round that drafts nothing is a plain decoding step, pipelined as mlx-lm's
            # generate_step pipelines: the next step's graph is built on this step's still-lazy
            # token and queued before the host waits for it.
            t0 = time.perf_counter()
            step = _plain_step(target, cache, proposer, sampling, mx.array([history[-1]], dtype=mx.uint32))
            while True:
                # recorded before the next length is chosen; its time is known only after the sync
                stats.record(RoundStats(0, 0, 0.0, 0.0, 1))
                emitted += 1
                budget = next_budget() if max_tokens < 0 or emitted < max_tokens else -1
                upcoming = _plain_step(target, cache, proposer, sampling, step[0]) if budget == 0 else None
                token = int(step[0].item())
                proposer.extend([history[-1]], step[2])
                history.append(token)
                t1 = time.perf_counter()
                stats.rounds[-1] = RoundStats(0, 0, 0.0, t1 - t0, 1)
                t0 = t1
                yield token, step[1], False
                if upcoming is None:
                    break
                step = upcoming
            continue

        # propose
        t0 = time.perf_counter()
        ctx = DraftContext(history, sampling, cache)
        draft = proposer.propose(ctx, budget) if budget > 0 else Draft.empty()

        # verify: its graph is built on the still-lazy draft and queued behind it, so the host's
        # graph building overlaps the drafter's forward and the verify starts as the draft ends
        g = len(draft)
        inputs = mx.concatenate([mx.array([history[-1]], dtype=mx.uint32), draft.tokens.astype(mx.uint32)])
        rnd = caches.begin_round(cache, replay=lambda n: target(inputs[None, :n], cache))
        logits, hidden = target(inputs[None], cache, proposer.tap_layers, record=rnd.captured, tree=draft.parents)
        mx.async_eval([a for a in (logits, hidden) if a is not None])
        drafted = draft.tokens.tolist()  # the one host sync of drafting (q is computed with it)
        t1 = time.perf_counter()
        scores = TargetScores.from_logits(logits[0], history + drafted, sampling, parents=draft.parents)

        # accept
        verdict = acceptor(draft, scores)
        tau, rows = verdict.accepted, verdict.rows  # rows: the pending token + the kept nodes
        kept = [drafted[i] for i in verdict.nodes]
        t2 = time.perf_counter()

        # commit / rollback
        caches.end_round(cache, rnd, appended=g + 1, keep=tau + 1, rows=rows)
        committed = [history[-1]] + kept
        proposer.extend(committed, take_rows(hidden, rows, axis=1) if hidden is not None else None)
        history.extend(kept)
        history.append(verdict.next_token)
        t3 = time.perf_counter()

        # emit
        out = kept + [verdict.next_token]
        if max_tokens >= 0:
            out = out[: max_tokens - emitted]
        depth = reach = None
        if draft.parents is not None:  # a tree: its depth, and whether the kept path was offered more
            depth = max(tree_depths(draft.parents), default=0)
            last = verdict.nodes[-1] if tau else -1
            reach = tau + (1 if last in draft.parents else 0)
        stats.record(RoundStats(g, tau, t1 - t0, t2 - t1, len(out), t3 - t2, depth, reach))
        emitted += len(out)
        budget = next_budget()
        for i, token in enumerate(out):
            yield token, scores.logprobs[rows[i]], i < tau


def _plain_step(target: TargetAdapter, cache: List[Any], proposer: Proposer, sampling: Sampling, token: mx.array):
    """Queue one target step on ``token`` (uint32 ``(1,)``, may be lazy): ``(next token (1,),
    logprobs (V,), tapped hidden or None)``, all lazy; the token is drawn with the user's sampler
    (an exact draw from p, as every acceptor makes for an empty draft)."""
    logits, hidden = target(token[None], cache, proposer.tap_layers)
    logprobs = sampling.logprobs(logits[0], ())
    nxt = sampling.sample(logprobs)
    mx.async_eval(nxt, logprobs)
    return nxt, logprobs[0], hidden
