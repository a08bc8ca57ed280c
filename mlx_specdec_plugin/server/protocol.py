"""The OpenAI-compatible protocol, in pure Python (it runs on the event loop and touches no MLX):
request validation into a :class:`GenRequest` (every bad field is an :class:`ApiError`, a 4xx),
stop sequences held back across token boundaries (:class:`StopMatcher`) and tool calls split out
of the streamed text (:class:`ToolCallSplitter`)."""

from __future__ import annotations

import json
import logging
import math
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


def parse_request(body: Any, kind: str, state: Any) -> GenRequest:
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


# the headers of a server-sent-events reply (OpenAI and Anthropic streams alike)
SSE_HEADERS = ((b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no"))


class StopMatcher:
    """Cuts generated text at the first stop sequence; holds back a tail that may start one."""

    def __init__(self, stops: List[str]):
        self.stops = stops
        self.held = ""
        self.matched: Optional[str] = None  # the stop sequence that cut the text

    def feed(self, text: str) -> Tuple[str, bool]:
        """``(text safe to emit, stopped)``."""
        buf = self.held + text
        if not self.stops:
            return buf, False
        hits = [(i, s) for i, s in ((buf.find(s), s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            cut, self.matched = min(hits, key=lambda h: h[0])
            return buf[:cut], True
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


def prompt_size_floor(req: GenRequest, state: Any) -> int:
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
