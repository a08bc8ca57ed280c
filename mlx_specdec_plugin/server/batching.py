"""Concurrent requests for ``mlx-specdec server``: speculate alone, decode together.

The server's worker thread owns MLX and runs an :class:`Engine`. Each request is a :class:`Row`:
its sampling, stop sequences, tool-call splitting, logprobs and detokenizing, fed one token at a
time by whichever path produces its tokens.

- **Alone**, a request that asks for speculation runs the speculative loop
  (:func:`~mlx_specdec_plugin.generate.speculate`), with the prefix cache of its strategy.
- **Together**, rows decode in one mlx-lm ``BatchGenerator`` (continuous batching, as
  ``mlx_lm.server`` does): one target forward per step for every row, each row with its own
  sampler, logits processors (their history is the row's whole context), ``max_tokens`` and stops.
  Requests that arrive while a request speculates make it join the batch at its next **round
  boundary** (after the round's last token, which is the target's own draw): its target cache,
  cut to the committed tokens, becomes its batch row, and the drafter's state is dropped.
  A request that asks for ``draft_strategy: "none"`` always decodes in the batch (one row alone
  is plain decoding). Once batched a row stays batched (speculating again would need the drafter's
  state for its whole context).

Exactness. A round boundary is a stopping time of the speculative loop at which everything
emitted is a draw from the target's distribution and nothing drawn after it has been looked at;
plain decoding from there draws each later token from the target's conditional, so every row's
output distribution is the target's. Greedy rows are the target's argmax at every step, token for
token the same as plain single-request decoding (up to float rounding of a batched matmul, which
does not move an argmax on the models we test).

Prefix cache: speculative rows use the strategy's entries (target cache + proposer state) as before;
batched rows use plain entries (``PLAIN_KEY``: the target cache alone), taken when they join and
put back when they finish (a speculative entry is taken, without its drafter state, when no plain
one matches).

Not per row in a batch: ``seed`` (the batch shares MLX's random stream; a seeded request is
reproducible when it runs alone), and speculation itself.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional

import mlx.core as mx
from mlx_lm.generate import BatchGenerator
from mlx_lm.sample_utils import make_logits_processors

from .. import caches
from ..generate import resolve_acceptor, speculate, stream_generate
from .prefix_cache import CachedContext, cache_offset
from ..sampling import Sampling, make_sampler
from ..stats import SpecStats

log = logging.getLogger("mlx_specdec.server")

PLAIN_KEY = ("none",)  # prefix-cache entries of plain (batched) decoding: the target cache alone


class Row:
    """One request's decoding state, fed token by token (:meth:`feed`), posting the job's events:
    ``("delta", text, logprob entries, tool calls)`` then ``("done", finish, usage, speculative, stop
    sequence that ended it or None)``.

    ``matcher`` cuts at stop strings (``feed(text) -> (text, stopped)``, ``flush()``); ``splitter``
    (or ``None``) splits tool calls (``feed(text) -> (text, calls)``, ``flush()``); ``entry(token,
    logprobs, top)`` is one OpenAI logprob entry."""

    def __init__(self, job, tokenizer, matcher, splitter, entry: Callable[[int, Any, int], dict]):
        self.job, self.req = job, job.req
        self.prompt: List[int] = list(job.prompt)
        self.detok = tokenizer.detokenizer  # a fresh copy per call
        self.eos = set(tokenizer.eos_token_ids)
        self.matcher, self.splitter, self.entry = matcher, splitter, entry
        req = self.req
        self.sampler = make_sampler(req.temperature, req.top_p, req.min_p, 1, req.top_k)
        self.processors = make_logits_processors(
            req.logit_bias, req.repetition_penalty, req.repetition_context_size, req.presence_penalty,
            req.presence_context_size, req.frequency_penalty, req.frequency_context_size)
        self.generated: List[int] = []
        self.entries: List[dict] = []  # logprob entries not yet attached to a delta
        self.stats = SpecStats()
        self.stats.strategy = self.stats.acceptor = "none"
        self.reused = 0  # prompt tokens served from the prefix cache
        self.batched = 0  # tokens decoded in the batch
        self.made_calls = False
        self.finish: Optional[str] = None
        self.emitted = False
        self.t_first: Optional[float] = None

    @property
    def remaining(self) -> int:
        return self.req.max_tokens - len(self.generated)

    @property
    def tokens(self) -> List[int]:
        """Every token of the row so far: the prompt, then what was generated."""
        return self.prompt + self.generated

    def feed(self, token: int, logprobs) -> bool:
        """Take the next token (and the target's processed log-probabilities, ``(V,)``); ``True``
        when the row is finished (end of sequence, ``max_tokens``, a stop string, or cancelled)."""
        token = int(token)
        if self.t_first is None:
            self.t_first = time.perf_counter()
        self.generated.append(token)
        finish = None
        if token in self.eos:  # the model's end-of-sequence token: no text, no entry
            finish = "stop"
            self.detok.finalize()
        else:
            if self.req.logprobs:
                self.entries.append(self.entry(token, logprobs, self.req.top_logprobs))
            self.detok.add_token(token)
            if len(self.generated) >= self.req.max_tokens:
                finish = "length"
                self.detok.finalize()
        segment = self.detok.last_segment
        if finish is not None:
            # The detokenizer flushes an incomplete UTF-8 tail as one U+FFFD: a reply cut
            # mid-character drops it.
            segment = segment[:-1] if segment.endswith("\ufffd") else segment
        calls: List[dict] = []
        if self.splitter is not None:
            segment, calls = self.splitter.feed(segment)
            if finish is not None:
                tail, more = self.splitter.flush()
                segment, calls = segment + tail, calls + more
            self.made_calls = self.made_calls or bool(calls)
        text, stopped = self.matcher.feed(segment)
        if text or calls:
            self._delta(text, calls)
        if stopped:
            finish = "stop"
        elif finish is None and self.job.cancelled.is_set():
            finish = "cancelled"
        self.finish = finish
        return finish is not None

    def _delta(self, text: str, calls: List[dict]) -> None:
        self.job.post(("delta", text, self.entries, calls))
        self.entries = []
        self.emitted = True

    def close(self, finish: Optional[str] = None) -> None:
        """Post the end of the row (``finish`` overrides, e.g. ``"cancelled"``)."""
        finish = finish or self.finish or "length"
        rest = self.matcher.flush() if finish != "stop" else ""
        if rest or self.entries:
            self._delta(rest, [])
        if self.made_calls and finish == "stop":
            finish = "tool_calls"
        n = len(self.generated)
        usage = {"prompt_tokens": len(self.prompt), "completion_tokens": n, "total_tokens": len(self.prompt) + n,
                 "prompt_tokens_details": {"cached_tokens": self.reused}}
        spec = self.stats.as_dict()
        spec["num_draft_tokens"] = self.req.num_draft_tokens if self.req.draft_strategy != "none" else 0
        spec["batched_tokens"] = self.batched
        elapsed = time.perf_counter() - self.t_first if self.t_first is not None else 0.0
        spec["tokens_per_second"] = float(n / elapsed) if elapsed > 0 else 0.0
        self.job.post(("done", finish, usage, spec, getattr(self.matcher, "matched", None)))


class Engine:
    """The worker's scheduler (see the module docstring). ``host`` is the server's worker: it has
    ``model``, ``tokenizer``, ``draft``, ``target``, ``prefix_cache``, ``state``,
    ``strategy_options``, ``jobs`` (a ``queue.Queue`` of jobs), ``make_row(job) -> Row``, ``cache_key(req)`` (a speculative request's prefix-cache key, or
    ``None``), ``fail(job, exc, emitted)`` and ``finished(outcome)``."""

    def __init__(self, host, decode_concurrency: int = 32, prompt_concurrency: int = 8):
        self.host = host
        self.decode_concurrency = max(1, decode_concurrency)
        self.prompt_concurrency = max(1, prompt_concurrency)
        self.batch: Optional[BatchGenerator] = None
        self.rows: Dict[int, Row] = {}  # batch uid -> row
        self.waiting: Deque[Any] = deque()  # jobs taken from the queue, not yet placed
        self.solo = False  # a request is speculating alone
        self._greedy = make_sampler(0.0)  # shared by greedy rows: one batched argmax for all of them

    @property
    def busy(self) -> bool:
        return self.solo or bool(self.rows) or bool(self.waiting)

    # -- the loop

    def run(self, stopping) -> None:
        """Serve the host's jobs until ``stopping`` (an event) is set."""
        while not stopping.is_set():
            self._take(block=not self.rows and not self.waiting)
            if not self.rows and len(self.waiting) == 1 and self.waiting[0].req.draft_strategy != "none":
                self._alone(self.waiting.popleft())
                continue
            while self.waiting:
                self._join(self.waiting.popleft())
            if self.rows:
                self._step()

    def serve_now(self, job) -> None:
        """Serve ``job`` to its end, now, on this thread (the server's start-up warm-up): alone if it
        speculates, else in the batch."""
        if job.req.draft_strategy != "none":
            self._alone(job)
        else:
            self._join(job)
        while self.rows:
            self._step()

    def _take(self, block: bool) -> None:
        """Move jobs from the host's queue to :attr:`waiting`, up to the batch's capacity."""
        jobs = self.host.jobs
        if block:
            try:
                self.waiting.append(jobs.get(timeout=0.2))
            except queue.Empty:
                return
        while len(self.rows) + len(self.waiting) < self.decode_concurrency:
            try:
                self.waiting.append(jobs.get_nowait())
            except queue.Empty:
                break

    def _others_waiting(self) -> bool:
        return bool(self.waiting) or self.host.jobs.qsize() > 0

    # -- one request alone: speculation

    def _open(self, job) -> Optional[Row]:
        """The job's row, its seed applied; ``None`` when the job was cancelled before it started."""
        if job.cancelled.is_set():
            self.host.finished("cancelled")
            return None
        row = self.host.make_row(job)
        if row.req.seed is not None:
            mx.random.seed(row.req.seed % (1 << 64))
        return row

    def _alone(self, job) -> None:
        host = self.host
        row = None
        try:
            row = self._open(job)
            if row is None:
                return
            req = row.req
            strategy = host.state.registry.strategy(req.draft_strategy)
            draft = host.draft if strategy.needs_draft else None
            # an acceptor/sampler mismatch is a 400 before any cache entry is taken
            resolve_acceptor(req.acceptor, Sampling.create(row.sampler, row.processors))
            key = host.cache_key(req)
            ctx = host.prefix_cache.take(key, row.prompt) if key is not None else None
            row.reused = ctx.reused if ctx is not None else 0
            cache = ctx.cache if ctx is not None else host.target.make_cache()
            run = speculate(host.model, draft, target=host.target, sampler=row.sampler,
                            logits_processors=row.processors, prefill_step_size=host.state.prefill_step_size,
                            draft_strategy=req.draft_strategy, acceptor=req.acceptor,
                            num_draft_tokens=req.num_draft_tokens, block_size=req.block_size,
                            strategy_options=host.strategy_options, stats=row.stats,
                            proposer=ctx.proposer if ctx is not None else None, cached_tokens=row.reused)
            tokens = run.tokens(mx.array(row.prompt, dtype=mx.uint32), req.max_tokens, cache)
            self.solo = True
            handed_over = done = False
            try:
                for token, logprobs, from_draft in tokens:
                    if row.feed(token, logprobs):
                        done = True
                        break
                    if not from_draft and self._others_waiting():  # a round boundary: join the batch
                        handed_over = True
                        break
            finally:
                tokens.close()
                self.solo = False
            if handed_over:
                self._join_row(row, cache)
                return
            if key is not None:  # the state of every token the target has seen, for the next request
                host.prefix_cache.put(key, CachedContext(row.tokens, cache, run.proposer))
            row.close(None if done else "length")
            host.finished("cancelled" if row.finish == "cancelled" else "served")
        except Exception as e:
            host.fail(job, e, row is not None and row.emitted)

    # -- under mlx.launch: one request at a time, in lockstep

    def serve_lockstep(self, job, group) -> None:
        """Serve ``job`` to its end through :func:`~mlx_specdec_plugin.generate.stream_generate`,
        which runs in lockstep with the other ranks of ``group`` (rank 0 draws every token). No
        batching (batched rows are not lockstep) and no prefix cache (every rank would have to take
        the same cache decisions): a fresh cache each time."""
        host = self.host
        row = None
        try:
            row = self._open(job)
            if row is None:
                return
            req = row.req
            kwargs = dict(max_tokens=req.max_tokens, sampler=row.sampler, logits_processors=row.processors,
                          prefill_step_size=host.state.prefill_step_size, group=group)
            if req.draft_strategy != "none":
                strategy = host.state.registry.strategy(req.draft_strategy)
                kwargs.update(draft_model=host.draft if strategy.needs_draft else None,
                              draft_strategy=req.draft_strategy, acceptor=req.acceptor,
                              num_draft_tokens=req.num_draft_tokens, block_size=req.block_size,
                              strategy_options=host.strategy_options, stats=row.stats, target=host.target)
            done = False
            responses = stream_generate(host.model, host.tokenizer, mx.array(row.prompt, dtype=mx.uint32), **kwargs)
            try:
                for r in responses:
                    if row.feed(int(r.token), r.logprobs):
                        done = True
                        break
            finally:
                responses.close()
            row.close(None if done else "length")
            host.finished("cancelled" if row.finish == "cancelled" else "served")
        except Exception as e:
            host.fail(job, e, row is not None and row.emitted)

    # -- together: mlx-lm's BatchGenerator

    def _batch(self) -> BatchGenerator:
        if self.batch is None:
            host = self.host
            self.batch = BatchGenerator(
                host.model, max_tokens=1, stop_tokens=[[t] for t in host.tokenizer.eos_token_ids],
                completion_batch_size=self.decode_concurrency, prefill_batch_size=self.prompt_concurrency,
                prefill_step_size=host.state.prefill_step_size)
        return self.batch

    def _join(self, job) -> None:
        """A new request joins the batch (with a plain prefix-cache entry if one matches)."""
        host = self.host
        if job.cancelled.is_set():
            host.finished("cancelled")
            return
        try:
            row = host.make_row(job)
            req = row.req
            if req.draft_strategy != "none":  # the same 400 it would get alone
                resolve_acceptor(req.acceptor, Sampling.create(row.sampler, row.processors))
            if req.seed is not None:
                mx.random.seed(req.seed % (1 << 64))
            ctx = None
            if host.prefix_cache.max_entries > 0:
                ctx = host.prefix_cache.take(PLAIN_KEY, row.prompt)
                key = host.cache_key(req) if ctx is None and req.draft_strategy != "none" else None
                if key is not None:
                    ctx = host.prefix_cache.take(key, row.prompt)  # its target cache; the drafter's is dropped
            row.reused = ctx.reused if ctx is not None else 0
            self._join_row(row, ctx.cache if ctx is not None else None)
        except Exception as e:
            host.fail(job, e, False)

    def _join_row(self, row: Row, cache: Optional[List[Any]]) -> None:
        """Insert ``row`` into the batch; ``cache`` holds (at least) a prefix of its tokens."""
        tokens = row.tokens
        held = min(cache_offset(cache), len(tokens) - 1) if cache is not None else 0
        if cache is not None:
            for c in caches.leaves(cache):
                c.trim(int(c.offset) - held)
        (uid,) = self._batch().insert(
            [tokens[held:]], max_tokens=[row.remaining], caches=[cache] if cache is not None else None,
            all_tokens=[tokens[:held]], samplers=[self._greedy if row.sampler.params.greedy else row.sampler],
            logits_processors=[row.processors])
        self.rows[uid] = row

    def _step(self) -> None:
        host, batch = self.host, self.batch
        gone = [uid for uid, row in self.rows.items() if row.job.cancelled.is_set()]
        if gone:
            batch.remove(gone)
            for uid in gone:
                self.rows.pop(uid).close("cancelled")
                host.finished("cancelled")
        if not self.rows:
            return
        try:
            _, responses = batch.next()
        except Exception as e:  # every row of the batch is lost; the worker goes on
            rows, self.rows, self.batch = list(self.rows.values()), {}, None
            for row in rows:
                host.fail(row.job, e, row.emitted)
            return
        for r in responses:
            row = self.rows.get(r.uid)
            if row is None:
                continue
            row.batched += 1
            done = row.feed(r.token, r.logprobs)
            if not done and r.finish_reason is None:
                continue
            del self.rows[r.uid]
            if r.finish_reason is None:  # a stop string or a cancel: the batch still holds the row
                cache, held = batch.remove([r.uid], return_prompt_caches=True)[r.uid]
            else:
                cache, held = r.prompt_cache, r.all_tokens
            if host.prefix_cache.max_entries > 0:
                host.prefix_cache.put(PLAIN_KEY, CachedContext(list(held), cache))
            row.close(row.finish or r.finish_reason)
            host.finished("cancelled" if row.finish == "cancelled" else "served")
