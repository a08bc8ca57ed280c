"""``mlx-specdec server`` under ``mlx.launch``: rank 0 serves HTTP, the other ranks follow.

Every rank loads its shard of the target (:func:`~.distributed.load_sharded`, after checking that all
ranks have the same files) and runs the server's generation worker; only rank 0 binds the port.
Rank 0's worker takes each job from its queue and broadcasts it (:class:`Channel`: the validated
request and the prompt's token ids, as JSON, by ``all_sum``); every other rank runs the very same
``Worker._serve`` (one job to its end through ``stream_generate``, no batching) on it, in lockstep, and throws its events away. So every rank builds the same
caches, proposers and prefix-cache entries, and meets the same collectives in the same order; rank 0
still drafts and decides every token (:mod:`.distributed`), so the reply is exact and the followers
need neither rank 0's seed nor its floating-point bits.

What only rank 0 knows is made everyone's:

- a client that goes away: the job's ``cancelled`` flag is a :class:`LockstepFlag` (each read is rank
  0's value, broadcast), read by every rank at the same tokens;
- idle time: with no job, rank 0 broadcasts a heartbeat every :data:`POLL_S` seconds, so a rank that
  dies while the server is idle is noticed within a poll (mlx raises a lost peer: one line, exit 3),
  and the watchdog (``--distributed-timeout``) ends a rank whose peer hangs;
- shutdown: rank 0 broadcasts a stop when its HTTP server stops; the followers exit 0.

One generation at a time (the worker's queue), as a single-process server.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import signal
import sys
from typing import Any, Callable, List, Tuple

import mlx.core as mx

from .. import caches
from ..distributed import (DistributedError, Watchdog, broadcast_bytes, broadcast_ints, check_same, digest,
                           load_sharded, timeout_s)
from ..loading import resolve

log = logging.getLogger("mlx_specdec.server")

POLL_S = 0.2  # rank 0's heartbeat period while idle
IDLE, JOB, STOP = 0, 1, 2
FAILED_EXIT = 3  # a rank whose process group failed


def add_arguments(parser) -> None:
    """The server's flags for ``mlx.launch``."""
    parser.add_argument("--pipeline", action="store_true",
                        help="under mlx.launch: shard the target in pipeline stages (mlx-lm's pipeline_load) "
                        "instead of tensor parallel; draft-model and lookup only")
    parser.add_argument("--distributed-timeout", type=float, default=None,
                        help="under mlx.launch: a rank that waits on the others longer than this many seconds "
                        "exits with an error (default $MLX_SPECDEC_DIST_TIMEOUT or 300)")


def load(args, group: mx.distributed.Group, tokenizer_config: dict):
    """Every rank's shard of ``--model``; arms the watchdog. One-line errors (``ValueError``)."""
    if args.adapter_path is not None:
        raise ValueError("--adapter-path is not supported on a sharded target")
    draft_path = None
    if args.draft_model is not None:
        draft_path = resolve(args.draft_model, "--draft-model")
    model, tokenizer = load_sharded(resolve(args.model, "--model"), draft_path, group, pipeline=args.pipeline,
                                    tokenizer_config=tokenizer_config, trust_remote_code=args.trust_remote_code)
    Watchdog.arm(group.rank(), timeout_s(args.distributed_timeout))
    if group.rank() != 0:
        log.setLevel(logging.WARNING)  # rank 0 speaks for the group
    return model, tokenizer


class LockstepFlag:
    """A job's ``cancelled`` event whose every read is rank 0's value on every rank (a broadcast);
    ``set`` (a client went away) acts on rank 0's event."""

    def __init__(self, event, group: mx.distributed.Group):
        self.event = event
        self.group = group

    def set(self) -> None:
        if self.event is not None:
            self.event.set()

    def is_set(self) -> bool:
        mine = [int(self.event.is_set())] if self.group.rank() == 0 else None
        return bool(broadcast_ints(mine, 1, self.group)[0])


class LockstepPrefixCache:
    """The worker's :class:`~.prefix_cache.PrefixCache`, decided on rank 0: which entry a prompt
    reuses (and how many tokens), and which entries a finished generation leaves, are rank 0's and
    broadcast. A follower keeps the same entries (its target cache, cut to the same tokens) but its
    proposer is idle (rank 0 drafts), so its own bookkeeping could decide otherwise."""

    def __init__(self, inner, group: mx.distributed.Group):
        self.inner, self.group = inner, group
        self.leader = group.rank() == 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def take(self, key, prompt, min_reuse: int = 1):
        if self.leader:
            before = set(self.inner.entries)
            ctx = self.inner.take(key, prompt, min_reuse)
            gone = sorted(before - set(self.inner.entries))  # the entry taken (or dropped unusable)
            taken = gone[0] if ctx is not None else -1
            broadcast_ints([taken, ctx.reused if ctx is not None else 0, len(gone)] + (gone + [-1])[:1], 4,
                           self.group)
            return ctx
        taken, reused, n_gone, dropped = broadcast_ints(None, 4, self.group)
        if taken < 0:
            if n_gone:
                self.inner.entries.pop(dropped, None)
            self.inner.counters["misses"] += 1
            return None
        _, ctx = self.inner.entries.pop(taken)
        self._cut(ctx, reused)
        ctx.reused = reused
        self.inner.counters["hits"] += 1
        return ctx

    def put(self, key, ctx) -> bool:
        if self.leader:
            eid = self.inner._next
            kept = self.inner.put(key, ctx)
            ids = sorted(self.inner.entries)
            size = self.inner.max_entries + 1
            broadcast_ints([int(kept), eid, len(ctx.tokens), len(ids)] + (ids + [0] * size)[:size], 4 + size,
                           self.group)
            return kept
        size = self.inner.max_entries + 1
        got = broadcast_ints(None, 4 + size, self.group)
        kept, eid, n, count = got[:4]
        if kept:
            self._cut(ctx, n)
            ctx.reused = 0
            self.inner.entries[eid] = (key, ctx)
            self.inner._next = eid + 1
        keep = set(got[4 : 4 + count])
        for stale in [e for e in self.inner.entries if e not in keep]:
            del self.inner.entries[stale]
        return bool(kept)

    @staticmethod
    def _cut(ctx, n: int) -> None:

        for c in caches.leaves(ctx.cache):
            c.trim(int(c.offset) - n)
        del ctx.tokens[n:]


class Channel:
    """Rank 0's messages to the other ranks: ``(kind, payload bytes)``."""

    def __init__(self, group: mx.distributed.Group):
        self.group = group

    def send(self, kind: int, payload: bytes = b"") -> None:
        broadcast_ints([kind], 1, self.group)
        if kind == JOB:
            broadcast_bytes(payload, self.group)

    def receive(self) -> Tuple[int, bytes]:
        kind = broadcast_ints(None, 1, self.group)[0]
        return kind, (broadcast_bytes(None, self.group) if kind == JOB else b"")


def encode_job(req: Any, prompt: List[int]) -> bytes:
    """A validated request (a dataclass) and its prompt ids as JSON; what the followers need only
    (the prompt is already tokens: messages, tools and the text prompt stay on rank 0)."""
    fields = dataclasses.asdict(req)
    for name in ("messages", "tools", "prompt", "chat_template_kwargs"):
        fields.pop(name, None)
    if fields.get("logit_bias") is not None:
        fields["logit_bias"] = sorted(fields["logit_bias"].items())
    return json.dumps({"req": fields, "prompt": [int(t) for t in prompt]}).encode()


def decode_job(data: bytes, request_type: Callable) -> Tuple[Any, List[int]]:
    obj = json.loads(data)
    fields = obj["req"]
    if fields.get("logit_bias") is not None:
        fields["logit_bias"] = {int(k): float(v) for k, v in fields["logit_bias"]}
    return request_type(**fields), obj["prompt"]


class FollowerJob:
    """A job on a follower: the same request, its events dropped."""

    def __init__(self, req: Any, prompt: List[int], group: mx.distributed.Group):
        self.req, self.prompt = req, prompt
        self.cancelled = LockstepFlag(None, group)

    def post(self, event: tuple) -> None:
        pass


def run_worker(worker, group: mx.distributed.Group, request_type: Callable, error: Callable[[str], Any]) -> None:
    """The worker thread's serving loop under ``mlx.launch`` (after its model is loaded): rank 0 leads,
    the others follow. Returns when the group stops. A failed group (a lost or stuck peer, or ranks
    whose generations ended differently) sets ``worker.fatal`` (one line), answers the jobs still
    queued with ``error(message)`` and calls ``worker.on_fatal()`` (rank 0: stop serving HTTP)."""
    channel = Channel(group)
    worker.prefix_cache = LockstepPrefixCache(worker.prefix_cache, group)
    try:
        if group.rank() == 0:
            _lead(worker, channel, group)
        else:
            _follow(worker, channel, group, request_type)
    except DistributedError as e:
        worker.fatal = f"rank {group.rank()}: {e}"
        while True:
            try:
                worker.jobs.get_nowait().post(("error", error(f"the process group failed: {e}")))
            except queue.Empty:
                break
        getattr(worker, "on_fatal", lambda: None)()
    finally:
        Watchdog.disarm()


def _lead(worker, channel: Channel, group: mx.distributed.Group) -> None:
    while not worker.stopping.is_set():
        try:
            job = worker.jobs.get(timeout=POLL_S)
        except queue.Empty:
            channel.send(IDLE)
            continue
        if job.req.seed is None:  # every rank's random state stays alike (rank 0 still draws every token)
            job.req.seed = int(mx.random.randint(0, 1 << 31, (1,)).item())
        channel.send(JOB, encode_job(job.req, job.prompt))
        job.cancelled = LockstepFlag(job.cancelled, group)
        worker.serving = True
        try:
            _serve_in_step(worker, job, group)
        finally:
            worker.serving = False
    channel.send(STOP)
    _goodbye(group)


def _goodbye(group: mx.distributed.Group) -> None:
    """One more collective after the stop: rank 0 completes it only once every rank has received the
    stop (a process that exits with a message still in flight can cut it off)."""
    try:
        broadcast_ints([0] if group.rank() == 0 else None, 1, group)
    except DistributedError:
        pass


def _follow(worker, channel: Channel, group: mx.distributed.Group, request_type: Callable) -> None:
    while True:
        kind, payload = channel.receive()
        if kind == STOP:
            _goodbye(group)
            return
        if kind == JOB:
            req, prompt = decode_job(payload, request_type)
            _serve_in_step(worker, FollowerJob(req, prompt, group), group)


def _serve_in_step(worker, job, group: mx.distributed.Group) -> None:
    """``worker._serve(job)``, then every rank checks that every rank's generation ended the same way
    (served, cancelled or refused alike): a generation one rank could not finish (a lost peer inside
    a forward, which the worker answers with a 500) ends the group here, with one line, instead of
    leaving the ranks out of step."""
    before = dict(worker.counters)
    worker._serve(job)
    outcome = {k: worker.counters[k] - before.get(k, 0) for k in worker.counters}
    check_same("generation outcomes", digest(outcome), group)


def follower_main(worker) -> int:
    """A follower's ``main``: wait for the worker to stop following; its exit status. A follower
    ignores SIGINT (a Ctrl-C under ``mlx.launch`` reaches every rank): it stops when rank 0 tells it,
    so that rank 0 can stop it cleanly (SIGTERM and the watchdog still end it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker.stopped.wait()
    if getattr(worker, "fatal", None):
        print(f"[mlx-specdec] error: {worker.fatal}", file=sys.stderr, flush=True)
        return FAILED_EXIT
    return 0
