"""The Anthropic Messages API of ``mlx-specdec server``: ``POST /v1/messages`` (streaming or not) and
``POST /v1/messages/count_tokens``, so Claude-Code-style clients and the official ``anthropic``
client can use the server.

This module only translates; the server does the work. :func:`translate` turns a Messages body into
the OpenAI chat body the server already validates and renders (system blocks -> a system turn,
``tool_use`` blocks -> an assistant turn's ``tool_calls``, ``tool_result`` blocks -> ``tool`` turns,
Anthropic tool schemas -> the chat template's ``tools``). :class:`MessageBuilder` turns the
generation's events (text and tool calls, parsed by the same tool parser as the OpenAI path) into a
``message`` object or Anthropic's stream events. :func:`routes` binds both to the server's request
pipeline, given as a :class:`Backend`. Errors have Anthropic's shape
(``{"type": "error", "error": {"type", "message"}}``).

Nothing here imports the server module (the server imports this one) or MLX.

Supported: text blocks, ``tool_use`` / ``tool_result`` blocks, custom tools, ``tool_choice`` ``auto``
and ``none``, ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``stop_sequences``, ``stream``,
``metadata``, ``cache_control`` and ``output_config.effort`` (ignored), ``thinking`` (accepted and
ignored: no thinking blocks are produced; thinking blocks sent back in history are dropped), and
the server's own fields (``draft_strategy``, ``num_draft_tokens``, ``acceptor``, ``block_size``,
``seed``, ``min_p``, ``chat_template_kwargs``, penalties).
Refused with a 400: images and documents, server tools (web search, code execution, ...),
``tool_choice`` ``any`` / ``tool`` (forcing a call needs constrained decoding), structured outputs
(``output_config.format``), and a final assistant message (prefill).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .protocol import SSE_HEADERS

PREFIX = "/v1/messages"
MAX_STOP_SEQUENCES = 16  # the OpenAI path's limits (server.py), checked here to name stop_sequences
MAX_STOP_LENGTH = 1000
# The server's own request fields, passed through unchanged (the OpenAI path validates them).
EXTENSIONS = ("draft_strategy", "num_draft_tokens", "acceptor", "block_size", "seed", "min_p",
              "chat_template_kwargs", "repetition_penalty", "repetition_context_size", "presence_penalty",
              "presence_context_size", "frequency_penalty", "frequency_context_size")
# Anthropic's error type for each HTTP status (https://docs.anthropic.com/en/api/errors).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               503: "overloaded_error", 529: "overloaded_error"}
STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}  # else end_turn or stop_sequence
# Where translate() leaves max_tokens: a ceiling (clients send large ones, as the field is required),
# lowered to the context the prompt leaves; not the OpenAI path's max_tokens, which must fit.
CEILING = "_anthropic_max_tokens"


class RequestError(Exception):
    """A bad Messages request: HTTP ``status`` and a message naming the offending field."""

    def __init__(self, status: int, message: str, param: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def owns(path: str) -> bool:
    """Whether a request path is this API's (its errors take Anthropic's shape)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def error_body(status: int, message: str) -> dict:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "invalid_request_error"
                                                                 if status < 500 else "api_error"),
                                       "message": message}}


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _bad(message: str, param: Optional[str] = None) -> RequestError:
    return RequestError(400, message, param)


# --------------------------------------------------------------------------------------------
# request translation: Anthropic Messages -> the server's OpenAI chat body


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"'{where}' must be a string, got {_short(value)}", where.split(".")[0].split("[")[0])
    return value


def _blocks(content: Any, where: str) -> List[dict]:
    """A content field as a list of block objects (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad(f"'{where}' must be a string or a list of content blocks, got {_short(content)}",
                   where.split("[")[0].split(".")[0])
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _bad(f"'{where}[{j}]' must be a content block object with a 'type'", where.split("[")[0])
    return content


def _unsupported(kind: str, where: str) -> RequestError:
    param = where.split("[")[0]
    if kind in ("image", "document", "search_result"):
        return _bad(f"'{where}': {kind} blocks are not supported by this text server", param)
    return _bad(f"'{where}': content block type {_short(kind)} is not supported here", param)


def _text(content: Any, where: str, sep: str = "") -> str:
    """Text-only content (a system prompt, a tool result): the text blocks' texts, joined by ``sep``."""
    if content is None:
        return ""
    parts = []
    for j, block in enumerate(_blocks(content, where)):
        if block["type"] != "text":
            raise _unsupported(block["type"], f"{where}[{j}]")
        parts.append(_string(block.get("text"), f"{where}[{j}].text"))
    return sep.join(parts)


def _system(body: dict) -> Optional[str]:
    """The system prompt; several blocks (Claude Code sends a few, with cache_control) are lines."""
    system = body.get("system")
    return None if system is None else _text(system, "system", "\n")


def _turns(messages: Any) -> List[dict]:
    """Anthropic messages -> OpenAI chat messages, in order."""
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list", "messages")
    out: List[dict] = []
    names: Dict[str, str] = {}  # tool_use id -> tool name, for the tool turns that answer them
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}] must be an object", "messages")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise _bad(f"messages[{i}].role must be 'user' or 'assistant'; got {_short(role)}", "messages")
        where = f"messages[{i}].content"
        if "content" not in m:
            raise _bad(f"'{where}' is required", "messages")
        blocks = _blocks(m["content"], where)
        if role == "assistant":
            texts, calls = [], []
            for j, b in enumerate(blocks):
                kind = b["type"]
                if kind == "text":
                    texts.append(_string(b.get("text"), f"{where}[{j}].text"))
                elif kind == "tool_use":
                    call_id = _string(b.get("id"), f"{where}[{j}].id")
                    name = _string(b.get("name"), f"{where}[{j}].name")
                    args = b.get("input", {})
                    if not isinstance(args, dict):
                        raise _bad(f"'{where}[{j}].input' must be an object", "messages")
                    names[call_id] = name
                    calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": args}})
                elif kind in ("thinking", "redacted_thinking"):
                    continue  # a previous turn's reasoning: chat templates drop it too
                else:
                    raise _unsupported(kind, f"{where}[{j}]")
            turn = {"role": "assistant", "content": "".join(texts)}
            if calls:
                turn["tool_calls"] = calls
            out.append(turn)
            continue
        pending: List[str] = []

        def flush():
            if pending:
                out.append({"role": "user", "content": "".join(pending)})
                pending.clear()

        for j, b in enumerate(blocks):
            kind = b["type"]
            if kind == "text":
                pending.append(_string(b.get("text"), f"{where}[{j}].text"))
            elif kind == "tool_result":
                flush()
                call_id = _string(b.get("tool_use_id"), f"{where}[{j}].tool_use_id")
                result = _text(b.get("content"), f"{where}[{j}].content")
                is_error = b.get("is_error", False)
                if not isinstance(is_error, bool) and is_error is not None:
                    raise _bad(f"'{where}[{j}].is_error' must be a boolean", "messages")
                turn = {"role": "tool", "tool_call_id": call_id,
                        "content": ("Error: " + result) if is_error else result}
                if call_id in names:
                    turn["name"] = names[call_id]
                out.append(turn)
            else:
                raise _unsupported(kind, f"{where}[{j}]")
        flush()
        if not blocks:
            out.append({"role": "user", "content": ""})
    if messages[-1].get("role") == "assistant":
        raise _bad("a final assistant message (prefill) is not supported: end with a user message", "messages")
    return out


def _tools(body: dict) -> Optional[List[dict]]:
    """Anthropic tool definitions -> the chat template's (OpenAI) ``tools``; ``None``: no tools."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "none", "any", "tool"):
            raise _bad("'tool_choice' must be an object with type 'auto', 'none', 'any' or 'tool'", "tool_choice")
        if choice["type"] in ("any", "tool"):
            raise _bad(f"tool_choice {choice['type']!r} is not supported (it needs constrained decoding); "
                       "use 'auto'", "tool_choice")
        parallel = choice.get("disable_parallel_tool_use")
        if parallel is not None and not isinstance(parallel, bool):
            raise _bad("'tool_choice.disable_parallel_tool_use' must be a boolean", "tool_choice")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise _bad("'tools' must be a list of tool definitions", "tools")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict):
            raise _bad(f"tools[{i}] must be an object", "tools")
        if t.get("type") not in (None, "custom"):
            raise _bad(f"tools[{i}]: server tools ({_short(t.get('type'))}) are not supported; only custom "
                       "tools with a name and an input_schema", "tools")
        name = t.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"tools[{i}].name must be a non-empty string", "tools")
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            raise _bad(f"tools[{i}].input_schema must be a JSON schema object", "tools")
        description = t.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(f"tools[{i}].description must be a string", "tools")
        fn = {"name": name, **({"description": description} if description else {}), "parameters": schema}
        out.append({"type": "function", "function": fn})  # OpenAI's key order: templates render it as given
    if choice is not None and choice["type"] == "none":
        return None
    return out or None


def _stop_sequences(body: dict) -> List[str]:
    stops = body.get("stop_sequences")
    if stops is None:
        return []
    if not isinstance(stops, list) or len(stops) > MAX_STOP_SEQUENCES or not all(
            isinstance(s, str) and 0 < len(s) <= MAX_STOP_LENGTH for s in stops):
        raise _bad(f"'stop_sequences' must be a list of at most {MAX_STOP_SEQUENCES} non-empty strings of at most "
                   f"{MAX_STOP_LENGTH} characters", "stop_sequences")
    return stops


def translate(body: Any, counting: bool = False) -> dict:
    """A Messages request body -> the OpenAI chat body the server validates (raises
    :class:`RequestError`), and ``max_tokens`` under :data:`CEILING`. ``counting``: a
    ``count_tokens`` body (no ``max_tokens``)."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    out: Dict[str, Any] = {}
    if body.get("model") is not None:
        out["model"] = body["model"]
    if not counting:
        ceiling = body.get("max_tokens")
        if ceiling is None:
            raise _bad("'max_tokens' is required", "max_tokens")
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling < 1:
            raise _bad(f"'max_tokens' must be an integer >= 1, got {_short(ceiling)}", "max_tokens")
        out[CEILING] = ceiling
        for name in ("temperature", "top_p", "top_k", "stream"):
            if body.get(name) is not None:
                out[name] = body[name]
        out["stop"] = _stop_sequences(body)
    for name in ("metadata", "thinking", "output_config"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise _bad(f"'{name}' must be an object", name)
    if (body.get("output_config") or {}).get("format") is not None or body.get("output_format") is not None:
        raise _bad("structured outputs (output_config.format) are not supported", "output_config")
    turns = _turns(body.get("messages"))
    system = _system(body)
    out["messages"] = ([{"role": "system", "content": system}] if system is not None else []) + turns
    tools = _tools(body)
    if tools:
        out["tools"] = tools
    for name in EXTENSIONS:
        if name in body:
            out[name] = body[name]
    return out


# --------------------------------------------------------------------------------------------
# responses


def _tool_input(arguments: Any) -> dict:
    """A parsed call's arguments (a JSON string) as ``tool_use.input``, which must be an object."""
    try:
        value = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        value = arguments
    return value if isinstance(value, dict) else {"arguments": value}


def stop_reason(finish: str, stop_sequence: Optional[str], context_full: bool = False) -> str:
    """``context_full``: the reply was cut where the context ends, below the client's max_tokens."""
    if finish == "length" and context_full:
        return "model_context_window_exceeded"
    if finish in STOP_REASONS:
        return STOP_REASONS[finish]
    return "stop_sequence" if stop_sequence is not None else "end_turn"


def usage_of(usage: dict) -> dict:
    """The server's OpenAI usage -> Anthropic's: ``input_tokens`` counts the prompt tokens not read
    from the prefix cache, ``cache_read_input_tokens`` those that were (their sum is the prompt)."""
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {"input_tokens": usage["prompt_tokens"] - cached, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached, "output_tokens": usage["completion_tokens"]}


Event = Tuple[str, dict]  # (SSE event name, data)


class MessageBuilder:
    """One reply: content blocks built from the generation's deltas (text, then any tool calls the
    parser completed in that delta), as stream events and as the final ``message`` object."""

    def __init__(self, model: str, input_tokens: int):
        self.id = "msg_" + uuid.uuid4().hex
        self.model, self.input_tokens = model, input_tokens
        self.blocks: List[dict] = []
        self.text_open = False  # whether the last block is a text block still receiving deltas

    def start(self) -> List[Event]:
        message = {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": self.input_tokens, "output_tokens": 0}}
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _close_text(self) -> List[Event]:
        if not self.text_open:
            return []
        self.text_open = False
        return [("content_block_stop", {"type": "content_block_stop", "index": len(self.blocks) - 1})]

    def delta(self, text: str, calls: List[dict]) -> List[Event]:
        events: List[Event] = []
        if text:
            if not self.text_open:
                self.blocks.append({"type": "text", "text": ""})
                self.text_open = True
                events.append(("content_block_start", {"type": "content_block_start", "index": len(self.blocks) - 1,
                                                       "content_block": {"type": "text", "text": ""}}))
            self.blocks[-1]["text"] += text
            events.append(("content_block_delta", {"type": "content_block_delta", "index": len(self.blocks) - 1,
                                                   "delta": {"type": "text_delta", "text": text}}))
        for call in calls:
            events += self._close_text()
            fn = call["function"]
            block = {"type": "tool_use", "id": call["id"], "name": fn["name"], "input": _tool_input(fn["arguments"])}
            self.blocks.append(block)
            i = len(self.blocks) - 1
            events += [
                ("content_block_start", {"type": "content_block_start", "index": i,
                                         "content_block": {**block, "input": {}}}),
                ("content_block_delta", {"type": "content_block_delta", "index": i,
                                         "delta": {"type": "input_json_delta",
                                                   "partial_json": json.dumps(block["input"], ensure_ascii=False)}}),
                ("content_block_stop", {"type": "content_block_stop", "index": i}),
            ]
        return events

    def finish(self, finish: str, usage: dict, stop_sequence: Optional[str], context_full: bool = False) -> List[Event]:
        reason = stop_reason(finish, stop_sequence, context_full)
        self.reason, self.stop_sequence = reason, stop_sequence if reason == "stop_sequence" else None
        self.usage = usage_of(usage)
        return self._close_text() + [
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": reason, "stop_sequence": self.stop_sequence},
                               "usage": self.usage}),
            ("message_stop", {"type": "message_stop"}),
        ]

    def message(self, speculative: Optional[dict] = None) -> dict:
        out = {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": self.blocks,
               "stop_reason": self.reason, "stop_sequence": self.stop_sequence, "usage": self.usage}
        if speculative is not None:
            out["speculative"] = speculative
        return out


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: ".encode() + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


# --------------------------------------------------------------------------------------------
# routes


@dataclass
class Backend:
    """What the routes need from the server. ``parse(openai_body) -> request`` validates (raises
    ``api_error``); ``tokenize(request) -> ids`` and ``start(http_request, request, prompt) -> job``
    are coroutines; a job has ``events`` (an asyncio queue of the server's generation events:
    ``("delta", text, logprobs, tool_calls)``, ``("done", finish, usage, speculative[, stop])``,
    ``("error", api_error)``, ``("disconnected",)``) and ``close()``."""

    read_json: Callable
    parse: Callable
    tokenize: Callable
    start: Callable
    api_error: type


def routes(backend: Backend) -> list:
    from starlette.requests import ClientDisconnect
    from starlette.responses import Response
    from starlette.routing import Route

    errors = (RequestError, backend.api_error)

    def error_response(e) -> Response:
        status = e.status if e.status < 500 or e.status in (503, 529) else 500
        return Response(json.dumps(error_body(status, e.message)).encode(), status_code=status,
                        media_type="application/json")

    def json_response(obj: dict) -> Response:
        return Response(json.dumps(obj, separators=(",", ":")).encode(), media_type="application/json")

    async def prepare(request, counting: bool):
        body = translate(await backend.read_json(request), counting)
        ceiling = body.pop(CEILING, 1)
        req = backend.parse(body)
        req.max_tokens, req.max_tokens_explicit = ceiling, False  # tokenize() lowers it to the context left
        prompt = await backend.tokenize(req)
        return req, prompt, req.max_tokens < ceiling

    class Stream(Response):
        """Anthropic's event stream of one job; whatever ends it (done, error, disconnect) closes the job."""

        def __init__(self, job, first: tuple, builder: MessageBuilder, context_full: bool):
            self.status_code, self.background = 200, None
            self.raw_headers = list(SSE_HEADERS)
            self.job, self.first, self.builder, self.context_full = job, first, builder, context_full

        async def __call__(self, scope, receive, send) -> None:
            b = self.builder
            try:
                await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

                async def emit(events: List[Event]):
                    data = b"".join(sse(name, payload) for name, payload in events)
                    if data:
                        await send({"type": "http.response.body", "body": data, "more_body": True})

                await emit(b.start())
                event = self.first
                while True:
                    if event[0] == "delta":
                        await emit(b.delta(event[1], event[3]))
                    elif event[0] == "done":
                        if event[1] != "cancelled":
                            await emit(b.finish(event[1], event[2], event[4] if len(event) > 4 else None,
                                                self.context_full))
                        break
                    elif event[0] == "error":
                        await emit([("error", error_body(500 if event[1].status >= 500 else event[1].status,
                                                         event[1].message))])
                        break
                    else:  # disconnected
                        return
                    event = await self.job.events.get()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the client went away while we were writing
                pass
            finally:
                self.job.close()

    async def messages(request) -> Response:
        try:
            req, prompt, context_full = await prepare(request, counting=False)
            job = await backend.start(request, req, prompt)
        except errors as e:
            return error_response(e)
        except ClientDisconnect:
            return Response(status_code=499)
        handed_over = False
        try:
            first = await job.events.get()
            if first[0] == "error":
                return error_response(first[1])
            if first[0] == "disconnected":
                return Response(status_code=499)
            builder = MessageBuilder(req.model, len(prompt))
            if req.stream:
                handed_over = True
                return Stream(job, first, builder, context_full)
            event = first
            while event[0] == "delta":
                builder.delta(event[1], event[3])
                event = await job.events.get()
            if event[0] == "error":
                return error_response(event[1])
            if event[0] == "disconnected":
                return Response(status_code=499)
            builder.finish(event[1], event[2], event[4] if len(event) > 4 else None, context_full)
            return json_response(builder.message(event[3]))
        finally:
            if not handed_over:
                job.close()

    async def count_tokens(request) -> Response:
        try:
            _, prompt, _ = await prepare(request, counting=True)
        except errors as e:
            return error_response(e)
        except ClientDisconnect:
            return Response(status_code=499)
        return json_response({"input_tokens": len(prompt)})

    return [Route(PREFIX, messages, methods=["POST"]), Route(PREFIX + "/count_tokens", count_tokens, methods=["POST"])]

