"""Spec: the Anthropic Messages API of ``mlx-specdec server`` (``/v1/messages``, streaming or not,
and ``/v1/messages/count_tokens``), driven by the official ``anthropic`` client against a real
server subprocess.

* A reply through ``/v1/messages`` is the same greedy text as through ``/v1/chat/completions`` and
  the library's own ``generate``, with a drafter speculating or without; multi-turn conversations
  (system blocks, earlier assistant turns) render through the same chat template.
* Streaming follows Anthropic's event sequence, so the client's stream helpers rebuild the message.
* ``stop_reason`` is ``end_turn``, ``max_tokens``, ``stop_sequence`` (with the sequence) or
  ``tool_use``; usage counts the prompt (cached part as ``cache_read_input_tokens``) and the reply.
* Tools: Anthropic tool schemas reach the chat template, the model's call (parsed by the same
  parser as the OpenAI path) is a ``tool_use`` block, and a ``tool_result`` continues the turn.
* Bad input gets a 4xx in Anthropic's error shape, never a 5xx (a fuzzed corpus included);
  ``x-api-key`` is the key, ``anthropic-version`` is accepted and not required.
"""

import http.client
import json
import random

import mlx_lm
import pytest

from mlx_specdec_plugin import generate
from mlx_specdec_plugin.server.anthropic import CEILING, MessageBuilder, RequestError, translate
from tools.server_load import ServerProcess
from mlx_specdec_plugin.testing.tiny import save_tiny_model
from tool_model import CALL, PIECES, save_tool_model

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

KEY = "k-anthropic"
MAX = 20
SYSTEM = [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in words."}]
ASK = [{"role": "user", "content": "the cat sat on the mat. the cat sat on the"}]
TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
# Anthropic's 4xx error types (https://docs.anthropic.com/en/api/errors)
ANTHROPIC_ERROR_TYPES = {"invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                         "request_too_large", "rate_limit_error"}
WEATHER = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("anthropic") / "tiny", "llama", seed=1, sharpness=6))


@pytest.fixture(scope="module")
def server(model_path):
    """The target drafts for itself (``draft-model``): speculation that accepts, and must be exact."""
    with ServerProcess(model_path, "--draft-model", model_path, "--num-draft-tokens", "3", "--api-key", KEY,
                       "--max-tokens", "16", "--max-body-bytes", str(1 << 16)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def reference(model_path):
    """The library's greedy text for OpenAI-style chat messages (plain decoding)."""
    model, tok = mlx_lm.load(model_path)

    def ref(messages, max_tokens=MAX):
        ids = tok.apply_chat_template(messages, add_generation_prompt=True)
        text = generate(model, tok, ids, max_tokens=max_tokens, draft_strategy="none")
        return (text[:-1] if text.endswith("\ufffd") else text), len(ids)

    return ref


def post(server, path, body, headers=None, key=KEY):
    """``(status, content type, raw body)`` of a POST (``body``: an object or raw bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    h = {"Content-Type": "application/json", **({"x-api-key": key} if key else {}), **(headers or {})}
    try:
        conn.request("POST", path, body=body if isinstance(body, bytes) else json.dumps(body).encode(), headers=h)
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type") or "", resp.read()
    finally:
        conn.close()


def anthropic_error(status, ctype, raw, expected=None):
    assert 400 <= status < 500, (status, raw[:300])
    if expected is not None:
        assert status == expected, (status, raw[:300])
    assert ctype.startswith("application/json"), ctype
    body = json.loads(raw)
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] in ANTHROPIC_ERROR_TYPES and body["error"]["message"]
    return body["error"]


# ------------------------------------------------------------------------------------------------
# the official client


def test_a_multi_turn_conversation_equals_chat_completions_and_the_library(client, server, reference):
    first = client.messages.create(model="tiny", max_tokens=MAX, system=SYSTEM, messages=ASK)
    openai_messages = [{"role": "system", "content": "You are terse.\nAnswer in words."}] + ASK
    expected, n_prompt = reference(openai_messages)
    assert first.type == "message" and first.role == "assistant" and first.model == "tiny"
    assert first.id.startswith("msg_") and [b.type for b in first.content] == ["text"]
    assert first.content[0].text == expected
    assert first.stop_reason in ("end_turn", "max_tokens") and first.stop_sequence is None
    u = first.usage
    assert u.input_tokens + u.cache_read_input_tokens == n_prompt and u.output_tokens > 0

    oai = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    r = oai.chat.completions.create(model="tiny", messages=openai_messages, max_tokens=MAX,
                                    extra_body={"draft_strategy": "none"})
    assert r.choices[0].message.content == expected and r.usage.completion_tokens == u.output_tokens

    turns = ASK + [{"role": "assistant", "content": [{"type": "text", "text": expected}]},
                   {"role": "user", "content": [{"type": "text", "text": "and then"}, {"type": "text", "text": "?"}]}]
    second = client.messages.create(model="tiny", max_tokens=MAX, system=SYSTEM, messages=turns)
    again, n2 = reference(openai_messages + [{"role": "assistant", "content": expected},
                                             {"role": "user", "content": "and then?"}])
    assert second.content[0].text == again
    assert second.usage.input_tokens + second.usage.cache_read_input_tokens == n2
    assert second.usage.cache_read_input_tokens > 0  # the first turn's prefix, from the prefix cache


def test_streaming_follows_the_event_sequence_and_rebuilds_the_same_message(client, reference):
    expected, n_prompt = reference(ASK)
    with client.messages.stream(model="tiny", max_tokens=MAX, messages=ASK) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events if e.type != "text"]  # "text": the helper's own per-delta event
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1:-2] == ["content_block_start"] + ["content_block_delta"] * (len(kinds) - 5) + ["content_block_stop"]
    assert events[0].message.usage.input_tokens == n_prompt
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == expected
    assert final.content[0].text == expected and final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0) == n_prompt


def test_speculation_gives_the_same_greedy_text_as_chat_completions(client, server, reference):
    expected, _ = reference(ASK, max_tokens=MAX)
    oai = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    plain = oai.chat.completions.create(model="tiny", messages=ASK, max_tokens=MAX,
                                        extra_body={"draft_strategy": "none"}).choices[0].message.content
    for stream in (False, True):
        if stream:
            with client.messages.stream(model="tiny", max_tokens=MAX, messages=ASK) as s:
                m = s.get_final_message()
        else:
            m = client.messages.create(model="tiny", max_tokens=MAX, messages=ASK)
            spec = m.model_extra["speculative"]
            assert spec["strategy"] == "draft-model" and spec["accepted"] > 0  # the drafter did speculate
        assert m.content[0].text == plain == expected


def test_stop_reasons_max_tokens_and_stop_sequence(client, reference):
    expected, _ = reference(ASK, max_tokens=MAX)
    cut = client.messages.create(model="tiny", max_tokens=3, messages=ASK)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    word = expected.strip().split()[1]  # a word inside the greedy reply
    for stream in (False, True):
        kwargs = dict(model="tiny", max_tokens=MAX, messages=ASK, stop_sequences=["zzzz", word])
        if stream:
            with client.messages.stream(**kwargs) as s:
                m = s.get_final_message()
        else:
            m = client.messages.create(**kwargs)
        assert m.stop_reason == "stop_sequence" and m.stop_sequence == word
        assert m.content[0].text == expected[: expected.index(word)]


def test_max_tokens_is_a_ceiling_lowered_to_the_context_left(client, server):
    """Clients must send max_tokens and send large ones (Claude Code: 32000); the tiny model's
    context is 4096, so the reply stops where the context ends, and says so."""
    long = [{"role": "user", "content": "the cat sat on the mat. " * 169 + "the cat sat on th"}]
    n = client.messages.count_tokens(model="tiny", messages=long).input_tokens
    assert n == 4096 - 3  # the byte tokenizer: one token a byte, plus the template's
    m = client.messages.create(model="tiny", max_tokens=32000, messages=long)
    assert m.stop_reason == "model_context_window_exceeded" and m.usage.output_tokens == 3
    assert client.messages.create(model="tiny", max_tokens=2, messages=long).stop_reason == "max_tokens"
    with client.messages.stream(model="tiny", max_tokens=32000, messages=long) as s:
        assert s.get_final_message().stop_reason == "model_context_window_exceeded"


def test_count_tokens_is_the_prompt_the_reply_reports(client):
    counted = client.messages.count_tokens(model="tiny", system=SYSTEM, messages=ASK)
    m = client.messages.create(model="tiny", max_tokens=2, system=SYSTEM, messages=ASK)
    assert counted.input_tokens == m.usage.input_tokens + m.usage.cache_read_input_tokens > 10


def test_the_key_is_x_api_key_and_errors_have_anthropic_shape(client, server):
    bad = anthropic.Anthropic(base_url=server.url, api_key="wrong", max_retries=0, timeout=60)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="tiny", max_tokens=2, messages=ASK)
    anthropic_error(*post(server, "/v1/messages", {"max_tokens": 2, "messages": ASK}, key=None), 401)
    with pytest.raises(anthropic.NotFoundError, match="this server serves 'tiny'"):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=2, messages=ASK)
    with pytest.raises(anthropic.BadRequestError, match="image blocks are not supported"):
        client.messages.create(model="tiny", max_tokens=2, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}])
    # anthropic-version is accepted, not required; the model may be left out
    for headers in ({}, {"anthropic-version": "2023-06-01", "anthropic-beta": "x"}):
        status, _, raw = post(server, "/v1/messages", {"max_tokens": 2, "messages": ASK}, headers)
        assert status == 200 and json.loads(raw)["type"] == "message", raw


# ------------------------------------------------------------------------------------------------
# tools


@pytest.fixture(scope="module")
def tool_server(tmp_path_factory):
    path = save_tool_model(tmp_path_factory.mktemp("anthropic-tools") / "tool-model")
    with ServerProcess(str(path), "--draft-strategy", "lookup", "--max-tokens", "16") as s:
        yield s


@pytest.fixture(scope="module")
def tool_client(tool_server):
    return anthropic.Anthropic(base_url=tool_server.url, api_key="unused", max_retries=0, timeout=60)


def test_tools_and_tool_turns_render_as_the_openai_path_renders_them(tool_server, tool_client):
    oai = openai.OpenAI(base_url=tool_server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    oai_tools = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                                   "parameters": t["input_schema"]}} for t in TOOLS]
    turns = WEATHER + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "t1", "name": "get_weather", "content": "sunny"}]
    ours = WEATHER + [{"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather",
                                                         "input": {"city": "Oslo"}}]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}]
    for oai_messages, messages in ((WEATHER, WEATHER), (turns, ours)):
        r = oai.chat.completions.create(model="tool-model", messages=oai_messages, tools=oai_tools, max_tokens=1)
        counted = tool_client.messages.count_tokens(model="tool-model", messages=messages, tools=TOOLS)
        assert counted.input_tokens == r.usage.prompt_tokens


@pytest.mark.parametrize("strategy", ["lookup", "none"])
def test_a_tool_call_is_a_tool_use_block_streaming_or_not_and_the_result_continues(tool_client, strategy):
    extra = {"draft_strategy": strategy}
    m = tool_client.messages.create(model="tool-model", max_tokens=16, messages=WEATHER, tools=TOOLS,
                                    extra_body=extra)
    assert m.stop_reason == "tool_use" and [b.type for b in m.content] == ["tool_use"]
    use = m.content[0]
    assert use.id and use.name == CALL["name"] and use.input == CALL["arguments"]

    with tool_client.messages.stream(model="tool-model", max_tokens=16, messages=WEATHER, tools=TOOLS,
                                     extra_body=extra) as s:
        events = list(s)
        final = s.get_final_message()
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert [d.type for d in deltas] == ["input_json_delta"] and json.loads(deltas[0].partial_json) == CALL["arguments"]
    assert final.stop_reason == "tool_use" and final.content[0].input == CALL["arguments"]

    followup = WEATHER + [{"role": "assistant", "content": [b.model_dump() for b in m.content]},
                          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                        "content": [{"type": "text", "text": "sunny, 21 C"}]}]}]
    again = tool_client.messages.create(model="tool-model", max_tokens=16, messages=followup, tools=TOOLS,
                                        extra_body=extra)
    assert again.stop_reason == "tool_use"
    assert again.usage.input_tokens + again.usage.cache_read_input_tokens > m.usage.input_tokens + 10


def test_without_tools_or_with_tool_choice_none_the_markup_is_text(tool_client):
    for kwargs in ({}, {"tools": TOOLS, "tool_choice": {"type": "none"}}):
        m = tool_client.messages.create(model="tool-model", max_tokens=16, messages=WEATHER, **kwargs)
        assert [b.type for b in m.content] == ["text"] and m.content[0].text == "".join(PIECES)
        assert m.stop_reason == "end_turn"


# ------------------------------------------------------------------------------------------------
# translation (no server)


def test_translation_to_the_chat_template_messages():
    body = {"model": "m", "max_tokens": 5, "system": SYSTEM, "stop_sequences": ["x"], "temperature": 0.5,
            "thinking": {"type": "enabled", "budget_tokens": 100}, "metadata": {"user_id": "u"},
            "output_config": {"effort": "high"}, "cache_control": {"type": "ephemeral"},
            "tools": TOOLS, "tool_choice": {"type": "auto"}, "num_draft_tokens": 4,
            "messages": [{"role": "user", "content": "weather?"},
                         {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                                           {"type": "text", "text": "Let me look."},
                                                           {"type": "tool_use", "id": "t1", "name": "get_weather",
                                                            "input": {"city": "Oslo"}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                                                      {"type": "tool_result", "tool_use_id": "t2", "is_error": True,
                                                       "content": [{"type": "text", "text": "boom"}]},
                                                      {"type": "text", "text": "thanks"}]}]}
    out = translate(body)
    assert out["messages"] == [
        {"role": "system", "content": "You are terse.\nAnswer in words."},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me look.",
         "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get_weather",
                                                                       "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny", "name": "get_weather"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: boom"},
        {"role": "user", "content": "thanks"},
    ]
    fn = out["tools"][0]["function"]
    assert out["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                                               "parameters": TOOLS[0]["input_schema"]}}]
    assert list(fn) == ["name", "description", "parameters"]  # OpenAI's order, as a template renders it
    assert (out["stop"], out["temperature"], out[CEILING], out["num_draft_tokens"]) == (["x"], 0.5, 5, 4)
    assert "max_tokens" not in out  # a ceiling, not the OpenAI path's max_tokens (which must fit)
    assert "tools" not in translate({**body, "tool_choice": {"type": "none"}})
    assert CEILING not in translate({"messages": ASK}, counting=True)


@pytest.mark.parametrize("change, message", [
    ({"max_tokens": None}, "'max_tokens' is required"),
    ({"messages": []}, "non-empty list"),
    ({"messages": ASK + [{"role": "assistant", "content": "pre"}]}, "prefill"),
    ({"messages": [{"role": "system", "content": "x"}]}, "'user' or 'assistant'"),
    ({"messages": [{"role": "user", "content": [{"type": "document"}]}]}, "document blocks are not supported"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "with a 'type'"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": 3}]}]}, "tool_use_id"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tools"),
    ({"tools": [{"name": "f"}]}, "input_schema"),
    ({"tool_choice": {"type": "any"}}, "constrained decoding"),
    ({"stop_sequences": "x"}, "'stop_sequences'"),
    ({"system": [{"type": "image"}]}, "image blocks"),
    ({"output_config": {"format": {"type": "json_schema", "schema": {}}}}, "structured outputs"),
])
def test_translation_refuses_what_it_cannot_honour_with_one_clear_line(change, message):
    body = {"max_tokens": 5, "messages": ASK, **change}
    with pytest.raises(RequestError, match=message) as e:
        translate({k: v for k, v in body.items() if v is not None})
    assert e.value.status == 400


def test_the_builder_orders_blocks_and_closes_each():
    b = MessageBuilder("m", 7)
    call = {"id": "c", "function": {"name": "f", "arguments": "{\"a\": 1}"}}
    events = b.start() + b.delta("hi", []) + b.delta(" there", [call]) + b.delta("after", [])
    events += b.finish("tool_calls", {"prompt_tokens": 7, "completion_tokens": 4,
                                      "prompt_tokens_details": {"cached_tokens": 2}}, None)
    names = [(n, d.get("index")) for n, d in events]
    assert names == [("message_start", None), ("ping", None), ("content_block_start", 0), ("content_block_delta", 0),
                     ("content_block_delta", 0), ("content_block_stop", 0), ("content_block_start", 1),
                     ("content_block_delta", 1), ("content_block_stop", 1), ("content_block_start", 2),
                     ("content_block_delta", 2), ("content_block_stop", 2), ("message_delta", None),
                     ("message_stop", None)]
    m = b.message()
    assert m["content"] == [{"type": "text", "text": "hi there"},
                            {"type": "tool_use", "id": "c", "name": "f", "input": {"a": 1}},
                            {"type": "text", "text": "after"}]
    assert m["stop_reason"] == "tool_use" and m["usage"] == {"input_tokens": 5, "cache_creation_input_tokens": 0,
                                                             "cache_read_input_tokens": 2, "output_tokens": 4}


# ------------------------------------------------------------------------------------------------
# bad input: 4xx in Anthropic's shape, never 5xx


BAD = [
    (b"{", 400),
    (b"[]", 400),
    (b'{"max_tokens": 2, "messages": [{"role": "user", "content": "\\ud800"}]}', 400),
    ({"messages": ASK}, 400),
    ({"max_tokens": "2", "messages": ASK}, 400),
    ({"max_tokens": 0, "messages": ASK}, 400),
    ({"max_tokens": -1, "messages": ASK}, 400),
    ({"max_tokens": 2, "messages": ASK, "temperature": -1}, 400),
    ({"max_tokens": 2, "messages": ASK, "top_k": "x"}, 400),
    ({"max_tokens": 2, "messages": ASK, "stream": "yes"}, 400),
    ({"max_tokens": 2, "messages": ASK, "stop_sequences": [""]}, 400),
    ({"max_tokens": 2, "messages": ASK, "system": 5}, 400),
    ({"max_tokens": 2, "messages": ASK, "tools": {"name": "f"}}, 400),
    ({"max_tokens": 2, "messages": ASK, "tool_choice": "auto"}, 400),
    ({"max_tokens": 2, "messages": ASK, "num_draft_tokens": 99}, 400),
    ({"max_tokens": 2, "messages": [{"role": "user"}]}, 400),
    ({"max_tokens": 2, "messages": [{"role": "user", "content": None}]}, 400),
    ({"max_tokens": 2, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f",
                                                                       "input": "x"}]}]}, 400),
    ({"max_tokens": 2, "messages": [{"role": "user", "content": "a" * 60000}]}, 400),  # refused before tokenizing
    ({"max_tokens": 2, "messages": [{"role": "user", "content": "a" * 70000}]}, 413),
    ({"max_tokens": 2, "messages": ASK, "model": "claude-3-haiku"}, 404),
]


def test_bad_input_gets_an_anthropic_4xx_and_the_next_request_still_works(server, client, reference):
    for body, expected in BAD:
        anthropic_error(*post(server, "/v1/messages", body), expected)
    anthropic_error(*post(server, "/v1/messages/count_tokens", {"messages": "x"}), 400)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", "/v1/messages", headers={"x-api-key": KEY})
    resp = conn.getresponse()
    anthropic_error(resp.status, resp.getheader("content-type"), resp.read(), 405)
    expected, _ = reference(ASK, max_tokens=MAX)
    assert client.messages.create(model="tiny", max_tokens=MAX, messages=ASK).content[0].text == expected


FUZZ_VALUES = [None, True, False, -1, 0, 1, 2.5, "", "x", "\ud800", [], {}, [1, "a"], {"a": 1}, 10**30, 1e308,
               "tiny", "none", "auto", [{"type": "text"}], [{"type": "text", "text": 5}], [{"type": "image"}],
               [{"type": "tool_use", "id": "a", "name": "f", "input": {}}], [{"type": "tool_result"}],
               [{"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "r"}]}],
               {"type": "auto"}, {"type": "any"}, {"type": "none"}, [{"name": "f", "input_schema": {}}],
               [{"name": "f", "input_schema": 1}], [{"type": "thinking", "thinking": "x"}]]
FUZZ_KEYS = ["model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences",
             "stream", "tools", "tool_choice", "metadata", "thinking", "num_draft_tokens", "draft_strategy",
             "seed", "zzz"]


def fuzz_body(rng: random.Random) -> bytes:
    base = {"model": "tiny", "max_tokens": rng.choice([1, 2]), "messages": [{"role": "user", "content": "hi"}]}
    if rng.random() < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    for _ in range(rng.randint(1, 4)):
        op, key = rng.random(), rng.choice(FUZZ_KEYS)
        if op < 0.15:
            base.pop(key, None)
        elif op < 0.45:
            base["messages"] = [{"role": rng.choice(["user", "assistant", "user", "tool", 3]),
                                 "content": rng.choice(FUZZ_VALUES)} for _ in range(rng.randint(1, 3))]
        else:
            base[key] = rng.choice(FUZZ_VALUES)
    return json.dumps(base).encode()


def test_fuzzed_messages_bodies_never_get_a_5xx(server, client, reference):
    rng = random.Random(20261202)
    counts = {}
    for i in range(300):
        path = "/v1/messages" if rng.random() < 0.8 else "/v1/messages/count_tokens"
        data = fuzz_body(rng)
        status, ctype, raw = post(server, path, data)
        counts[status] = counts.get(status, 0) + 1
        assert status < 500, (i, data[:300], raw[:300])
        if status >= 400:
            anthropic_error(status, ctype, raw)
        elif ctype.startswith("text/event-stream"):
            assert raw.rstrip().endswith(b'data: {"type":"message_stop"}'), raw[-200:]
        else:
            body = json.loads(raw)
            assert "usage" in body or "input_tokens" in body, body
    assert counts.get(200, 0) > 20 and sum(v for k, v in counts.items() if k >= 400) > 100, counts
    expected, _ = reference(ASK, max_tokens=MAX)
    assert client.messages.create(model="tiny", max_tokens=MAX, messages=ASK).content[0].text == expected
