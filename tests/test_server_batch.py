"""Spec: concurrent requests through ``mlx-specdec server`` are decoded together, and each gets
exactly what it would get alone.

A request alone speculates; requests that overlap decode in one mlx-lm ``BatchGenerator`` (a
speculating request joins it at its next round boundary). With the official ``openai`` client
against a real server subprocess: N concurrent greedy requests, streaming and not, give the texts
the same requests give one at a time (and the library gives); a client that disconnects
mid-stream leaves the other rows intact.
"""

import http.client
import json
import threading

import mlx_lm
from mlx_lm.sample_utils import make_logits_processors
import pytest

from mlx_specdec_plugin import generate
from tools.server_load import ServerProcess, request_json
from mlx_specdec_plugin.testing.tiny import EOS_ID, save_tiny_model

openai = pytest.importorskip("openai")

MAX = 40
NO_EOS = {str(EOS_ID): -100}
CHATS = [[{"role": "user", "content": text}] for text in (
    "the cat sat on the mat. the cat sat on the",
    "one two three one two three one two",
    "abc abc abc abc abc",
    "hello there, how are you",
    "def add(a, b): return a + b",
    "x y z x y z x y",
)]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("batch") / "tiny", "llama", seed=3, sharpness=6))


@pytest.fixture(scope="module")
def server(model_path):
    # the target as its own draft model: every request alone speculates (and accepts a lot)
    with ServerProcess(model_path, "--draft-model", model_path, "--num-draft-tokens", "3",
                       "--max-tokens", str(MAX)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def library(model_path):
    model, tok = mlx_lm.load(model_path)

    def ref(messages, max_tokens=MAX):
        ids = tok.apply_chat_template(messages, add_generation_prompt=True)
        text = generate(model, tok, ids, max_tokens=max_tokens, logits_processors=make_logits_processors({EOS_ID: -100}))
        return text[:-1] if text.endswith("\ufffd") else text

    return ref


def ask(client, messages, stream, max_tokens=MAX, **extra):
    """One greedy chat request: ``(text, the response's speculative object)``."""
    kw = dict(model="default_model", messages=messages, max_tokens=max_tokens, temperature=0.0, logit_bias=NO_EOS,
              extra_body=extra or None)
    if not stream:
        r = client.chat.completions.create(**kw)
        return r.choices[0].message.content, r.model_extra["speculative"]
    chunks = list(client.chat.completions.create(stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks[-1].model_extra["speculative"]


def concurrently(fns):
    """Run the callables at once (released together); their results in order."""
    out, errors = [None] * len(fns), []
    gate = threading.Barrier(len(fns))

    def run(i):
        try:
            gate.wait()
            out[i] = fns[i]()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    return out


def test_concurrent_greedy_requests_get_the_texts_they_get_one_at_a_time(client, library):
    alone = [ask(client, m, stream=i % 2 == 1) for i, m in enumerate(CHATS)]
    assert all(spec["batched_tokens"] == 0 and spec["accepted"] > 0 for _, spec in alone)  # speculated alone
    texts = [t for t, _ in alone]
    assert len(set(texts)) == len(texts)  # distinct replies: a mix-up of rows cannot go unnoticed
    assert texts == [library(m) for m in CHATS]  # plain single-request decoding
    for rounds in range(3):  # overlap is up to the scheduler: ask a few times until rows were batched
        together = concurrently([lambda m=m, i=i: ask(client, m, stream=i % 2 == 0) for i, m in enumerate(CHATS)])
        assert [t for t, _ in together] == texts
        if sum(spec["batched_tokens"] > 0 for _, spec in together) >= 2:
            break
    else:
        pytest.fail("the concurrent requests were never decoded together")


def test_a_speculating_request_joins_the_batch_at_a_round_boundary_and_stays_exact(client, library):
    long = 160
    expected = library(CHATS[0], long)
    others = [ask(client, m, stream=False)[0] for m in CHATS[1:4]]
    for attempt in range(3):
        stream = client.chat.completions.create(model="default_model", messages=CHATS[0], max_tokens=long,
                                                temperature=0.0, logit_bias=NO_EOS, stream=True)
        chunks = [next(stream), next(stream)]  # it is generating alone, speculating
        late = {}
        threads = [threading.Thread(target=lambda i=i, m=m: late.update({i: ask(client, m, stream=True)[0]}))
                   for i, m in enumerate(CHATS[1:4])]
        for t in threads:
            t.start()
        chunks += list(stream)
        for t in threads:
            t.join(120)
        spec = chunks[-1].model_extra["speculative"]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
        assert [late.get(i) for i in range(3)] == others
        if spec["rounds"] > 0 and spec["batched_tokens"] > 0:  # it speculated, then decoded in the batch
            break
    else:
        pytest.fail(f"the speculating request never joined the batch: {spec}")


def test_a_client_that_disconnects_mid_stream_leaves_the_other_rows_intact(server, client):
    expected = [ask(client, m, stream=False)[0] for m in CHATS[:3]]
    before = request_json(server.url, "GET", "/health")[1]["cancelled"]

    def quitter():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        body = {"messages": CHATS[5], "max_tokens": 2000, "stream": True, "logit_bias": NO_EOS,
                "draft_strategy": "none"}
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        for _ in range(6):  # a few events, then hang up
            resp.fp.readline()
        conn.sock.close()
        conn.close()
        return "gone"

    got = concurrently([quitter] + [lambda m=m, i=i: ask(client, m, stream=i % 2 == 0)[0]
                                    for i, m in enumerate(CHATS[:3])])
    assert got[1:] == expected
    deadline = 0
    while request_json(server.url, "GET", "/health")[1]["cancelled"] == before and deadline < 100:
        threading.Event().wait(0.1)
        deadline += 1
    health = request_json(server.url, "GET", "/health")[1]
    assert health["cancelled"] > before and not health["busy"], health
    assert ask(client, CHATS[0], stream=True)[0] == expected[0]  # and the server goes on


def test_per_request_settings_hold_in_a_batch(client):
    """Different max_tokens, stop strings and logprobs in one batch, each row its own."""
    alone_stop = ask(client, CHATS[0], stream=False)[0]
    stop = alone_stop[5:8]

    def short():
        r = client.chat.completions.create(model="default_model", messages=CHATS[1], max_tokens=3,
                                           temperature=0.0, logit_bias=NO_EOS, logprobs=True, top_logprobs=2)
        return r.choices[0].finish_reason, r.usage.completion_tokens, r.choices[0].logprobs.content

    def stopped():
        r = client.chat.completions.create(model="default_model", messages=CHATS[0], max_tokens=MAX, stop=[stop],
                                           temperature=0.0, logit_bias=NO_EOS)
        return r.choices[0].finish_reason, r.choices[0].message.content

    def sampled():
        r = client.chat.completions.create(model="default_model", messages=CHATS[2], max_tokens=MAX,
                                           temperature=1.0, top_p=0.9, logit_bias=NO_EOS)
        return r.choices[0].finish_reason, r.usage.completion_tokens

    (fin, n, entries), (fin2, text), (fin3, n3) = concurrently([short, stopped, sampled])
    assert fin == "length" and n == 3 and len(entries) == 3
    assert all(len(e.top_logprobs) == 2 and e.logprob <= 0 for e in entries)
    assert entries[0].logprob == pytest.approx(max(t.logprob for t in entries[0].top_logprobs))  # greedy: the top
    assert fin2 == "stop" and text == alone_stop[: alone_stop.find(stop)]
    assert fin3 == "length" and n3 == MAX
