"""Spec: a speculating request that joins the batch keeps the target's distribution.

The server's :class:`~mlx_specdec_plugin.server.batching.Engine` runs a request alone with speculation
and, when others are waiting, moves it into mlx-lm's ``BatchGenerator`` at its next round
boundary (the round's last token is the target's own draw, kept as the row's pending token). The
joint of the first 3 tokens over 800 sampled generations (T=1, rejection acceptor, a draft model
that differs from the target) is compared with the target's exact joint by a chi-square test.
Planted wrong: a handover that drops the round's last token and lets the batch draw it again
from p (it was a draw from the residual, given the rejection the round saw).
"""

import queue
import threading
from types import SimpleNamespace

import mlx.core as mx
import pytest

from exactness import chi_square_pvalue, exact_joint
from mlx_specdec_plugin.server.batching import Engine, Row
from mlx_specdec_plugin.plugins import registry
from mlx_specdec_plugin.server.prefix_cache import PrefixCache
from mlx_specdec_plugin.server.app import GenRequest, StopMatcher
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config

VOCAB = 4
PROMPT = [1, 2, 3]
SAMPLES = 800
ALPHA = 1e-3  # seeded: the verdict is deterministic


class Detokenizer:
    """One character per token (the rows' text is not what is measured here)."""

    def __init__(self):
        self.text, self.offset = "", 0

    def add_token(self, t):
        self.text += chr(65 + t)

    def finalize(self):
        pass

    @property
    def last_segment(self):
        out, self.offset = self.text[self.offset:], len(self.text)
        return out


class Tokenizer:
    eos_token_ids = ()

    @property
    def detokenizer(self):
        return Detokenizer()


class Job:
    def __init__(self, req, prompt):
        self.req, self.prompt, self.cancelled, self.events = req, prompt, threading.Event(), []

    def post(self, event):
        self.events.append(event)


class Host:
    """What the engine needs from the server's worker."""

    def __init__(self, model, draft):
        self.model, self.draft, self.tokenizer = model, draft, Tokenizer()
        self.target = TargetAdapter(model)
        self.prefix_cache = PrefixCache(0)
        self.state = SimpleNamespace(registry=registry(), prefill_step_size=512)
        self.strategy_options = {}
        self.jobs = queue.Queue()
        self.rows, self.failures = [], []

    def make_row(self, job):
        row = Row(job, self.tokenizer, StopMatcher([]), None, lambda *a: {})
        self.rows.append(row)
        return row

    def cache_key(self, req):
        return None

    def fail(self, job, exc, emitted):
        self.failures.append(exc)

    def finished(self, outcome):
        pass


def request(max_tokens=3, **kw):
    fields = dict(kind="text", model="m", stream=False, include_usage=False, max_tokens=max_tokens,
                  max_tokens_explicit=True, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, repetition_penalty=None,
                  repetition_context_size=20, presence_penalty=None, presence_context_size=20,
                  frequency_penalty=None, frequency_context_size=20, logit_bias=None, stop=[], seed=None,
                  draft_strategy="draft-model", acceptor="rejection", num_draft_tokens=1, block_size=None)
    fields.update(kw)
    return GenRequest(**fields)


class DropsTheLastToken(Engine):
    """Planted wrong: hands a row over without its pending token (the batch draws it again)."""

    def _join_row(self, row, cache):
        if row.generated:
            row.generated.pop()
        super()._join_row(row, cache)


def draw(engine_cls, host, n):
    mx.random.seed(7)
    engine = engine_cls(host)
    host.jobs.put(object())  # someone is waiting: the request joins the batch at its first boundary
    samples, handed_over = [], 0
    for _ in range(n):
        host.rows.clear()
        engine.serve_now(Job(request(), PROMPT))
        (row,) = host.rows
        samples.append(tuple(row.generated))
        handed_over += row.batched > 0
    assert not host.failures, host.failures
    return samples, handed_over


@pytest.fixture(scope="module")
def models():
    config = tiny_config("llama", vocab_size=VOCAB, hidden_size=16)
    # a flat target and a sharpened copy of it as the draft: it over-proposes the likeliest token
    return make_tiny_model(config, seed=1, sharpness=0.5), make_tiny_model(config, seed=1, sharpness=4)


def test_a_request_handed_over_to_the_batch_keeps_the_targets_distribution(models):
    target, draft = models
    host = Host(target, draft)
    joint = exact_joint(target, PROMPT, 3, VOCAB, dict(temp=1.0), {})
    samples, handed_over = draw(Engine, host, SAMPLES)
    assert handed_over == SAMPLES  # every generation went through the handover
    assert all(len(s) == 3 for s in samples)
    assert chi_square_pvalue(samples, joint) > ALPHA

    wrong, _ = draw(DropsTheLastToken, host, SAMPLES)
    assert chi_square_pvalue(wrong, joint) < 1e-6
