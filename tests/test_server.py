"""Spec: ``mlx-specdec server`` survives real clients (the server runs in a subprocess on 127.0.0.1).

Every network call has a timeout and the server subprocess is killed in teardown, so the module
is bounded in time even when something hangs.
"""

import http.client
import json
import random
import signal
import socket
import subprocess
import sys
import time

import mlx_lm
import pytest

from mlx_specdec_plugin import generate
from mlx_specdec_plugin.server.protocol import StopMatcher
from tools.server_load import ServerProcess, request_json, run_load, stream_events
from mlx_specdec_plugin.testing.tiny import EOS_ID, save_tiny_model

openai = pytest.importorskip("openai")

MAX = 24
CHAT = [{"role": "system", "content": "You are terse."},
        {"role": "user", "content": "the cat sat on the mat. the cat sat on the"}]
TEXT = "one two three one two three one two"
NO_EOS = {str(EOS_ID): -100}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("server") / "tiny", "llama", seed=1, sharpness=6))


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("calibration"))  # for num_draft_tokens="auto"
    with ServerProcess(model_path, "--draft-strategy", "lookup", "--max-tokens", "16",
                       "--max-body-bytes", str(1 << 16), "--max-queue", "16", env={"MLX_SPECDEC_CACHE": cache}) as s:
        yield s


def without_incomplete_tail(text: str) -> str:
    """What the server sends for the library's text: a reply cut inside a multi-byte character
    does not end in the U+FFFD the detokenizer flushes for the incomplete bytes."""
    return text[:-1] if text.endswith("\ufffd") else text


@pytest.fixture(scope="module")
def reference(model_path):
    """The library's own greedy output for a chat (through the chat template) or a text prompt."""
    model, tok = mlx_lm.load(model_path)

    def ref(messages=None, prompt=None, max_tokens=MAX):
        ids = tok.apply_chat_template(messages, add_generation_prompt=True) if messages else tok.encode(prompt)
        text = generate(model, tok, ids, max_tokens=max_tokens, draft_strategy="lookup")
        return without_incomplete_tail(text), len(ids)

    return ref


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def health(server):
    status, body = request_json(server.url, "GET", "/health", timeout=10)
    assert status == 200 and body["status"] == "ok", body
    return body


def post_raw(server, path, data: bytes, timeout=60, headers=None):
    """POST raw bytes; returns (status, content type, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request("POST", path, body=data, headers=headers or {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type") or "", resp.read()
    finally:
        conn.close()


def assert_json_error(status, ctype, raw, expected=None):
    assert 400 <= status < 500, (status, raw[:300])
    if expected is not None:
        assert status == expected, (status, raw[:300])
    assert ctype.startswith("application/json"), ctype
    err = json.loads(raw)["error"]
    assert isinstance(err["message"], str) and err["message"]
    return err


def assert_still_correct(client, reference):
    expected, _ = reference(CHAT)
    r = client.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX)
    assert r.choices[0].message.content == expected


# ------------------------------------------------------------------------------------------------
# the official client


def test_openai_chat_non_streaming_and_streaming_equal_library_generate(client, reference):
    expected, n_prompt = reference(CHAT)
    model_id = client.models.list().data[0].id
    r = client.chat.completions.create(model=model_id, messages=CHAT, max_tokens=MAX)
    assert r.choices[0].message.content == expected
    assert r.choices[0].message.role == "assistant"
    assert r.usage.prompt_tokens == n_prompt
    assert r.usage.total_tokens == n_prompt + r.usage.completion_tokens
    spec = r.model_extra["speculative"]
    assert spec["strategy"] == "lookup" and spec["acceptor"] == "greedy"
    assert spec["rounds"] >= 1 and spec["mean_accepted_length"] >= 1.0 and spec["num_draft_tokens"] is None
    assert spec["proposed"] <= 3 * spec["rounds"]  # lookup's default draft length is 3
    assert 0 <= spec["accepted"] <= spec["proposed"]

    chunks = list(client.chat.completions.create(model=model_id, messages=CHAT, max_tokens=MAX, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason in ("length", "stop")
    assert finals[0].usage.completion_tokens == r.usage.completion_tokens
    assert finals[0].model_extra["speculative"]["rounds"] == spec["rounds"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == n_prompt


def test_a_growing_conversation_reuses_the_cached_prefix_and_answers_the_same(client, reference, server):
    """Each turn resends the conversation: the prefix cache serves all but the new tokens, and
    every answer equals the library's answer computed from scratch."""
    messages = list(CHAT)
    for turn in range(3):
        for strategy in ("lookup", "none"):
            expected, n_prompt = reference(messages)
            r = client.chat.completions.create(model="default_model", messages=messages, max_tokens=MAX,
                                               extra_body={"draft_strategy": strategy})
            assert r.choices[0].message.content == expected, (turn, strategy)
            cached = r.usage.prompt_tokens_details.cached_tokens
            assert r.usage.prompt_tokens == n_prompt and 0 <= cached < n_prompt
            if turn > 0:  # the previous turn's prompt at least (the tiny byte model re-tokenizes exactly)
                assert cached >= previous, (turn, strategy, cached, previous)
        previous = n_prompt
        messages = messages + [{"role": "assistant", "content": expected},
                               {"role": "user", "content": f"and again, turn {turn}: the cat sat on the"}]
    assert health(server)["prefix_cache"]["hits"] >= 4


@pytest.mark.parametrize("strategy", ["lookup", "none"])
def test_logprobs_are_the_targets_own_streaming_or_not(client, model_path, strategy):
    """Each generated token's log-probability (and the top alternatives, best first) is the
    target's log-softmax at that position, whether the token came from a draft or not."""
    import mlx.core as mx

    from mlx_lm.sample_utils import make_logits_processors

    model, tok = mlx_lm.load(model_path)
    ids = tok.apply_chat_template(CHAT, add_generation_prompt=True)
    processors = make_logits_processors({EOS_ID: -100})
    ref = [(r.token, r.logprobs) for r in mlx_lm.stream_generate(model, tok, ids, max_tokens=MAX,
                                                                  logits_processors=processors)]
    r = client.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX, logprobs=True,
                                       top_logprobs=3, extra_body={"draft_strategy": strategy,
                                                                   "logit_bias": NO_EOS})
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens == MAX == len(ref)
    for e, (token, logprobs) in zip(content, ref):
        assert e.logprob == pytest.approx(logprobs[token].item(), abs=1e-4)
        best = sorted(logprobs.tolist(), reverse=True)[:3]
        assert [t.logprob for t in e.top_logprobs] == pytest.approx(best, abs=1e-4)
        assert e.top_logprobs[0].token == e.token  # greedy: the token is its own best alternative
    streamed = list(client.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX,
                                                   logprobs=True, top_logprobs=3, stream=True,
                                                   extra_body={"draft_strategy": strategy, "logit_bias": NO_EOS}))
    streamed_lp = [e.logprob for c in streamed if c.choices and c.choices[0].logprobs
                   for e in c.choices[0].logprobs.content]
    assert streamed_lp == pytest.approx([e.logprob for e in content], abs=1e-6)
    text = client.completions.create(model="default_model", prompt=TEXT, max_tokens=4, logprobs=2,
                                     extra_body={"draft_strategy": strategy, "logit_bias": NO_EOS})
    lp = text.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4
    assert all(len(t) <= 2 for t in lp.top_logprobs) and lp.text_offset[0] == 0


def test_openai_text_completion_equals_library_generate(client, reference):
    expected, n_prompt = reference(prompt=TEXT)
    r = client.completions.create(model="default_model", prompt=TEXT, max_tokens=MAX)
    assert r.choices[0].text == expected and r.usage.prompt_tokens == n_prompt
    assert r.model_extra["speculative"]["strategy"] == "lookup"
    streamed = list(client.completions.create(model="default_model", prompt=TEXT, max_tokens=MAX, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == expected
    assert streamed[-1].usage.completion_tokens == r.usage.completion_tokens


def test_models_and_health(server, client):
    models = client.models.list().data
    assert len(models) == 1
    info = models[0].model_extra["speculative"]
    assert info["strategy"] == "lookup" and "none" in info["strategies"] and info["max_draft_tokens"] == 16
    status, body = request_json(server.url, "GET", f"/v1/models/{models[0].id}")
    assert status == 200 and body["id"] == models[0].id
    assert health(server)["status"] == "ok"


# ------------------------------------------------------------------------------------------------
# per-request settings


def test_per_request_draft_length_strategy_and_acceptor(client, reference):
    expected, _ = reference(CHAT)

    def chat(**extra):
        r = client.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX, extra_body=extra)
        return r.choices[0].message.content, r.model_extra["speculative"]

    text, spec = chat(num_draft_tokens=1)
    assert text == expected and spec["num_draft_tokens"] == 1
    assert spec["proposed"] <= spec["rounds"]  # at most one proposal per round
    text, spec = chat(num_draft_tokens="auto")
    assert text == expected and spec["num_draft_tokens"] == "auto"
    text, spec = chat(draft_strategy="none")
    assert text == expected and spec["strategy"] == "none" and spec["rounds"] == 0
    a = client.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX, temperature=0.7,
                                       top_p=0.9, seed=5, extra_body={"acceptor": "block", "num_draft_tokens": 5})
    b = client.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX, temperature=0.7,
                                       top_p=0.9, seed=5, extra_body={"acceptor": "block", "num_draft_tokens": 5})
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.model_extra["speculative"]["acceptor"] == "block"
    r = client.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX, temperature=0.5,
                                       frequency_penalty=0.5, presence_penalty=0.2, logit_bias={"97": 5},
                                       extra_body={"repetition_penalty": 1.3, "top_k": 20, "min_p": 0.05})
    assert r.choices[0].finish_reason in ("length", "stop")


def test_stop_sequences_cut_the_text(client, reference):
    expected, _ = reference(CHAT)
    assert len(expected) >= 8
    stop = expected[len(expected) // 2: len(expected) // 2 + 2]
    cut = expected[: expected.find(stop)]
    r = client.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX, stop=[stop, "\x00\x01"])
    assert r.choices[0].message.content == cut and r.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX, stop=stop,
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == cut


def test_default_max_tokens_shrinks_to_the_context_left(client):
    r = client.completions.create(model="default_model", prompt="a" * 4090, extra_body={"logit_bias": NO_EOS})
    assert r.usage.prompt_tokens == 4090 and r.usage.completion_tokens == 6 and r.choices[0].finish_reason == "length"


def test_stop_matcher_holds_back_partial_matches():
    m = StopMatcher(["END", "xy"])
    out = []
    for piece in ["abcE", "N", "x", "Q", "zzEN", "D tail"]:
        text, stopped = m.feed(piece)
        out.append(text)
        if stopped:
            break
    assert "".join(out) == "abcENxQzz" and stopped
    m = StopMatcher(["END"])
    assert m.feed("abE") == ("ab", False) and m.flush() == "E"


# ------------------------------------------------------------------------------------------------
# bad input


BAD = [
    ("/v1/chat/completions", b'{"messages": [', 400),
    ("/v1/chat/completions", b"", 400),
    ("/v1/chat/completions", b"[1, 2]", 400),
    ("/v1/chat/completions", b"\xff\xfe", 400),
    ("/v1/completions", b'{"prompt": "x", "temperature": NaN}', 400),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 1e999}', 400),
    ("/v1/completions", b'{"prompt": "\\ud800"}', 400),
    ("/v1/completions", b"[" * 50000, 400),
    ("/v1/chat/completions", {"messages": "hi"}, 400),
    ("/v1/chat/completions", {"messages": []}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": "10"}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": True}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": -5}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 0}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 10**9}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "temperature": -0.5}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "temperature": "hot"}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "top_p": 2}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "stream": "yes"}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "stop": 5}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "stop": [""]}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "logit_bias": {"x": 1}}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "logit_bias": {"999999": 1}}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "seed": 2**70}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "n": 2}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "chat_template_kwargs": {"tokenize": False}}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "num_draft_tokens": 99}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "num_draft_tokens": 0}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "num_draft_tokens": "many"}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "draft_strategy": "draft-model"}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "draft_strategy": "nope"}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "acceptor": "nope"}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "acceptor": "greedy", "temperature": 0.7}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "model": "gpt-4"}, 404),
    # issue 14: each of these was a 500, a 200 with garbage, or named the wrong parameter
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"},
                                           {"role": "assistant", "content": "x", "tool_calls": 5}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"},
                                           {"role": "assistant", "content": "x", "tool_calls": True}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": None, "tool_calls": {"a": 1}}]}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "logit_bias": {"42": 1e9}}, 400),
    ("/v1/chat/completions", {"messages": CHAT, "logit_bias": {"42": [1]}}, 400),
    ("/v1/completions", {"prompt": "a" * 60000}, 400),  # refused before tokenizing
    ("/v1/completions", {"prompt": ""}, 400),
    ("/v1/completions", {"prompt": [1, -1]}, 400),
    ("/v1/completions", {"prompt": "a" * 5000}, 400),  # oversize prompt: the tiny model's context is 4096
    ("/v1/completions", {"prompt": "a" * 70000}, 413),  # oversize body: --max-body-bytes 65536
    ("/v1/nothing", {"prompt": "x"}, 404),
    # the Anthropic Messages API (more in test_server_anthropic.py)
    ("/v1/messages", {"messages": [{"role": "user", "content": "hi"}]}, 400),  # max_tokens is required
    ("/v1/messages", {"max_tokens": 2, "messages": [{"role": "user", "content": [{"type": "image"}]}]}, 400),
    ("/v1/messages/count_tokens", {"messages": 5}, 400),
]


def test_bad_input_gets_a_json_4xx_and_the_next_request_still_works(server, client, reference):
    for path, body, expected in BAD:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, ctype, raw = post_raw(server, path, data)
        err = assert_json_error(status, ctype, raw, expected)
        if expected == 404 and path != "/v1/nothing":
            assert err["code"] == "model_not_found"
    status, body = request_json(server.url, "GET", "/v1/chat/completions")
    assert status == 405 and "error" in body
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=CHAT)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="default_model", messages=CHAT, temperature=-1)
    with pytest.raises(openai.BadRequestError, match="4500 tokens.*at most 4095"):
        client.completions.create(model="default_model", prompt="b" * 4500, max_tokens=4)
    assert health(server)["status"] == "ok"
    assert_still_correct(client, reference)


def test_by_default_no_web_page_and_no_rebound_host_can_use_the_server(server):
    """No CORS unless ``--cors-origin``: a browser request (it carries ``Origin``) gets 403 with no
    CORS headers; a ``Host`` that is not a loopback name (DNS rebinding) gets 421."""
    def post(headers):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            conn.request("POST", "/v1/completions", body=json.dumps({"prompt": TEXT, "max_tokens": 2}).encode(),
                         headers={"Content-Type": "application/json", **headers})
            resp = conn.getresponse()
            return resp.status, {k.lower() for k, _ in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    for origin in ("http://evil.example", "http://localhost:3000", "null"):
        status, names, raw = post({"Origin": origin})
        assert status == 403 and not any(n.startswith("access-control-") for n in names), raw
    status, names, _ = post({"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert status == 403
    status, _, raw = post({"Host": f"attacker.example:{server.port}"})
    assert status == 421 and json.loads(raw)["error"]["code"] == "host_not_allowed"
    assert post({})[0] == 200 and post({"Host": f"localhost:{server.port}"})[0] == 200


FUZZ_VALUES = [None, True, False, -1, 0, 1, 2.5, -3.25, "", "x", "\ud800", [], {}, [1, "a"], {"a": 1},
               {"role": "user"}, 10**30, -(10**30), 1e308, 2**63, [[]], "default_model", "lookup", "none",
               1e-40, "auto", {"42": 1e9}, [{"function": {"name": "f", "arguments": "{"}}]]
FUZZ_KEYS = ["model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
             "min_p", "stop", "seed", "stream", "stream_options", "logit_bias", "repetition_penalty",
             "repetition_context_size", "presence_penalty", "frequency_penalty", "n", "logprobs", "top_logprobs",
             "num_draft_tokens", "draft_strategy", "acceptor", "block_size", "tools", "chat_template_kwargs",
             "response_format", "echo", "suffix", "user", "zzz"]


def fuzz_body(rng: random.Random) -> bytes:
    chat = rng.random() < 0.6
    base = {"model": "default_model", "max_tokens": rng.choice([1, 2, 3])}
    base.update({"messages": [{"role": "user", "content": "hi"}]} if chat else {"prompt": "hello"})
    roll = rng.random()
    if roll < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    if roll < 0.2:
        raw = json.dumps(base).encode()
        return raw[: rng.randrange(len(raw))]
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        key = rng.choice(FUZZ_KEYS)
        if op < 0.15:
            base.pop(key, None)
        elif op < 0.3 and chat:
            base["messages"] = [rng.choice([{"role": "user", "content": rng.choice(FUZZ_VALUES)},
                                            {"role": rng.choice(FUZZ_VALUES), "content": "x"},
                                            {"role": "assistant", "content": rng.choice([None, "x"]),
                                             "tool_calls": rng.choice(FUZZ_VALUES)},
                                            rng.choice(FUZZ_VALUES)])]
        else:
            base[key] = rng.choice(FUZZ_VALUES)
    if rng.random() < 0.1:
        return json.dumps(rng.choice([base, [base], "x", 1, None])).encode()
    return json.dumps(base).encode()


def test_fuzzed_bodies_never_get_a_5xx(server, client, reference):
    rng = random.Random(20241129)
    counts = {}
    for i in range(1000):
        path = "/v1/chat/completions" if rng.random() < 0.6 else "/v1/completions"
        data = fuzz_body(rng)
        status, ctype, raw = post_raw(server, path, data)
        counts[status] = counts.get(status, 0) + 1
        assert status < 500, (i, data[:300], raw[:300])
        if status >= 400:
            assert_json_error(status, ctype, raw)
        elif ctype.startswith("text/event-stream"):
            assert raw.rstrip().endswith(b"data: [DONE]"), raw[-200:]
        else:
            assert "usage" in json.loads(raw)
    assert counts.get(200, 0) > 20 and sum(v for k, v in counts.items() if k >= 400) > 500, counts
    assert health(server)["status"] == "ok"
    assert_still_correct(client, reference)


# ------------------------------------------------------------------------------------------------
# misbehaving clients


def open_stream(server, body: dict, rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return sock


def read_events(sock: socket.socket, n: int) -> bytes:
    got = b""
    while got.count(b"data: ") < n:
        chunk = sock.recv(4096)
        assert chunk, got
        got += chunk
    return got


def wait_health(server, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        h = health(server)
        if predicate(h):
            return h
        assert time.monotonic() < deadline, h
        time.sleep(0.05)


def test_disconnect_mid_stream_cancels_and_the_next_output_is_unchanged(server, client, reference):
    before = wait_health(server, lambda h: not h["busy"] and h["queue"] == 0)
    sock = open_stream(server, {"prompt": TEXT, "max_tokens": 3000, "stream": True, "logit_bias": NO_EOS})
    head = read_events(sock, 3)
    assert head.startswith(b"HTTP/1.1 200")
    sock.close()
    after = wait_health(server, lambda h: h["cancelled"] > before["cancelled"] and not h["busy"])
    assert after["served"] == before["served"]
    assert_still_correct(client, reference)
    expected, _ = reference(prompt=TEXT)
    assert client.completions.create(model="default_model", prompt=TEXT, max_tokens=MAX).choices[0].text == expected


def test_a_non_streaming_client_that_disconnects_is_cancelled(server, client, reference):
    before = wait_health(server, lambda h: not h["busy"] and h["queue"] == 0)
    sock = open_stream(server, {"prompt": TEXT, "max_tokens": 3000, "logit_bias": NO_EOS})
    wait_health(server, lambda h: h["busy"])
    sock.close()
    after = wait_health(server, lambda h: h["cancelled"] > before["cancelled"] and not h["busy"])
    assert after["served"] == before["served"]
    assert_still_correct(client, reference)


def test_a_client_that_stops_reading_does_not_block_the_next_request(server, client, reference):
    slow = open_stream(server, {"prompt": TEXT, "max_tokens": 600, "stream": True, "logit_bias": NO_EOS},
                       rcvbuf=4096)
    try:
        read_events(slow, 1)  # then never read again: the server's writes back up
        t0 = time.monotonic()
        assert_still_correct(client, reference)
        assert time.monotonic() - t0 < 60
        h = health(server)
        assert h["status"] == "ok"
    finally:
        slow.close()
    assert_still_correct(client, reference)


# ------------------------------------------------------------------------------------------------
# a draft model, and a small bounded load test


def test_draft_model_server_is_exact_and_accepts(model_path, reference):
    expected, _ = reference(CHAT)
    with ServerProcess(model_path, "--draft-model", model_path, "--num-draft-tokens", "4") as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        r = c.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX)
        assert r.choices[0].message.content == expected
        spec = r.model_extra["speculative"]
        assert spec["strategy"] == "draft-model" and spec["num_draft_tokens"] == 4
        assert spec["accepted"] > 0 and spec["mean_accepted_length"] > 1.5  # the draft is the target itself
        r = c.chat.completions.create(model="default_model", messages=CHAT, max_tokens=MAX,
                                      extra_body={"draft_strategy": "lookup"})
        assert r.choices[0].message.content == expected and r.model_extra["speculative"]["strategy"] == "lookup"
        status, events = stream_events(s.url, "/v1/chat/completions",
                                       {"messages": CHAT, "max_tokens": MAX, "stream": True})
        assert status == 200 and events[-1] == "[DONE]"
    assert s.proc.returncode in (0, -signal.SIGTERM)  # uvicorn's graceful shutdown, not our SIGKILL


@pytest.mark.parametrize("args, message", [
    (["--draft-strategy", "dflash"], "--draft-strategy dflash needs --draft-model"),
    (["--acceptor", "nope"], "unknown acceptor 'nope'"),
])
def test_a_bad_configuration_exits_with_one_line(model_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "mlx_specdec_plugin.server", "--model", model_path, "--port", "0",
                           *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_small_load_has_no_failures_and_bounded_memory(server):
    out = run_load(server.url, clients=4, requests=5, max_tokens=16, pid=server.pid, warmup=2)
    assert out["failed"] == 0, out["errors"]
    assert out["requests"] == 20 and out["completion_tokens"] > 0
    if out["rss_growth_bytes"] is not None:
        assert out["rss_growth_bytes"] < 64 * 2**20, out


def test_auto_draft_length_is_accepted_as_the_servers_default_and_per_request():
    from mlx_specdec_plugin.server.protocol import _draft_tokens

    assert _draft_tokens({}, "auto", 16) == "auto"  # `server --num-draft-tokens auto` (its warm-up request)
    assert _draft_tokens({"num_draft_tokens": "auto"}, 3, 16) == "auto"
    assert _draft_tokens({"num_draft_tokens": 4}, "auto", 16) == 4


def test_a_refused_request_does_not_cost_the_next_one_its_cached_prefix(client, server):
    messages = CHAT + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "the cat sat"}]
    client.chat.completions.create(model="default_model", messages=messages, max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="exact only at temperature 0"):
        client.chat.completions.create(model="default_model", messages=messages + [{"role": "user", "content": "x"}],
                                       max_tokens=4, temperature=0.5, extra_body={"acceptor": "greedy"})
    r = client.chat.completions.create(model="default_model", messages=messages + [{"role": "user", "content": "y"}],
                                       max_tokens=4)
    assert r.usage.prompt_tokens_details.cached_tokens > len(messages)
