"""Spec: ``mlx-specdec server`` is safe to leave running on a laptop, and every input a client can
send gets a 4xx naming the right parameter (the bugs of issue 14, each reproduced here).

* No CORS by default: a request carrying a browser ``Origin`` gets 403 (a web page cannot even
  start a generation); ``--cors-origin`` allows exactly the named origins, with a fixed list of
  methods and headers (nothing echoed).
* On loopback the ``Host`` header must be a loopback name (421 otherwise): DNS rebinding fails.
* ``--api-key``: ``Authorization: Bearer KEY`` or ``x-api-key: KEY`` everywhere but ``/health``.
* The model id is a short name; no response or error reveals a filesystem path.
* Connections that do not send their request head or body in time are closed (408).
* A prompt that cannot fit is refused before it is tokenized, without reaching the worker.
"""

import http.client
import json
import socket
import time

import mlx_lm
import pytest

from mlx_specdec_plugin.testing.drafters import write_dspark
from mlx_specdec_plugin import generate
from tools.server_load import ServerProcess, request_json
from mlx_specdec_plugin.testing.tiny import save_tiny_model

openai = pytest.importorskip("openai")

KEY = "s3cret-key"
ORIGIN = "http://localhost:5173"
# A template that concatenates content (as most real ones do): null content must still render.
TEMPLATE = "{% for m in messages %}{{ '<s>' + m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
USER = [{"role": "user", "content": "the cat sat on the mat. the cat sat on the"}]
E2 = "226"  # the byte tokenizer's token for 0xE2, the first byte of a 3-byte UTF-8 character


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("server-safety")


@pytest.fixture(scope="module")
def model_path(root):
    return str(save_tiny_model(root / "tiny-target", "llama", seed=1, sharpness=6))


@pytest.fixture(scope="module")
def server(model_path):
    with ServerProcess(model_path, "--draft-strategy", "lookup", "--chat-template", TEMPLATE, "--api-key", KEY,
                       "--cors-origin", ORIGIN, "--header-timeout", "1", "--body-timeout", "1") as s:
        yield s


def call(server, method, path, body=None, headers=None, key=KEY, timeout=60):
    """``(status, headers dict (lowercase), parsed JSON or raw bytes)``."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    try:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def error_of(status, data, expected_status, param=None):
    assert status == expected_status, (status, data)
    err = data["error"]
    assert err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


@pytest.fixture(scope="module")
def greedy(model_path):
    """The library's greedy text for a chat through TEMPLATE (the server's reference)."""
    model, tok = mlx_lm.load(model_path, tokenizer_config={"chat_template": TEMPLATE})

    def ref(messages, max_tokens=16):
        ids = tok.apply_chat_template(messages, add_generation_prompt=True)
        text = generate(model, tok, ids, max_tokens=max_tokens, draft_strategy="none")
        return text[:-1] if text.endswith("\ufffd") else text

    return ref


# ------------------------------------------------------------------------------------------------
# the bugs found by trying it as a new user would


@pytest.mark.parametrize("tool_calls", [5, True, "x", [5], [{"function": 3}], [{"function": {"name": "f",
                                                                                        "arguments": "{oops"}}]])
def test_malformed_tool_calls_are_a_400_on_messages(server, tool_calls):
    body = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x",
                                                           "tool_calls": tool_calls}], "max_tokens": 2}
    status, _, data = call(server, "POST", "/v1/chat/completions", body)
    assert "tool_calls" in error_of(status, data, 400, "messages")["message"]


def test_an_assistant_turn_with_null_content_and_tool_calls_renders(server):
    messages = [{"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "c1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    status, _, data = call(server, "POST", "/v1/chat/completions", {"messages": messages, "max_tokens": 2})
    assert status == 200, data
    assert data["usage"]["prompt_tokens"] > 0


def test_logit_bias_errors_name_logit_bias(server):
    for bias in ({"42": 1e9}, {"42": "x"}, {"42": None}, {"42": -101}):
        status, _, data = call(server, "POST", "/v1/chat/completions",
                               {"messages": USER, "max_tokens": 2, "logit_bias": bias})
        error_of(status, data, 400, "logit_bias")


@pytest.mark.parametrize("strategy", ["lookup", "none"])
def test_a_tiny_temperature_is_greedy_decoding(server, greedy, strategy):
    expected = greedy(USER)
    for t in (1e-40, 1e-300, 5e-324, 1e-6):
        status, _, data = call(server, "POST", "/v1/chat/completions",
                               {"messages": USER, "max_tokens": 16, "temperature": t, "draft_strategy": strategy,
                                "acceptor": "auto" if strategy == "none" else "greedy"})
        assert status == 200, data
        assert data["choices"][0]["message"]["content"] == expected, t


def test_a_reply_cut_inside_a_character_drops_the_incomplete_bytes(server):
    def text(max_tokens, stream=False):
        body = {"prompt": "abc", "max_tokens": max_tokens, "logit_bias": {E2: 100}, "stream": stream}
        if not stream:
            status, _, data = call(server, "POST", "/v1/completions", body)
            assert status == 200, data
            return data["choices"][0]["text"]
        status, _, raw = call(server, "POST", "/v1/completions", body)
        assert status == 200
        events = [json.loads(line[6:]) for line in raw.decode().split("\n\n") if line.startswith("data: {")]
        return "".join(c["text"] for e in events for c in e["choices"])

    # one 0xE2 is an incomplete character (dropped); 0xE2 0xE2 0xE2 is two invalid bytes (each a
    # U+FFFD, as the library reports them) and an incomplete one (dropped)
    assert text(1) == "" and text(1, stream=True) == ""
    assert text(3) == "\ufffd\ufffd" and text(3, stream=True) == "\ufffd\ufffd"


def test_an_oversized_prompt_is_refused_before_tokenizing(server):
    _, _, before = call(server, "GET", "/health")
    for path, body in (("/v1/completions", {"prompt": "a" * 2_000_000}),
                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a b " * 500_000}]})):
        t0 = time.process_time()
        w0 = time.monotonic()
        status, _, data = call(server, "POST", path, {**body, "max_tokens": 4})
        assert error_of(status, data, 400)["code"] == "context_length_exceeded"
        assert time.monotonic() - w0 < 10 and time.process_time() - t0 < 1  # seconds on a loaded CPU: 0.3
    _, _, after = call(server, "GET", "/health")
    assert after["failed"] == before["failed"] and after["served"] == before["served"]  # never queued


# ------------------------------------------------------------------------------------------------
# safe defaults


def test_the_api_key_is_required_except_for_health(server, model_path):
    body = {"messages": USER, "max_tokens": 2}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"x-api-key": "s3cret"}):
        status, h, data = call(server, "POST", "/v1/chat/completions", body, headers=headers, key=None)
        assert error_of(status, data, 401)["code"] == "invalid_api_key" and h.get("www-authenticate") == "Bearer"
    status, _, data = call(server, "GET", "/v1/models", key=None)
    error_of(status, data, 401)
    assert call(server, "POST", "/v1/chat/completions", body, headers={"x-api-key": KEY}, key=None)[0] == 200
    assert call(server, "POST", "/v1/chat/completions", body, headers={"Authorization": f"bearer {KEY}"},
                key=None)[0] == 200
    assert call(server, "GET", "/health", key=None)[0] == 200
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    assert client.chat.completions.create(model="tiny-target", messages=USER, max_tokens=2).usage.completion_tokens
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0).models.list()


def test_no_response_or_error_reveals_a_path(server, model_path):
    status, _, models = call(server, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in models["data"]] == ["tiny-target"]
    replies = [json.dumps(models)]
    for model in ("tiny-target", model_path, "default_model"):  # every alias answers with the short id
        status, _, data = call(server, "POST", "/v1/chat/completions", {"model": model, "messages": USER,
                                                                       "max_tokens": 2})
        assert status == 200 and data["model"] == "tiny-target"
        replies.append(json.dumps(data))
    status, _, data = call(server, "POST", "/v1/chat/completions", {"model": "gpt-4", "messages": USER})
    error_of(status, data, 404, "model")
    replies.append(json.dumps(data))
    status, _, data = call(server, "GET", "/v1/models/gpt-4")
    replies.append(json.dumps(data))
    for reply in replies:
        assert model_path not in reply and "/tmp" not in reply and "\\/tmp" not in reply


def test_cross_origin_requests_are_refused_unless_the_origin_is_allowed(server):
    body = {"messages": USER, "max_tokens": 2}
    for origin in ("http://evil.example", "null", "http://localhost:5174"):
        status, h, data = call(server, "POST", "/v1/chat/completions", body, headers={"Origin": origin})
        assert error_of(status, data, 403)["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in h
        status, h, _ = call(server, "OPTIONS", "/v1/chat/completions", key=None,
                            headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                     "Access-Control-Request-Headers": "authorization, x-evil"})
        assert status == 403 and "access-control-allow-origin" not in h
    status, h, _ = call(server, "OPTIONS", "/v1/chat/completions", key=None,
                        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                                 "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 200 and h["access-control-allow-origin"] == ORIGIN
    assert "*" not in h["access-control-allow-methods"] and "DELETE" not in h["access-control-allow-methods"]
    assert "x-evil" not in h.get("access-control-allow-headers", "")
    status, h, data = call(server, "POST", "/v1/chat/completions", body, headers={"Origin": ORIGIN})
    assert status == 200 and h["access-control-allow-origin"] == ORIGIN, data


def test_a_host_that_is_not_loopback_is_refused(server):
    body = {"messages": USER, "max_tokens": 2}
    for host in (f"evil.example:{server.port}", "evil.example", f"192.168.1.5:{server.port}", "127.0.0.1.evil.example"):
        status, _, data = call(server, "POST", "/v1/chat/completions", body, headers={"Host": host})
        assert error_of(status, data, 421)["code"] == "host_not_allowed", host
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]:80", "LOCALHOST"):
        assert call(server, "POST", "/v1/chat/completions", body, headers={"Host": host})[0] == 200, host


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing ``sock``; fails if it is still open after ``seconds``."""
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return got
            got += chunk
    except socket.timeout:
        pytest.fail(f"connection still open after {seconds} s; got {got[:200]!r}")
    finally:
        sock.close()


def test_idle_and_half_sent_connections_are_closed(server):
    def connect():
        return socket.create_connection(("127.0.0.1", server.port), timeout=10)

    t0 = time.monotonic()
    assert _closed_within(connect(), 8).startswith(b"HTTP/1.1 408")  # never sent a byte
    half_head = connect()
    half_head.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len")
    assert b"408" in _closed_within(half_head, 8)
    half_body = connect()
    half_body.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY.encode()
                      + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\": ")
    reply = _closed_within(half_body, 8)
    assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply, reply[:300]
    assert time.monotonic() - t0 < 20
    assert call(server, "GET", "/health")[0] == 200


def test_auto_draft_length_with_a_block_drafter_at_start_and_per_request(root, model_path, tmp_path):
    """``server --num-draft-tokens auto`` starts (its warm-up request asks for auto) and a request's
    ``"auto"`` with a DSpark drafter calibrates instead of failing with a 500."""
    target = save_tiny_model(root / "qwen3-target", "qwen3", seed=1, sharpness=6, num_hidden_layers=4)
    drafter = write_dspark(root / "dspark", target, layout="dflash_config", target_layer_ids=(0, 2))
    model, tok = mlx_lm.load(str(target))
    ids = tok.apply_chat_template(USER, add_generation_prompt=True)
    expected = generate(model, tok, ids, max_tokens=12, draft_strategy="none")
    expected = expected[:-1] if expected.endswith("\ufffd") else expected
    with ServerProcess(str(target), "--draft-model", str(drafter), "--num-draft-tokens", "auto",
                       env={"MLX_SPECDEC_CACHE": str(tmp_path)}) as s:
        for n in ("auto", 3, None):
            body = {"messages": USER, "max_tokens": 12}
            if n is not None:
                body["num_draft_tokens"] = n
            status, data = request_json(s.url, "POST", "/v1/chat/completions", body)
            assert status == 200, data
            assert data["choices"][0]["message"]["content"] == expected
            assert data["speculative"]["strategy"] == "dspark"
            assert data["speculative"]["num_draft_tokens"] == (n or "auto")
