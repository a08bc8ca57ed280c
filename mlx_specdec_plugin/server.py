"""``mlx-specdec server``: an OpenAI-compatible HTTP server with exact speculative decoding.

Endpoints (mlx-lm's server conventions): ``POST /v1/chat/completions`` (and ``/chat/completions``),
``POST /v1/completions``, ``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /health``. Streaming
uses server-sent events (``data: {...}`` lines, then ``data: [DONE]``).

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
worker thread owns MLX: it loads the model and runs every generation, one request at a time (a
bounded queue), handing events to the event loop with ``call_soon_threadsafe``. Each generation builds
its own KV cache and proposer, so nothing survives a request; a client that disconnects sets a
flag the worker checks after every token, and its generation is dropped. The worker never waits
on a client, so a slow reader cannot hold up the next request. Bad input gets a 4xx with an
OpenAI-style JSON error (``{"error": {"message", "type", "param", "code"}}``).

Safe defaults (:class:`HttpPolicy`): no CORS unless ``--cors-origin`` (any other browser ``Origin``
gets 403), a loopback-only ``Host`` when serving loopback (421), optional ``--api-key``, request
head/body read timeouts (408), and a short model id (never a filesystem path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import queue
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

log = logging.getLogger("mlx_specdec.server")

ROLES = ("system", "user", "assistant", "tool", "developer", "function")
# apply_chat_template arguments a request may not set through chat_template_kwargs.
RESERVED_TEMPLATE_KWARGS = frozenset(
    "conversation messages tokenize return_tensors return_dict padding truncation max_length tools "
    "documents add_generation_prompt continue_final_message tokenizer_kwargs "
    "return_assistant_tokens_mask chat_template".split()
)
MAX_STOP_SEQUENCES = 16
MAX_STOP_LENGTH = 1000
MAX_CONTEXT_SIZE = 1 << 20
MAX_TOP_LOGPROBS = 20
GREEDY_BELOW = 1e-5  # a temperature below this is greedy decoding (see _temperature)


# --------------------------------------------------------------------------------------------
# errors


class ApiError(Exception):
    """An error for the client: HTTP ``status`` and an OpenAI-style body."""

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None,
                 type: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


# --------------------------------------------------------------------------------------------
# request validation (pure Python: runs on the event loop, touches no MLX)

_MISSING = object()


def _field(body: dict, name: str, default: Any = None) -> Any:
    value = body.get(name, _MISSING)
    return default if value is _MISSING or value is None else value


def _int(body: dict, name: str, default: Any, lo: Optional[int] = None, hi: Optional[int] = None) -> Any:
    value = _field(body, name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{name}' must be an integer, got {_short(value)}", name)
    if lo is not None and value < lo:
        raise ApiError(400, f"'{name}' must be >= {lo}, got {value}", name)
    if hi is not None and value > hi:
        raise ApiError(400, f"'{name}' must be <= {hi}, got {_short(value)}", name)
    return value


def _float(body: dict, name: str, default: Any, lo: Optional[float] = None, hi: Optional[float] = None) -> Any:
    value = _field(body, name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"'{name}' must be a number, got {_short(value)}", name)
    try:
        value = float(value)
    except OverflowError:
        raise ApiError(400, f"'{name}' is out of range", name) from None
    if not math.isfinite(value):
        raise ApiError(400, f"'{name}' must be finite", name)
    if lo is not None and value < lo:
        raise ApiError(400, f"'{name}' must be >= {lo}, got {value}", name)
    if hi is not None and value > hi:
        raise ApiError(400, f"'{name}' must be <= {hi}, got {value}", name)
    return value


def _bool(body: dict, name: str, default: bool) -> bool:
    value = _field(body, name, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"'{name}' must be a boolean, got {_short(value)}", name)
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"'{name}' must be a string, got {_short(value)}", name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"'{name}' is not valid UTF-8 text (lone surrogate)", name) from None
    return value


def _content(content: Any, where: str) -> Optional[str]:
    """A message's content: a string, null, or a list of text parts (joined)."""
    if content is None:
        return None
    if isinstance(content, str):
        return _str(content, where)
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                raise ApiError(400, f"'{where}' parts must be objects", "messages")
            kind = part.get("type")
            if kind in ("text", "input_text"):
                texts.append(_str(part.get("text"), f"{where}.text"))
            elif kind in ("image_url", "input_image", "image"):
                raise ApiError(400, "image inputs are not supported by this text server", "messages")
            else:
                raise ApiError(400, f"unsupported content part type {_short(kind)} in '{where}'", "messages")
        return "".join(texts)
    raise ApiError(400, f"'{where}' must be a string, null or a list of text parts", "messages")


def _json_value(value: Any, name: str, depth: int = 0) -> Any:
    """Check that ``value`` is plain JSON data with valid UTF-8 strings (for template variables)."""
    if depth > 32:
        raise ApiError(400, f"'{name}' is nested too deeply", name)
    if isinstance(value, str):
        return _str(value, name)
    if isinstance(value, list):
        return [_json_value(v, name, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_str(k, name): _json_value(v, name, depth + 1) for k, v in value.items()}
    return value


def _messages(body: dict) -> List[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", "messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ApiError(400, f"messages[{i}] must be an object", "messages")
        role = m.get("role")
        if role not in ROLES:
            raise ApiError(400, f"messages[{i}].role must be one of {', '.join(ROLES)}; got {_short(role)}", "messages")
        msg = {k: _json_value(v, "messages") for k, v in m.items() if k not in ("role", "content")}
        msg["role"] = role
        # null content (an assistant turn that only calls tools): "" as mlx-lm does, so templates
        # that concatenate content still render
        msg["content"] = _content(m.get("content"), f"messages[{i}].content") or ""
        calls = msg.get("tool_calls")
        if calls is None:
            msg.pop("tool_calls", None)
        else:
            msg["tool_calls"] = _tool_calls(calls, f"messages[{i}].tool_calls")
        out.append(msg)
    return out


def _tool_calls(calls: Any, where: str) -> List[dict]:
    """An assistant turn's ``tool_calls``: a list of ``{"function": {"name", "arguments"}}`` objects;
    string arguments are parsed to a dict (chat templates want a mapping, as in mlx-lm)."""
    if not isinstance(calls, list):
        raise ApiError(400, f"'{where}' must be a list of tool call objects, got {_short(calls)}", "messages")
    out = []
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ApiError(400, f"'{where}[{j}]' must be an object with a 'function' object that has a 'name'",
                           "messages")
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                raise ApiError(400, f"'{where}[{j}].function.arguments' is not valid JSON", "messages") from None
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ApiError(400, f"'{where}[{j}].function.arguments' must be a JSON object", "messages")
        out.append({**call, "function": {**fn, "arguments": args}})
    return out


def _prompt(body: dict, vocab_size: int):
    """A text completion's prompt: a string, a list of token ids, or a one-element list of either."""
    prompt = body.get("prompt", _MISSING)
    if prompt is _MISSING or prompt is None:
        raise ApiError(400, "'prompt' is required", "prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        prompt = _str(prompt, "prompt")
        if not prompt:
            raise ApiError(400, "'prompt' is empty", "prompt")
        return prompt
    if isinstance(prompt, list):
        if not prompt:
            raise ApiError(400, "'prompt' is empty", "prompt")
        for t in prompt:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_size:
                raise ApiError(
                    400, f"'prompt' token ids must be integers in [0, {vocab_size}); got {_short(t)} "
                    "(one prompt per request)", "prompt")
        return list(prompt)
    raise ApiError(400, "'prompt' must be a string or a list of token ids", "prompt")


def _stop(body: dict) -> List[str]:
    stop = _field(body, "stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > MAX_STOP_SEQUENCES:
        raise ApiError(400, f"'stop' must be a string or a list of at most {MAX_STOP_SEQUENCES} strings", "stop")
    for s in stop:
        if not isinstance(s, str) or not 0 < len(s) <= MAX_STOP_LENGTH:
            raise ApiError(400, f"'stop' sequences must be non-empty strings of at most {MAX_STOP_LENGTH} characters",
                           "stop")
        _str(s, "stop")
    return list(dict.fromkeys(stop))


def _logit_bias(body: dict, vocab_size: int) -> Optional[Dict[int, float]]:
    bias = _field(body, "logit_bias", None)
    if bias is None:
        return None
    if not isinstance(bias, dict):
        raise ApiError(400, "'logit_bias' must be an object mapping token ids to numbers", "logit_bias")
    out = {}
    for k, v in bias.items():
        try:
            token = int(k)
        except (TypeError, ValueError):
            raise ApiError(400, f"'logit_bias' keys must be token ids, got {_short(k)}", "logit_bias") from None
        if not 0 <= token < vocab_size:
            raise ApiError(400, f"'logit_bias' token id {token} outside [0, {vocab_size})", "logit_bias")
        value = _float({"logit_bias": v}, "logit_bias", None, -100.0, 100.0) if v is not None else None
        if value is None:
            raise ApiError(400, "'logit_bias' values must be numbers in [-100, 100]", "logit_bias")
        out[token] = value
    return out or None


def _temperature(body: dict, default: float) -> float:
    """``temperature`` >= 0; below :data:`GREEDY_BELOW` it means greedy decoding (0). At such a
    temperature ``logits / T`` overflows float32 (1e-40 made garbage) and the tempered distribution
    is the argmax anyway, except between logits closer than ~1e-3 (vLLM uses the same cut-off)."""
    t = _float(body, "temperature", default, 0.0)
    return 0.0 if t < GREEDY_BELOW else t


def _draft_tokens(body: dict, default: Any, cap: int) -> Any:
    """``num_draft_tokens``: an integer in 1..cap, or ``"auto"`` (the adaptive per-round scheduler)."""
    if _field(body, "num_draft_tokens", default) == "auto":  # asked for, or the server's default
        return "auto"
    return _int(body, "num_draft_tokens", default, 1, cap)


@dataclass
class GenRequest:
    """A validated completion request (chat or text)."""

    kind: str  # "chat" | "text"
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int
    max_tokens_explicit: bool
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repetition_penalty: Optional[float]
    repetition_context_size: int
    presence_penalty: Optional[float]
    presence_context_size: int
    frequency_penalty: Optional[float]
    frequency_context_size: int
    logit_bias: Optional[Dict[int, float]]
    stop: List[str]
    seed: Optional[int]
    draft_strategy: str
    acceptor: str
    num_draft_tokens: Any  # int, "auto", or None (the strategy's default)
    block_size: Optional[int]
    messages: Optional[List[dict]] = None
    tools: Optional[List[dict]] = None
    chat_template_kwargs: Dict[str, Any] = field(default_factory=dict)
    prompt: Any = None  # text completions: str or token ids
    logprobs: bool = False
    top_logprobs: int = 0


def parse_request(body: Any, kind: str, state: "ServerState") -> GenRequest:
    """Validate a decoded JSON body into a :class:`GenRequest`; raises :class:`ApiError`."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    d = state.defaults
    model = _field(body, "model", state.model_id)
    if not isinstance(model, str):
        raise ApiError(400, f"'model' must be a string, got {_short(model)}", "model")
    if model not in state.model_aliases:
        raise ApiError(404, f"the model {_short(model)} does not exist; this server serves '{state.model_id}'",
                       "model", "model_not_found")
    n = _int(body, "n", 1)
    if n != 1:
        raise ApiError(400, "only n=1 is supported", "n")
    if kind == "chat":
        want_logprobs = _bool(body, "logprobs", False)
        top_logprobs = _int(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
        if top_logprobs and not want_logprobs:
            raise ApiError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs")
    else:  # the legacy API: logprobs is the number of alternatives (0: the sampled token's only)
        top_logprobs = _int(body, "logprobs", None, 0, MAX_TOP_LOGPROBS)
        want_logprobs = top_logprobs is not None
        top_logprobs = top_logprobs or 0
        if _field(body, "echo", False) is not False:
            raise ApiError(400, "'echo' is not supported", "echo")
        if _field(body, "suffix", None) is not None:
            raise ApiError(400, "'suffix' is not supported", "suffix")
        if _int(body, "best_of", 1) != 1:
            raise ApiError(400, "only best_of=1 is supported", "best_of")
    rf = _field(body, "response_format", None)
    if rf is not None and not (isinstance(rf, dict) and rf.get("type") == "text"):
        raise ApiError(400, "only response_format {'type': 'text'} is supported", "response_format")
    stream = _bool(body, "stream", False)
    options = _field(body, "stream_options", None)
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", "stream_options")
    include_usage = _bool(options or {}, "include_usage", False)

    max_tokens = _int(body, "max_completion_tokens", None, 1)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", None, 1)
    explicit = max_tokens is not None
    if not explicit:
        max_tokens = d["max_tokens"]
    if explicit and state.context_length is not None and max_tokens > state.context_length:
        raise ApiError(400, f"'max_tokens' ({max_tokens}) exceeds the context length ({state.context_length})",
                       "max_tokens", "context_length_exceeded")
    top_k = _int(body, "top_k", d["top_k"], 0)
    if top_k >= state.vocab_size:
        top_k = 0  # keeps every token: the same distribution, and within mlx's argpartition range
    seed = _int(body, "seed", None, -(1 << 63), (1 << 64) - 1)

    strategy = _field(body, "draft_strategy", state.strategy)
    if not isinstance(strategy, str):
        raise ApiError(400, "'draft_strategy' must be a string", "draft_strategy")
    if strategy == "auto":
        strategy = state.strategy
    if strategy not in state.allowed_strategies:
        raise ApiError(
            400, f"draft_strategy {_short(strategy)} is not available on this server; loaded: "
            f"{', '.join(sorted(state.allowed_strategies))}", "draft_strategy")
    acceptor = _field(body, "acceptor", d["acceptor"])
    if not isinstance(acceptor, str) or acceptor not in state.acceptors:
        raise ApiError(400, f"acceptor {_short(acceptor)} is not installed; installed: "
                       f"{', '.join(sorted(state.acceptors))}", "acceptor")

    req = GenRequest(
        kind=kind,
        model=state.model_id,  # the served id, whichever alias the client used
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        max_tokens_explicit=explicit,
        temperature=_temperature(body, d["temperature"]),
        top_p=_float(body, "top_p", d["top_p"], 0.0, 1.0),
        top_k=top_k,
        min_p=_float(body, "min_p", d["min_p"], 0.0, 1.0),
        repetition_penalty=_float(body, "repetition_penalty", None, 0.0, 1e6),
        repetition_context_size=_int(body, "repetition_context_size", 20, 0, MAX_CONTEXT_SIZE),
        presence_penalty=_float(body, "presence_penalty", None, -100.0, 100.0),
        presence_context_size=_int(body, "presence_context_size", 20, 0, MAX_CONTEXT_SIZE),
        frequency_penalty=_float(body, "frequency_penalty", None, -100.0, 100.0),
        frequency_context_size=_int(body, "frequency_context_size", 20, 0, MAX_CONTEXT_SIZE),
        logit_bias=_logit_bias(body, state.vocab_size),
        stop=_stop(body),
        seed=seed,
        draft_strategy=strategy,
        acceptor=acceptor,
        num_draft_tokens=_draft_tokens(body, d["num_draft_tokens"], state.max_draft_tokens),
        block_size=_int(body, "block_size", d["block_size"], 2, 1024),
    )
    req.logprobs, req.top_logprobs = want_logprobs, top_logprobs
    if kind == "chat":
        req.messages = _messages(body)
        tools = _field(body, "tools", None)
        if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
            raise ApiError(400, "'tools' must be a list of objects", "tools")
        req.tools = _json_value(tools, "tools") or None
        kwargs = _field(body, "chat_template_kwargs", {})
        if not isinstance(kwargs, dict):
            raise ApiError(400, "'chat_template_kwargs' must be an object", "chat_template_kwargs")
        bad = sorted(set(kwargs) & RESERVED_TEMPLATE_KWARGS)
        if bad:
            raise ApiError(400, f"'chat_template_kwargs' may not set {', '.join(bad)}", "chat_template_kwargs")
        req.chat_template_kwargs = _json_value(kwargs, "chat_template_kwargs")
    else:
        req.prompt = _prompt(body, state.vocab_size)
    floor = prompt_size_floor(req, state)
    if floor > state.max_prompt_tokens:
        raise ApiError(400, f"the prompt has at least {floor} tokens; this server accepts at most "
                       f"{state.max_prompt_tokens}", "messages" if kind == "chat" else "prompt",
                       "context_length_exceeded")
    return req


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


class StopMatcher:
    """Cuts generated text at the first stop sequence; holds back a tail that may start one."""

    def __init__(self, stops: List[str]):
        self.stops = stops
        self.held = ""

    def feed(self, text: str) -> Tuple[str, bool]:
        """``(text safe to emit, stopped)``."""
        buf = self.held + text
        if not self.stops:
            return buf, False
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            return buf[: min(hits)], True
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:k]):
                    keep = k
                    break
        self.held = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


class ToolCallSplitter:
    """Splits generated text into content and tool calls delimited by the tokenizer's markers
    (mlx-lm's ``tool_call_start`` / ``tool_call_end``); holds back a tail that may start a marker.
    ``parse(text) -> dict | list`` is the tokenizer's ``tool_parser`` bound to the request's tools."""

    def __init__(self, start: str, end: str, parse):
        self.start, self.end, self.parse = start, end, parse
        self.buf, self.inside, self.calls = "", False, 0

    def feed(self, text: str) -> Tuple[str, List[dict]]:
        """``(content safe to emit, completed tool calls in OpenAI form)``."""
        self.buf += text
        content, calls = [], []
        while True:
            if self.inside:
                i = self.buf.find(self.end)
                if i < 0:
                    break
                calls.extend(self._parsed(self.buf[:i], content))
                self.buf, self.inside = self.buf[i + len(self.end):], False
            else:
                i = self.buf.find(self.start)
                if i < 0:
                    keep = next((k for k in range(min(len(self.start) - 1, len(self.buf)), 0, -1)
                                 if self.buf.endswith(self.start[:k])), 0)
                    content.append(self.buf[: len(self.buf) - keep])
                    self.buf = self.buf[len(self.buf) - keep:]
                    break
                content.append(self.buf[:i])
                self.buf, self.inside = self.buf[i + len(self.start):], True
        return "".join(content), calls

    def flush(self) -> Tuple[str, List[dict]]:
        """At the end: an unterminated call is parsed if it can be (as mlx-lm does), else it is text."""
        rest, self.buf = self.buf, ""
        if not self.inside:
            return rest, []
        self.inside = False
        content: List[str] = []
        calls = self._parsed(rest, content) if rest.strip() else []
        return "".join(content), calls

    def _parsed(self, text: str, content: List[str]) -> List[dict]:
        try:
            parsed = self.parse(text)
        except Exception as e:  # the model wrote something its parser rejects: keep it as text
            log.info("unparsable tool call (%s): kept as content", type(e).__name__)
            content.append(self.start + text + self.end)
            return []
        out = []
        for call in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                content.append(self.start + text + self.end)
                return []
            args = call.get("arguments", {})
            out.append({"index": self.calls, "id": str(call.get("id") or "call_" + uuid.uuid4().hex[:24]),
                        "type": "function",
                        "function": {"name": call["name"],
                                     "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)}})
            self.calls += 1
        return out


class Worker(threading.Thread):
    """Loads the model and serves jobs one at a time from a bounded queue."""

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
        self.busy = False
        self.group = None  # under mlx.launch: the process group (:mod:`.dist_server`)
        self.fatal: Optional[str] = None

    # -- startup

    def run(self) -> None:
        try:
            self._load()
        except BaseException as e:  # reported by main(), which exits
            self.load_error = e
        self.ready.set()
        if self.group is not None and self.load_error is None:  # -- under mlx.launch (dist_server) --
            from .dist_server import run_worker

            run_worker(self, self.group, GenRequest, lambda m: ApiError(503, m, type="server_error"))
            self.stopping.set()  # -- end mlx.launch --
        while self.load_error is None and not self.stopping.is_set():
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            self.busy = True
            try:
                self._serve(job)
            finally:
                self.busy = False
        self.stopped.set()
        # Park instead of returning: with mlx 0.32 (cpu), a thread that used MLX and ends before the
        # interpreter exits makes the process abort at exit about half the time ("terminate called
        # without an active exception"). This thread is a daemon, so parking costs nothing.
        threading.Event().wait()

    def _load(self) -> None:
        import mlx.core as mx
        from mlx_lm import load

        from .loading import check_draft, load_draft
        from .options import strategy_options
        from .plugins import registry

        a = self.args
        tokenizer_config = {"trust_remote_code": a.trust_remote_code}
        if a.chat_template:
            tokenizer_config["chat_template"] = a.chat_template
        from .distributed import active_group

        self.group = active_group()  # -- under mlx.launch: every rank its shard (dist_server) --
        if self.group is not None:
            from .dist_server import load as sharded_load

            model, tokenizer = sharded_load(a, self.group, tokenizer_config)
        else:  # -- end mlx.launch --
            model, tokenizer = load(a.model, adapter_path=a.adapter_path, tokenizer_config=tokenizer_config)
        if a.use_default_chat_template and tokenizer.chat_template is None:
            tokenizer.chat_template = tokenizer.default_chat_template
        choice = load_draft(check_draft(a.draft_model, a.draft_strategy), model, a.draft_strategy, a.trust_remote_code,
                           a.model)
        draft, strategy, why = choice.draft, choice.strategy or "none", choice.reason
        a.draft_model, self.strategy_options = choice.path, strategy_options(choice.strategy, a.strategy_options)
        log.info("strategy: %s (%s)", strategy, why)
        from .prefix_cache import PrefixCache
        from .target import TargetAdapter

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
        req = parse_request({"prompt": [1, 2, 3, 1, 2], "max_tokens": 2}, "text", st)
        for _ in self._generate(req, [1, 2, 3, 1, 2], lambda: False):
            pass
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
        import mlx.core as mx

        if job.cancelled.is_set():
            self.counters["cancelled"] += 1
            return
        emitted, outcome = False, "served"
        try:
            for event in self._generate(job.req, job.prompt, job.cancelled.is_set):
                emitted = emitted or event[0] == "delta"
                if event[0] == "done" and event[1] == "cancelled":
                    outcome = "cancelled"
                job.post(event)
            self.counters[outcome] += 1
        except ApiError as e:
            self.counters["failed"] += 1
            job.post(("error", e))
        except ValueError as e:  # raised by prepare(): a strategy/acceptor/sampler combination
            self.counters["failed"] += 1
            status = 500 if emitted else 400
            log.log(logging.ERROR if emitted else logging.INFO, "request failed: %s", e)
            job.post(("error", ApiError(status, str(e))))
        except Exception:  # never kill the worker; the traceback stays in the log
            self.counters["failed"] += 1
            log.exception("generation failed")
            job.post(("error", ApiError(500, "generation failed (see the server log)")))
        finally:
            self.memory = {
                "mlx_active_memory": int(mx.get_active_memory()),
                "mlx_cache_memory": int(mx.get_cache_memory()),
                "mlx_peak_memory": int(mx.get_peak_memory()),
            }

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
                from mlx_lm.server import convert_chat

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
        import mlx.core as mx

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

    def _cache_key(self, req: GenRequest) -> Optional[tuple]:
        """What the cached state depends on (``None``: this request does not use the prefix cache).
        Plain decoding hands mlx-lm only the uncached tokens, so its history-reading penalties
        would see a shorter history: such requests skip the cache."""
        if self.prefix_cache.max_entries < 1:
            return None
        if req.draft_strategy == "none":
            if any(v is not None for v in (req.repetition_penalty, req.presence_penalty, req.frequency_penalty)):
                return None
            return ("none",)
        return (req.draft_strategy, req.num_draft_tokens, req.block_size)

    def _generate(self, req: GenRequest, prompt: List[int], cancelled):
        """Yield ``("delta", text, logprob entries, tool calls)`` events, then ``("done", finish_reason,
        usage, speculative)``."""
        import mlx.core as mx
        from mlx_lm.sample_utils import make_logits_processors

        from mlx_lm.models.cache import make_prompt_cache

        from .generate import AUTO_MAX_DRAFT_TOKENS, prepare, resolve_acceptor, stream_generate
        from .prefix_cache import CachedContext
        from .sampling import Sampling, make_sampler
        from .stats import SpecStats

        st = self.state
        if req.seed is not None:
            mx.random.seed(req.seed % (1 << 64))
        sampler = make_sampler(req.temperature, req.top_p, req.min_p, 1, req.top_k)
        processors = make_logits_processors(
            req.logit_bias,
            req.repetition_penalty,
            req.repetition_context_size,
            req.presence_penalty,
            req.presence_context_size,
            req.frequency_penalty,
            req.frequency_context_size,
        )
        stats = SpecStats()
        kwargs = dict(max_tokens=req.max_tokens, sampler=sampler, logits_processors=processors,
                      prefill_step_size=st.prefill_step_size)
        key = self._cache_key(req)
        if req.draft_strategy != "none":  # an acceptor/sampler mismatch is a 400 before any cache entry is taken
            resolve_acceptor(req.acceptor, Sampling.create(sampler, processors))
        ctx = self.prefix_cache.take(key, prompt) if key is not None else None
        reused = ctx.reused if ctx is not None else 0
        if req.draft_strategy == "none":
            cache = ctx.cache if ctx is not None else make_prompt_cache(self.model)
            proposer, fed = None, prompt[reused:]  # mlx-lm's generate continues the cache it is given
            kwargs.update(draft_strategy="none", prompt_cache=cache)
            stats.strategy, stats.acceptor = "none", "none"
        else:
            strategy = st.registry.strategy(req.draft_strategy)
            draft = self.draft if strategy.needs_draft else None
            options = dict(draft_strategy=req.draft_strategy, block_size=req.block_size,
                           strategy_options=self.strategy_options)
            k = AUTO_MAX_DRAFT_TOKENS if req.num_draft_tokens == "auto" else req.num_draft_tokens
            if ctx is None:  # a fresh proposer, kept for the prefix cache after this generation
                cache = self.target.make_cache()
                proposer = prepare(self.model, draft, acceptor=req.acceptor, sampler=sampler,
                                   logits_processors=processors, num_draft_tokens=k,
                                   prefill_step_size=st.prefill_step_size, target=self.target, **options)[1]
            else:
                cache, proposer = ctx.cache, ctx.proposer
            fed = prompt
            kwargs.update(draft_model=draft, acceptor=req.acceptor, num_draft_tokens=req.num_draft_tokens,
                          stats=stats, target=self.target, proposer=proposer, prompt_cache=cache,
                          cached_tokens=reused, **options)
        matcher = StopMatcher(req.stop)
        tok = self.tokenizer
        splitter = None
        if req.tools and getattr(tok, "has_tool_calling", False) and tok.tool_parser is not None:
            splitter = ToolCallSplitter(tok.tool_call_start, tok.tool_call_end,
                                        lambda text, tools=req.tools: tok.tool_parser(text, tools))
        made_calls = False
        finish, last = None, None
        generated: List[int] = []
        entries: List[dict] = []  # logprob entries of tokens not yet attached to a delta
        responses = stream_generate(self.model, self.tokenizer, mx.array(fed, dtype=mx.uint32), **kwargs)
        try:
            for last in responses:
                generated.append(int(last.token))
                eos = last.finish_reason == "stop"  # the model's end-of-sequence token: no text, no entry
                if req.logprobs and not eos:
                    entries.append(self._logprob_entry(int(last.token), last.logprobs, req.top_logprobs))
                segment = last.text
                if last.finish_reason is not None:
                    # The detokenizer holds back text ending in an incomplete UTF-8 sequence and
                    # flushes it as one U+FFFD at the end: a reply cut mid-character drops it.
                    segment = segment[:-1] if segment.endswith("\ufffd") else segment
                calls: List[dict] = []
                if splitter is not None:
                    segment, calls = splitter.feed(segment)
                    if last.finish_reason is not None:
                        tail, more = splitter.flush()
                        segment, calls = segment + tail, calls + more
                    made_calls = made_calls or bool(calls)
                text, stopped = matcher.feed(segment)
                if text or calls:
                    yield ("delta", text, entries, calls)
                    entries = []
                if stopped:
                    finish = "stop"
                    break
                if last.finish_reason is not None:
                    finish = last.finish_reason
                    break
                if cancelled():
                    finish = "cancelled"
                    break
        finally:
            responses.close()
        if key is not None:  # the state of every token the target has seen, for the next request
            self.prefix_cache.put(key, CachedContext(list(prompt) + generated, cache, proposer))
        rest = matcher.flush() if finish != "stop" else ""
        if rest or entries:
            yield ("delta", rest, entries, [])
        if made_calls and finish == "stop":
            finish = "tool_calls"
        completion = last.generation_tokens if last is not None else 0
        usage = {"prompt_tokens": len(prompt), "completion_tokens": completion,
                 "total_tokens": len(prompt) + completion, "prompt_tokens_details": {"cached_tokens": reused}}
        spec = stats.as_dict()
        spec["num_draft_tokens"] = req.num_draft_tokens if req.draft_strategy != "none" else 0  # null: default
        spec["tokens_per_second"] = float(getattr(last, "generation_tps", 0.0) or 0.0)
        yield ("done", finish or "length", usage, spec)


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


# Characters that only ever make whitespace: ASCII whitespace, and how byte-level BPE (GPT-2's
# byte alphabet) and SentencePiece spell spaces, newlines, tabs and carriage returns in a vocabulary.
_SPACE_CHARS = frozenset(" \t\n\r\x0b\x0c\u0120\u010a\u0109\u010d\u2581")


def max_token_chars(tokenizer) -> int:
    """The most non-space characters any one token's vocabulary string holds: a prompt with ``c``
    non-space characters has at least ``c / max_token_chars`` tokens (a vocabulary string is never
    shorter than the text it decodes to: byte-level pieces spell one character per byte)."""
    try:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    except Exception:  # an unusual tokenizer: no bound, the check after tokenizing still applies
        return 1 << 30
    best = 1
    for piece in pieces:
        if isinstance(piece, bytes):
            piece = piece.decode("utf-8", "replace")
        if isinstance(piece, str) and len(piece) > best:
            best = max(best, sum(c not in _SPACE_CHARS for c in piece))
    return best


def _nonspace(text: str) -> int:
    return len(text) - sum(text.count(c) for c in " \t\n\r")


def prompt_size_floor(req: GenRequest, state: "ServerState") -> int:
    """A cheap lower bound on the request's prompt tokens (no tokenizer): non-space characters of
    the text every chat template renders (system, user and tool turns; assistant turns may be
    trimmed of reasoning), over :attr:`ServerState.max_token_chars`, halved for normalizers that
    compose characters. Lets an over-long prompt get its 400 before it is tokenized."""
    if req.kind == "chat":
        chars = sum(_nonspace(m["content"]) for m in req.messages if m["role"] != "assistant")
    elif isinstance(req.prompt, str):
        chars = _nonspace(req.prompt)
    else:
        return len(req.prompt)
    return chars // (2 * state.max_token_chars)


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
        from .target import vocab_size_of

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
CORS_HEADERS = ("authorization", "content-type", "x-api-key", "anthropic-version", "openai-organization",
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

    def __init__(self, app, policy: HttpPolicy):
        self.app, self.policy = app, policy
        key = policy.api_key
        self.key = key.encode() if key else None

    async def _refuse(self, send, status: int, message: str, code: str, type_: str) -> None:
        body = _json_bytes(ApiError(status, message, code=code, type=type_).body())
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, headers: Dict[bytes, bytes]) -> bool:
        import hmac

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
                                          "host_not_allowed", "invalid_request_error")
        origin = headers.get(b"origin")
        if origin is not None and "*" not in p.cors_origins and origin.decode("latin-1") not in p.cors_origins:
            return await self._refuse(send, 403, "cross-origin requests are not allowed (see --cors-origin)",
                                      "origin_not_allowed", "invalid_request_error")
        preflight = scope["method"] == "OPTIONS" and b"access-control-request-method" in headers
        if self.key is not None and not preflight and scope["path"] != "/health" and not self._authorized(headers):
            return await self._refuse(send, 401, "a valid API key is required (Authorization: Bearer KEY or "
                                      "x-api-key: KEY)", "invalid_api_key", "authentication_error")
        return await self.app(scope, receive, send)


def _make_app(worker: Worker, policy: HttpPolicy, tokenize_pool=None):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import Route

    state = worker.state
    max_body_bytes = policy.max_body_bytes
    if tokenize_pool is None:
        from concurrent.futures import ThreadPoolExecutor

        tokenize_pool = ThreadPoolExecutor(1, thread_name_prefix="mlx-specdec-tokenize")

    def error_response(e: ApiError) -> Response:
        return Response(_json_bytes(e.body()), status_code=e.status, media_type="application/json")

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
            self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                                (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
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
                        _, finish, usage, spec = event
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
            _, finish, usage, spec = event
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
                                       else None))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(ApiError(500, f"internal error: {type(exc).__name__}"))

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", text_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]
    middleware = [Middleware(Guard, policy=policy)]
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
    from uvicorn.protocols.http.h11_impl import H11Protocol

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
    from .options import add_speculative_args, draft_tokens_type

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
    from .dist_server import add_arguments

    add_arguments(p)  # --pipeline, --distributed-timeout (mlx.launch)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    import uvicorn

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(message)s")
    if isinstance(args.num_draft_tokens, int) and args.num_draft_tokens < 1:
        print("[mlx-specdec] error: --num-draft-tokens must be >= 1", file=sys.stderr)
        return 2
    if args.host not in LOOPBACK_HOSTS and not (args.api_key or os.environ.get("MLX_SPECDEC_API_KEY")):
        log.warning("binding %s without --api-key: anyone who can reach it can use it", args.host)
    if "*" in args.cors_origins:
        log.warning("--cors-origin '*': every web page you open can use this server")

    # Import MLX-side modules here, in the main thread: mlx-lm creates its thread-local generation
    # stream at import, and one created on a thread that later exits aborts the interpreter at exit.
    import mlx_lm.generate  # noqa: F401

    from . import generate  # noqa: F401
    from .plugins import registry

    registry()
    worker = Worker(args)
    worker.start()
    worker.ready.wait()
    if worker.load_error is not None:
        print(f"[mlx-specdec] error: could not start: {worker.load_error}", file=sys.stderr, flush=True)
        return 2
    if worker.group is not None and worker.group.rank() > 0:  # -- mlx.launch: a follower serves no HTTP --
        from .dist_server import follower_main

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
        import signal  # (uvicorn re-raises the signal it caught; the default handler would skip the stop)

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
