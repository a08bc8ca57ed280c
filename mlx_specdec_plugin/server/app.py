"""``mlx-specdec server``: an OpenAI-compatible HTTP server with exact speculative decoding.

Endpoints (mlx-lm's server conventions): ``POST /v1/chat/completions`` (and ``/chat/completions``),
``POST /v1/completions``, ``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /health``. Streaming
uses server-sent events (``data: {...}`` lines, then ``data: [DONE]``). The Anthropic Messages API,
``POST /v1/messages`` (streaming: Anthropic's events) and ``POST /v1/messages/count_tokens``, is
translated onto the same pipeline by :mod:`.anthropic`.

Request fields, as mlx-lm's server reads them: ``max_tokens`` / ``max_completion_tokens``,
``temperature``, ``top_p``, ``top_k``, ``min_p``, ``repetition_penalty`` (+ ``_context_size``),
``presence_penalty``, ``frequency_penalty`` (+ ``_context_size``), ``logit_bias``, ``stop``,
``seed``, ``stream``, ``stream_options.include_usage``, ``chat_template_kwargs``, ``tools``,
``num_draft_tokens``. Ours, per request, within what was loaded: ``draft_strategy`` (the loaded
one, ``lookup`` or any strategy that needs no weights, ``none``), ``acceptor``, ``num_draft_tokens``
(1 .. ``--max-draft-tokens``, or ``"auto"``) and ``block_size``. Every response carries ``usage`` and a top-level
``speculative`` object (strategy, acceptor, rounds, accepted, mean accepted length, ...); a stream
carries both on its final chunk (and, with ``include_usage``, on the usual usage-only chunk).

Design: the HTTP side (Starlette on uvicorn) only validates and formats; prompts are tokenized on
a tokenizer thread (a prompt that cannot fit is refused before that, from its length alone). One
worker thread owns MLX: it loads the model and runs every generation through a
:class:`~mlx_specdec_plugin.server.batching.Engine` (a request alone speculates; overlapping requests
decode together in mlx-lm's ``BatchGenerator``, a speculating one joining at its next round
boundary), handing events to the event loop with ``call_soon_threadsafe``. Jobs wait in a bounded
queue (``--max-queue``) beyond ``--decode-concurrency`` rows. Finished generations leave their
state in a prefix cache (:mod:`.prefix_cache`); a client that disconnects sets a flag the worker
checks after every token, and its row is dropped. The worker never waits on a client, so a slow
reader cannot hold up the others. Bad input gets a 4xx with an OpenAI-style JSON error
(``{"error": {"message", "type", "param", "code"}}``).

Safe defaults (:class:`HttpPolicy`): no CORS unless ``--cors-origin`` (any other browser ``Origin``
gets 403), a loopback-only ``Host`` when serving loopback (421), optional ``--api-key``, request
head/body read timeouts (408), and a short model id (never a filesystem path).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import queue
import socket
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

# MLX-side modules are imported with this module, in the main thread: mlx-lm creates its
# thread-local generation stream at import, and one created on a thread that later exits aborts
# the interpreter at exit.
import mlx.core as mx
import uvicorn
from mlx_lm import load
from mlx_lm.server import convert_chat
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..distributed import active_group
from ..loading import check_draft, load_draft
from ..options import add_speculative_args, draft_tokens_type, strategy_options
from ..plugins import registry
from ..target import TargetAdapter, vocab_size_of
from .prefix_cache import PrefixCache
from .protocol import SSE_HEADERS, ApiError, GenRequest, StopMatcher, ToolCallSplitter, max_token_chars, parse_request
from . import anthropic as server_anthropic
from .batching import Engine, Row
from .lockstep import add_arguments as add_lockstep_arguments, follower_main, load as lockstep_load, run_worker

log = logging.getLogger("mlx_specdec.server")

# --------------------------------------------------------------------------------------------
# the worker thread: the only thread that touches MLX


class Job:
    """One request's round trip between the event loop and the worker."""

    def __init__(self, req: GenRequest, prompt: List[int], loop: asyncio.AbstractEventLoop):
        self.req = req
        self.prompt = prompt  # token ids (tokenized off the worker thread)
        self.loop = loop
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()

    def post(self, event: tuple) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop is gone (shutdown)
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()


class _WarmupJob(Job):
    """A job served on the worker thread itself at start-up: its events are kept in ``seen``."""

    def __init__(self, req: GenRequest, prompt: List[int]):
        self.req, self.prompt, self.cancelled, self.seen = req, prompt, threading.Event(), []

    def post(self, event: tuple) -> None:
        self.seen.append(event)


class Worker(threading.Thread):
    """Loads the model and serves jobs from a bounded queue through an
    :class:`~mlx_specdec_plugin.server.batching.Engine` (speculation alone, a batch together)."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(name="mlx-specdec-worker", daemon=True)
        self.args = args
        self.jobs: "queue.Queue[Job]" = queue.Queue(maxsize=max(1, args.max_queue))
        self.ready = threading.Event()
        self.load_error: Optional[BaseException] = None
        self.state: Optional[ServerState] = None
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.counters = {"served": 0, "cancelled": 0, "failed": 0}
        self.memory: Dict[str, int] = {}
        self.engine = Engine(self, args.decode_concurrency, args.prompt_concurrency)
        self.group = None  # under mlx.launch: the process group (:mod:`..dist_server`)
        self.fatal: Optional[str] = None
        self.serving = False  # under mlx.launch: a job is being served in lockstep (:meth:`_serve`)

    @property
    def busy(self) -> bool:
        return self.engine.busy or self.serving

    # -- startup

    def run(self) -> None:
        try:
            self._load()
        except BaseException as e:  # reported by main(), which exits
            self.load_error = e
        self.ready.set()
        if self.group is not None and self.load_error is None:  # -- under mlx.launch (dist_server) --
            run_worker(self, self.group, GenRequest, lambda m: ApiError(503, m, type="server_error"))
            self.stopping.set()  # -- end mlx.launch --
        elif self.load_error is None:
            self.engine.run(self.stopping)
        self.stopped.set()
        # Park instead of returning: with mlx 0.32 (cpu), a thread that used MLX and ends before the
        # interpreter exits makes the process abort at exit about half the time ("terminate called
        # without an active exception"). This thread is a daemon, so parking costs nothing.
        threading.Event().wait()

    def _load(self) -> None:


        a = self.args
        tokenizer_config = {"trust_remote_code": a.trust_remote_code}
        if a.chat_template:
            tokenizer_config["chat_template"] = a.chat_template
        self.group = active_group()  # -- under mlx.launch: every rank its shard (dist_server) --
        if self.group is not None:
            model, tokenizer = lockstep_load(a, self.group, tokenizer_config)
        else:  # -- end mlx.launch --
            model, tokenizer = load(a.model, adapter_path=a.adapter_path, tokenizer_config=tokenizer_config)
        if a.use_default_chat_template and tokenizer.chat_template is None:
            tokenizer.chat_template = tokenizer.default_chat_template
        choice = load_draft(check_draft(a.draft_model, a.draft_strategy), model, a.draft_strategy, a.trust_remote_code,
                           a.model)
        draft, strategy, why = choice.draft, choice.strategy or "none", choice.reason
        a.draft_model, self.strategy_options = choice.path, strategy_options(choice.strategy, a.strategy_options)
        log.info("strategy: %s (%s)", strategy, why)

        self.model, self.tokenizer, self.draft = model, tokenizer, draft
        self.target = TargetAdapter(model)
        self.prefix_cache = PrefixCache(a.prompt_cache_size, a.prompt_cache_bytes)
        self.state = ServerState.create(a, model, tokenizer, draft, strategy, registry())
        if a.seed is not None:
            mx.random.seed(a.seed)
        self._warmup()

    def _warmup(self) -> None:
        """One short generation with the loaded settings: fails fast on a bad configuration."""
        st = self.state
        for body in ({"prompt": [1, 2, 3, 1, 2], "max_tokens": 2},  # speculation alone, with these settings
                     {"prompt": [1, 2, 3, 1, 2], "max_tokens": 2, "draft_strategy": "none"}):  # the batch
            job = _WarmupJob(parse_request(body, "text", st), [1, 2, 3, 1, 2])
            self.engine.serve_now(job)
            errors = [e[1] for e in job.seen if e[0] == "error"]
            if errors:
                raise ValueError(errors[0].message)
        self.prefix_cache.clear()

    # -- serving

    def prefix_cache_stats(self) -> dict:
        pc = getattr(self, "prefix_cache", None)
        return {} if pc is None else {**pc.counters, "entries": len(pc.entries)}

    @property
    def healthy(self) -> bool:
        return self.is_alive() and self.load_error is None and not self.stopped.is_set()

    def submit(self, job: Job) -> None:
        if not self.healthy:
            raise ApiError(503, "the generation worker is not running", type="server_error")
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise ApiError(503, "the server is busy (request queue full); retry later", code="queue_full",
                           type="server_error") from None

    def _serve(self, job: Job) -> None:
        """Under mlx.launch (:mod:`.lockstep`): one job to its end, in lockstep with the other ranks
        (:meth:`~mlx_specdec_plugin.server.batching.Engine.serve_lockstep`)."""
        self.engine.serve_lockstep(job, self.group)

    def make_row(self, job: Job) -> Row:
        """The job's :class:`~mlx_specdec_plugin.server.batching.Row` (its stops, tool-call splitting, logprobs)."""
        tok, req = self.tokenizer, job.req
        splitter = None
        if req.tools and getattr(tok, "has_tool_calling", False) and tok.tool_parser is not None:
            splitter = ToolCallSplitter(tok.tool_call_start, tok.tool_call_end,
                                        lambda text, tools=req.tools: tok.tool_parser(text, tools))
        return Row(job, tok, StopMatcher(req.stop), splitter, self._logprob_entry)

    def finished(self, outcome: str) -> None:
        """A job ended (``"served"`` or ``"cancelled"``)."""
        self.counters[outcome] += 1
        self.memory = {
            "mlx_active_memory": int(mx.get_active_memory()),
            "mlx_cache_memory": int(mx.get_cache_memory()),
            "mlx_peak_memory": int(mx.get_peak_memory()),
        }

    def fail(self, job: Job, exc: BaseException, emitted: bool) -> None:
        """A job failed: the client gets an error event (a 4xx for bad input, the traceback stays in
        the log for anything else)."""
        self.counters["failed"] += 1
        if isinstance(exc, ApiError):
            job.post(("error", exc))
        elif isinstance(exc, ValueError):  # raised by prepare(): a strategy/acceptor/sampler combination
            log.log(logging.ERROR if emitted else logging.INFO, "request failed: %s", exc)
            job.post(("error", ApiError(500 if emitted else 400, str(exc))))
        else:  # never kill the worker
            log.error("generation failed", exc_info=exc)
            job.post(("error", ApiError(500, "generation failed (see the server log)")))

    def tokenize(self, req: GenRequest) -> List[int]:
        """The request's prompt token ids; raises :class:`ApiError`. Touches no MLX: it runs on the
        tokenizer thread, so a long prompt never holds the generation worker."""
        tok, st = self.tokenizer, self.state
        if req.kind == "chat":
            if tok.has_chat_template:
                kwargs = dict(st.chat_template_args)
                kwargs.update(req.chat_template_kwargs)
                try:
                    ids = tok.apply_chat_template(
                        req.messages, tools=req.tools, add_generation_prompt=True, tokenize=True, **kwargs
                    )
                except Exception as e:  # jinja errors, template-raised errors, bad template variables
                    raise ApiError(400, f"the chat template could not render these messages: {type(e).__name__}: "
                                   f"{str(e)[:300]}", "messages") from None
                if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                    ids = ids["input_ids"]
                if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
                    raise ApiError(400, "chat_template_kwargs made the template return something other than "
                                   "token ids", "chat_template_kwargs")
            else:
                ids = tok.encode(convert_chat(req.messages, None))
        elif isinstance(req.prompt, str):
            ids = tok.encode(req.prompt)
        else:
            ids = list(req.prompt)
        if not ids:
            raise ApiError(400, "the prompt is empty after tokenization", "prompt")
        if len(ids) > st.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {len(ids)} tokens; this server accepts at most "
                           f"{st.max_prompt_tokens}", "messages" if req.kind == "chat" else "prompt",
                           "context_length_exceeded")
        if st.context_length is not None and not req.max_tokens_explicit:
            req.max_tokens = max(1, min(req.max_tokens, st.context_length - len(ids)))  # the server's default
        if st.context_length is not None and len(ids) + req.max_tokens > st.context_length:
            raise ApiError(400, f"prompt ({len(ids)} tokens) + max_tokens ({req.max_tokens}) exceeds the context "
                           f"length ({st.context_length})", "max_tokens", "context_length_exceeded")
        return ids

    def _logprob_entry(self, token: int, logprobs, top: int) -> dict:
        """OpenAI's entry for one generated token: its log-probability under the target's processed
        distribution (logits processors applied, before temperature/top-p, as mlx-lm reports it)
        and the ``top`` most likely alternatives."""

        def piece(t: int, lp: float) -> dict:
            text = self.tokenizer.decode([t])
            return {"token": text, "logprob": lp, "bytes": list(text.encode("utf-8"))}

        lp = logprobs.astype(mx.float32)
        out = piece(token, float(lp[token].item()))
        out["top_logprobs"] = []
        if top:
            idx = mx.argpartition(-lp, top - 1)[:top]
            vals = lp[idx]
            order = mx.argsort(-vals)
            out["top_logprobs"] = [piece(int(t), float(v)) for t, v in zip(idx[order].tolist(), vals[order].tolist())]
        return out

    def cache_key(self, req: GenRequest) -> Optional[tuple]:
        """A speculative request's prefix-cache key: what its cached state depends on (``None``: the
        prefix cache is off). Plain rows use :data:`~mlx_specdec_plugin.server.batching.PLAIN_KEY`."""
        if self.prefix_cache.max_entries < 1:
            return None
        return (req.draft_strategy, req.num_draft_tokens, req.block_size)


# --------------------------------------------------------------------------------------------
# server state (read-only after load)


def served_model_id(model: str, served_name: Optional[str] = None) -> str:
    """The id clients see: ``--served-model-name``, else a local folder's name or the hub id as
    given; never an absolute path."""
    if served_name:
        return served_name
    if os.path.isabs(model) or os.path.exists(model) or model.startswith((".", "~")):
        return os.path.basename(os.path.normpath(os.path.expanduser(model))) or "model"
    return model


@dataclass
class ServerState:
    model_id: str
    model_aliases: frozenset
    vocab_size: int
    context_length: Optional[int]
    max_prompt_tokens: int
    strategy: str
    allowed_strategies: frozenset
    acceptors: frozenset
    max_draft_tokens: int
    defaults: Dict[str, Any]
    chat_template_args: Dict[str, Any]
    prefill_step_size: int
    registry: Any
    created: int
    draft_model: Optional[str]
    max_token_chars: int = 1 << 30  # most non-space characters one token covers (prompt_size_floor)

    @classmethod
    def create(cls, a: argparse.Namespace, model, tokenizer, draft, strategy: str, reg) -> "ServerState":
        vocab = vocab_size_of(model)
        ctx = a.context_length
        if ctx is None:
            ctx = getattr(getattr(model, "args", None), "max_position_embeddings", None)
        ctx = int(ctx) if ctx else None
        max_prompt = a.max_prompt_tokens or (ctx - 1 if ctx else 1 << 20)
        model_id = served_model_id(a.model, a.served_model_name)
        aliases = {model_id, a.model, os.path.abspath(a.model), os.path.basename(os.path.normpath(a.model)),
                   "default_model"}
        allowed = {"none"}
        for name, entry in reg.strategies.items():
            s = entry.item
            if not s.needs_draft:
                allowed.add(name)
            elif draft is not None and (name == strategy or (s.claims is not None and s.claims(draft))):
                allowed.add(name)
        if strategy != "none":
            reg.strategy(strategy)  # unknown names: one clear error listing the installed ones
        if a.acceptor != "auto":
            reg.acceptor(a.acceptor)
        if strategy != "none" and strategy not in allowed:
            raise ValueError(f"draft strategy '{strategy}' needs --draft-model")
        max_draft = max(a.max_draft_tokens, a.num_draft_tokens if isinstance(a.num_draft_tokens, int) else 1)
        return cls(
            model_id=model_id,
            model_aliases=frozenset(aliases),
            vocab_size=vocab,
            context_length=ctx,
            max_prompt_tokens=max_prompt,
            strategy=strategy,
            allowed_strategies=frozenset(allowed),
            acceptors=frozenset(reg.acceptors) | {"auto"},
            max_draft_tokens=max_draft,
            defaults={
                "max_tokens": a.max_tokens,
                "temperature": a.temp,
                "top_p": a.top_p,
                "top_k": a.top_k,
                "min_p": a.min_p,
                "acceptor": a.acceptor,
                "num_draft_tokens": a.num_draft_tokens,
                "block_size": a.block_size,
            },
            chat_template_args=dict(a.chat_template_args or {}),
            prefill_step_size=a.prefill_step_size,
            registry=reg,
            created=int(time.time()),
            draft_model=served_model_id(a.draft_model) if draft is not None else None,
            max_token_chars=max_token_chars(tokenizer),
        )

    def describe(self) -> dict:
        return {
            "id": self.model_id,
            "object": "model",
            "created": self.created,
            "owned_by": "mlx-specdec",
            "speculative": {
                "strategy": self.strategy,
                "strategies": sorted(self.allowed_strategies),
                "acceptor": self.defaults["acceptor"],
                "acceptors": sorted(self.acceptors),
                "num_draft_tokens": self.defaults["num_draft_tokens"],
                "max_draft_tokens": self.max_draft_tokens,
                "draft_model": self.draft_model,
                "context_length": self.context_length,
            },
        }


# --------------------------------------------------------------------------------------------
# HTTP (Starlette)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _sse(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else _json_bytes(obj)) + b"\n\n"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


@dataclass
class HttpPolicy:
    """Who may talk to the server and how long a request may take to arrive.

    ``allowed_hosts``: hostnames accepted in the ``Host`` header (``None``: any); served on loopback
    it is the loopback names, which defeats DNS rebinding. ``cors_origins``: browser origins that
    may call the API (``[]``: none; a request carrying any other ``Origin`` gets 403, so a web page
    cannot even start a generation). ``api_key``: required as ``Authorization: Bearer KEY`` or
    ``x-api-key: KEY`` on every endpoint but ``/health``, compared in constant time.
    """

    max_body_bytes: int = 4 << 20
    allowed_hosts: Optional[frozenset] = None
    cors_origins: Tuple[str, ...] = ()
    api_key: Optional[str] = None
    body_timeout: float = 30.0


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CORS_HEADERS = ("authorization", "content-type", "x-api-key", "anthropic-version", "anthropic-beta",
                "openai-organization",
                "openai-project", "x-stainless-arch", "x-stainless-lang", "x-stainless-os",
                "x-stainless-package-version", "x-stainless-runtime", "x-stainless-runtime-version",
                "x-stainless-retry-count", "x-stainless-timeout", "x-stainless-async")


def _host_name(value: str) -> str:
    """The hostname of a ``Host`` header (``[::1]:8080`` -> ``::1``, ``a:80`` -> ``a``), lowercased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware enforcing an :class:`HttpPolicy` before any route runs."""

    def __init__(self, app, policy: HttpPolicy, error_body=None):
        self.app, self.policy = app, policy
        key = policy.api_key
        self.key = key.encode() if key else None
        self.error_body = error_body or (lambda e, path: e.body())  # (ApiError, request path) -> body

    async def _refuse(self, send, status: int, message: str, code: str, type_: str, path: str = "") -> None:
        body = _json_bytes(self.error_body(ApiError(status, message, code=code, type=type_), path))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, headers: Dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key")
        auth = headers.get(b"authorization", b"")
        if given is None and auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given, self.key)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        p = self.policy
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = headers.get(b"host")
        if p.allowed_hosts is not None and host is not None:
            if _host_name(host.decode("latin-1")) not in p.allowed_hosts:
                log.warning("refused Host %r", host[:100])
                return await self._refuse(send, 421, "this Host is not served here (see --allowed-hosts)",
                                          "host_not_allowed", "invalid_request_error", scope["path"])
        origin = headers.get(b"origin")
        if origin is not None and "*" not in p.cors_origins and origin.decode("latin-1") not in p.cors_origins:
            return await self._refuse(send, 403, "cross-origin requests are not allowed (see --cors-origin)",
                                      "origin_not_allowed", "invalid_request_error", scope["path"])
        preflight = scope["method"] == "OPTIONS" and b"access-control-request-method" in headers
        if self.key is not None and not preflight and scope["path"] != "/health" and not self._authorized(headers):
            return await self._refuse(send, 401, "a valid API key is required (Authorization: Bearer KEY or "
                                      "x-api-key: KEY)", "invalid_api_key", "authentication_error", scope["path"])
        return await self.app(scope, receive, send)


def _make_app(worker: Worker, policy: HttpPolicy, tokenize_pool=None):
    state = worker.state
    max_body_bytes = policy.max_body_bytes
    if tokenize_pool is None:
        tokenize_pool = ThreadPoolExecutor(1, thread_name_prefix="mlx-specdec-tokenize")

    def error_body(e: ApiError, path: str) -> dict:
        if server_anthropic.owns(path):
            return server_anthropic.error_body(e.status, e.message)
        return e.body()

    def error_response(e: ApiError, path: str = "") -> Response:
        return Response(_json_bytes(error_body(e, path)), status_code=e.status, media_type="application/json")

    def json_response(obj: Any, status: int = 200) -> Response:
        return Response(_json_bytes(obj), status_code=status, media_type="application/json")

    async def read_json(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None:
            try:
                if int(length) > max_body_bytes:
                    raise ApiError(413, f"request body larger than {max_body_bytes} bytes", code="request_too_large")
            except ValueError:
                raise ApiError(400, "invalid Content-Length header") from None
        chunks, size = [], 0

        async def read_all():
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body_bytes:
                    raise ApiError(413, f"request body larger than {max_body_bytes} bytes", code="request_too_large")
                chunks.append(chunk)

        try:
            await asyncio.wait_for(read_all(), policy.body_timeout)
        except asyncio.TimeoutError:
            raise ApiError(408, f"the request body did not arrive within {policy.body_timeout:g} s",
                           code="request_timeout") from None
        raw = b"".join(chunks)
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ApiError(400, f"invalid JSON in the request body: {str(e)[:200]}") from None

    async def watch_disconnect(receive, job: Job) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                job.cancel()
                job.events.put_nowait(("disconnected",))
                return

    class Formatter:
        def __init__(self, req: GenRequest):
            self.req = req
            self.chat = req.kind == "chat"
            self.id = ("chatcmpl-" if self.chat else "cmpl-") + uuid.uuid4().hex
            self.created = int(time.time())
            self.object = ("chat.completion" if self.chat else "text_completion") + (
                ".chunk" if self.chat and req.stream else "")

        def _base(self, choices: list) -> dict:
            return {"id": self.id, "object": self.object, "created": self.created, "model": self.req.model,
                    "system_fingerprint": "mlx-specdec", "choices": choices}

        def logprobs(self, entries: Optional[List[dict]], offset: int = 0) -> Optional[dict]:
            """Chat: ``{"content": [entries]}``; text completions: the legacy parallel lists."""
            if not self.req.logprobs or entries is None:
                return None
            if self.chat:
                return {"content": entries, "refusal": None}
            offsets, pos = [], offset
            for e in entries:
                offsets.append(pos)
                pos += len(e["token"])
            return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
                    "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
                    "text_offset": offsets}

        def chunk(self, text: Optional[str], finish: Optional[str] = None, role: bool = False,
                  entries: Optional[List[dict]] = None, offset: int = 0, calls: Optional[List[dict]] = None) -> dict:
            lp = self.logprobs(entries, offset)
            if self.chat:
                delta = {"role": "assistant"} if role else {}
                if text is not None and (text or not calls):
                    delta["content"] = text
                if calls:
                    delta["tool_calls"] = calls
                choice = {"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text or "", "logprobs": lp, "finish_reason": finish}
            return self._base([choice])

        def full(self, text: str, finish: str, usage: dict, spec: dict, entries: Optional[List[dict]] = None,
                 calls: Optional[List[dict]] = None) -> dict:
            lp = self.logprobs(entries)
            if self.chat:
                message = {"role": "assistant", "content": text if text or not calls else None}
                if calls:
                    message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
                choice = {"index": 0, "message": message, "logprobs": lp, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text, "logprobs": lp, "finish_reason": finish}
            out = self._base([choice])
            out.update(usage=usage, speculative=spec)
            return out

    class SSEResponse(Response):
        """Streams a job's events; whatever ends it (done, error, disconnect) cancels the job."""

        def __init__(self, job: Job, first: tuple, watcher: asyncio.Task, fmt: Formatter):
            self.status_code, self.background = 200, None
            self.raw_headers = list(SSE_HEADERS)
            self.job, self.first, self.watcher, self.fmt = job, first, watcher, fmt

        async def __call__(self, scope, receive, send) -> None:
            fmt = self.fmt
            try:
                await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

                async def body(data: bytes, more: bool = True):
                    await send({"type": "http.response.body", "body": data, "more_body": more})

                if fmt.chat:
                    await body(_sse(fmt.chunk("", role=True)))
                event, offset = self.first, 0
                while True:
                    kind = event[0]
                    if kind == "delta":
                        await body(_sse(fmt.chunk(event[1], entries=event[2], offset=offset, calls=event[3])))
                        offset += len(event[1])
                    elif kind == "done":
                        finish, usage, spec = event[1:4]
                        if finish == "cancelled":
                            break
                        last = fmt.chunk(None if fmt.chat else "", finish)
                        last.update(usage=usage, speculative=spec)
                        await body(_sse(last))
                        if fmt.req.include_usage:
                            extra = fmt._base([])
                            extra.update(usage=usage, speculative=spec)
                            await body(_sse(extra))
                        await body(_sse(b"[DONE]"))
                        break
                    elif kind == "error":
                        await body(_sse(event[1].body()))
                        await body(_sse(b"[DONE]"))
                        break
                    else:  # disconnected
                        return
                    event = await self.job.events.get()
                await body(b"", more=False)
            except OSError:  # the client went away while we were writing
                pass
            finally:
                self.job.cancel()
                self.watcher.cancel()

    async def completion(request: Request, kind: str) -> Response:
        try:
            body = await read_json(request)
            req = parse_request(body, kind, state)
            loop = asyncio.get_running_loop()
            prompt = await loop.run_in_executor(tokenize_pool, worker.tokenize, req)
            job = Job(req, prompt, loop)
            worker.submit(job)
        except ApiError as e:
            return error_response(e)
        except ClientDisconnect:
            return Response(status_code=499)
        watcher = asyncio.create_task(watch_disconnect(request.receive, job))
        handed_over = False
        try:
            first = await job.events.get()
            if first[0] == "error":
                return error_response(first[1])
            if first[0] == "disconnected":
                return Response(status_code=499)
            fmt = Formatter(req)
            if req.stream:
                handed_over = True
                return SSEResponse(job, first, watcher, fmt)
            parts, entries, calls, event = [], [], [], first
            while event[0] == "delta":
                parts.append(event[1])
                entries.extend(event[2])
                calls.extend(event[3])
                event = await job.events.get()
            if event[0] == "error":
                return error_response(event[1])
            if event[0] == "disconnected":
                return Response(status_code=499)
            finish, usage, spec = event[1:4]
            return json_response(fmt.full("".join(parts), finish, usage, spec, entries, calls))
        finally:
            if not handed_over:
                job.cancel()
                watcher.cancel()

    async def chat_completions(request: Request) -> Response:
        return await completion(request, "chat")

    async def text_completions(request: Request) -> Response:
        return await completion(request, "text")

    async def models(request: Request) -> Response:
        return json_response({"object": "list", "data": [state.describe()]})

    async def model(request: Request) -> Response:
        if request.path_params["model_id"] not in state.model_aliases:
            return error_response(ApiError(404, "model not found", "model", "model_not_found"))
        return json_response(state.describe())

    async def health(request: Request) -> Response:
        ok = worker.healthy
        return json_response(
            {
                "status": "ok" if ok else "unavailable",
                "queue": worker.jobs.qsize(),
                "busy": worker.busy,
                **worker.counters,
                **worker.memory,
                "prefix_cache": worker.prefix_cache_stats(),
            },
            200 if ok else 503,
        )

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error_response(ApiError(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404
                                       else None), request.url.path)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(ApiError(500, f"internal error: {type(exc).__name__}"), request.url.path)

    # -- the Anthropic Messages API (server_anthropic translates; this is its access to the pipeline)
    class AnthropicJob:
        """A submitted job and its disconnect watcher; ``close()`` ends both."""

        def __init__(self, job: Job, watcher: asyncio.Task):
            self.job, self.watcher, self.events = job, watcher, job.events

        def close(self) -> None:
            self.job.cancel()
            self.watcher.cancel()

    async def tokenize(req: GenRequest) -> List[int]:
        return await asyncio.get_running_loop().run_in_executor(tokenize_pool, worker.tokenize, req)

    async def start(request: Request, req: GenRequest, prompt: List[int]) -> AnthropicJob:
        job = Job(req, prompt, asyncio.get_running_loop())
        worker.submit(job)
        return AnthropicJob(job, asyncio.create_task(watch_disconnect(request.receive, job)))

    anthropic_routes = server_anthropic.routes(server_anthropic.Backend(
        read_json=read_json, parse=lambda body: parse_request(body, "chat", state), tokenize=tokenize, start=start,
        api_error=ApiError))

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", text_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        *anthropic_routes,
    ]
    middleware = [Middleware(Guard, policy=policy, error_body=error_body)]
    if policy.cors_origins:  # only these origins, only our methods and the headers clients send
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(policy.cors_origins),
                                     allow_methods=["GET", "POST", "OPTIONS"], allow_headers=list(CORS_HEADERS),
                                     max_age=600))
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={HTTPException: http_error, Exception: server_error})


def _timed_protocol(header_timeout: float):
    """uvicorn's h11 protocol with a request-head deadline: a connection that has not sent a complete
    request line and headers within ``header_timeout`` seconds (of connecting, or of its previous
    response) gets a 408 and is closed. uvicorn's own keep-alive timeout covers idle connections
    between requests; the body deadline is :attr:`HttpPolicy.body_timeout`."""

    class TimedH11Protocol(H11Protocol):
        _head_timer = None
        _cycle_at_arm = None

        def _arm(self) -> None:
            self._disarm()
            self._cycle_at_arm = self.cycle
            self._head_timer = self.loop.call_later(header_timeout, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.cycle is self._cycle_at_arm and not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
                                     b"content-length: 0\r\n\r\n")
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_timer is not None and self.cycle is not self._cycle_at_arm:
                self._disarm()  # a request head arrived: its handler now owns the connection

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return TimedH11Protocol


def http_policy(args: argparse.Namespace, host: str) -> HttpPolicy:
    """The :class:`HttpPolicy` of the command line (``host``: the address actually bound)."""
    if args.allowed_hosts is not None:
        hosts = None if "*" in args.allowed_hosts else frozenset(h.lower() for h in args.allowed_hosts)
    elif host in LOOPBACK_HOSTS or host.startswith("127."):
        hosts = LOOPBACK_HOSTS | {host}
    else:
        hosts = None  # bound to a routable address: every name of the machine is fair
    key = args.api_key or os.environ.get("MLX_SPECDEC_API_KEY") or None
    return HttpPolicy(max_body_bytes=args.max_body_bytes, allowed_hosts=hosts,
                      cors_origins=tuple(o for o in args.cors_origins if o), api_key=key,
                      body_timeout=args.body_timeout)


# --------------------------------------------------------------------------------------------
# command line


def _size(value: str) -> int:
    """``4G``, ``512M``, ``100K`` or a number of bytes."""
    text = str(value).strip().upper().rstrip("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 4G or 512M, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlx-specdec server",
                                description="OpenAI-compatible server (mlx_lm.server's flags) with exact "
                                "speculative decoding")
    p.add_argument("--model", required=True, help="path or Hugging Face repo of the target mlx-lm model")
    p.add_argument("--adapter-path", default=None)
    p.add_argument("--draft-model", default=None, help="an mlx-lm model with the target's tokenizer, or a "
                   "DSpark/DFlash checkpoint folder")
    p.add_argument("--num-draft-tokens", type=draft_tokens_type, default=None,
                   help="default draft length per round (default: a DSpark/DFlash drafter's trained block, else 3), "
                   "or 'auto' (adaptive, from this machine's calibrated costs)")
    p.add_argument("--max-draft-tokens", type=int, default=16, help="largest num_draft_tokens a request may ask for")
    add_speculative_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (0: pick a free one; the address is printed)")
    p.add_argument("--served-model-name", default=None,
                   help="model id in responses (default: the model folder's name, or the hub id)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--chat-template", default="")
    p.add_argument("--use-default-chat-template", action="store_true")
    p.add_argument("--chat-template-args", type=json.loads, default="{}",
                   help='JSON arguments for apply_chat_template, e.g. \'{"enable_thinking":false}\'')
    p.add_argument("--temp", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--min-p", type=float, default=0.0)
    p.add_argument("--max-tokens", type=int, default=512, help="default max_tokens")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--prefill-step-size", type=int, default=2048)
    p.add_argument("--context-length", type=int, default=None,
                   help="prompt + max_tokens limit (default: the model's max_position_embeddings)")
    p.add_argument("--max-prompt-tokens", type=int, default=None, help="longest accepted prompt")
    p.add_argument("--prompt-cache-size", type=int, default=4,
                   help="finished generations whose target and drafter state are kept for prefix reuse (0: off)")
    p.add_argument("--prompt-cache-bytes", type=_size, default=4 << 30,
                   help="memory budget of the prefix cache, e.g. 2G (default 4G)")
    p.add_argument("--max-body-bytes", type=int, default=4 << 20, help="largest request body (413 above)")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting at most (503 above)")
    p.add_argument("--decode-concurrency", type=int, default=32,
                   help="requests decoded together in one batch at most (the rest wait in the queue)")
    p.add_argument("--prompt-concurrency", type=int, default=8, help="prompts prefilled together at most")
    p.add_argument("--cors-origin", "--cors-origins", "--allowed-origins", dest="cors_origins",
                   type=lambda x: x.split(","), default=[],
                   help="comma-separated browser origins allowed to call the API, e.g. http://localhost:3000 "
                   "('*': any web page). Default: none; a request from any other origin gets 403")
    p.add_argument("--allowed-hosts", type=lambda x: x.split(","), default=None,
                   help="comma-separated Host header names accepted ('*': any). Default on loopback: the loopback "
                   "names only (defeats DNS rebinding); on another address: any")
    p.add_argument("--api-key", default=None,
                   help="require this key (Authorization: Bearer KEY or x-api-key: KEY); also read from "
                   "MLX_SPECDEC_API_KEY")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a connection may take to send a request's headers (408, closed)")
    p.add_argument("--body-timeout", type=float, default=30.0, help="seconds a request body may take (408)")
    p.add_argument("--keep-alive-timeout", type=int, default=5, help="seconds an idle connection stays open")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])

    add_lockstep_arguments(p)  # --pipeline, --distributed-timeout (mlx.launch)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(message)s")
    if isinstance(args.num_draft_tokens, int) and args.num_draft_tokens < 1:
        print("[mlx-specdec] error: --num-draft-tokens must be >= 1", file=sys.stderr)
        return 2
    if args.host not in LOOPBACK_HOSTS and not (args.api_key or os.environ.get("MLX_SPECDEC_API_KEY")):
        log.warning("binding %s without --api-key: anyone who can reach it can use it", args.host)
    if "*" in args.cors_origins:
        log.warning("--cors-origin '*': every web page you open can use this server")


    registry()
    worker = Worker(args)
    worker.start()
    worker.ready.wait()
    if worker.load_error is not None:
        print(f"[mlx-specdec] error: could not start: {worker.load_error}", file=sys.stderr, flush=True)
        return 2
    if worker.group is not None and worker.group.rank() > 0:  # -- mlx.launch: a follower serves no HTTP --
        return follower_main(worker)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print(f"[mlx-specdec] error: cannot bind {args.host}:{args.port}: {e}", file=sys.stderr, flush=True)
        worker.stopping.set()  # under mlx.launch: the followers are told to stop
        worker.stopped.wait(timeout=5)
        return 2
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    app = _make_app(worker, http_policy(args, args.host))
    config = uvicorn.Config(app, log_level=args.log_level.lower(), access_log=args.log_level == "DEBUG",
                            lifespan="off", ws="none", timeout_graceful_shutdown=5,
                            http=_timed_protocol(args.header_timeout), timeout_keep_alive=args.keep_alive_timeout)
    server = uvicorn.Server(config)
    if worker.group is not None:  # -- mlx.launch: on SIGTERM, stop the followers before exiting --
        # (uvicorn re-raises the signal it caught; the default handler would skip the stop)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        worker.on_fatal = lambda: setattr(server, "should_exit", True)  # the group failed  -- end --
    st = worker.state
    print(f"[mlx-specdec] serving {st.model_id} (strategy {st.strategy}) on http://{host}:{port}", flush=True)
    try:
        if not worker.fatal:
            server.run(sockets=[sock])
    finally:
        worker.stopping.set()
        worker.stopped.wait(timeout=5)
    if worker.fatal:  # mlx.launch: the process group failed (dist_server)
        print(f"[mlx-specdec] error: {worker.fatal}", file=sys.stderr, flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
