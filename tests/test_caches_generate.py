"""Spec: targets with non-trimmable caches decode token-identically to mlx-lm's plain greedy decoding.

Targets: a Gated DeltaNet hybrid (``qwen3_5``: ArraysCache + KVCache; rollback by captured
per-position states), the same with capture disabled (rollback by replay), a Mamba-2 hybrid
(``falcon_h1``: CacheList(ArraysCache, KVCache); replay) and a sliding-window ``gemma3_text``
(window 8: RotatingKVCache + KVCache), generating 72 tokens so the window wraps many times.
Drafters: ``lookup``; ``draft-model`` with the target itself (every draft accepted; its own cache
is rolled back through width-1 feeds) and with a different random model of the same kind
(mostly rejected).

Block drafters (``dspark``, ``dflash``) on the same kinds of targets: ``test_caches_drafters.py``
(``falcon_h1`` has no hidden-state tap forward yet, so it is not among them).
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx_lm.generate import generate_step

from mlx_specdec_plugin import recurrent
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config
from test_caches import FALCON_H1, GDN

VOCAB = 32
MAX_TOKENS = 72
PROMPTS = [[3, 1, 4, 1, 5, 9, 2, 6], [7, 7, 7, 1, 2, 7, 7, 7, 1]]
TARGETS = {
    "qwen3_5-capture": tiny_config("qwen3_5", vocab_size=VOCAB, num_hidden_layers=4, **GDN),
    "qwen3_5-replay": tiny_config("qwen3_5", vocab_size=VOCAB, num_hidden_layers=4, **GDN),
    "falcon_h1-replay": tiny_config("falcon_h1", vocab_size=VOCAB, **FALCON_H1),
    "gemma3-window8": tiny_config("gemma3_text", vocab_size=VOCAB, num_hidden_layers=4, sliding_window=8),
}
STRATEGIES = ["lookup", "draft-model-self", "draft-model-other"]


@pytest.fixture(scope="module", params=list(TARGETS))
def models(request):
    config = TARGETS[request.param]
    target = make_tiny_model(config, seed=1, sharpness=4)
    other = make_tiny_model(config, seed=2, sharpness=4)
    if request.param.endswith("-replay") and recurrent.CAPTURES.get(config["model_type"]):
        saved = recurrent.CAPTURES.pop(config["model_type"])
        yield target, other
        recurrent.CAPTURES[config["model_type"]] = saved
    else:
        yield target, other


_PLAIN = {}


def plain(model, prompt):
    """mlx-lm's plain greedy decoding of ``prompt`` (computed once per model and prompt)."""
    key = (id(model), tuple(prompt))
    if key not in _PLAIN:
        _PLAIN[key] = (model, [int(t) for t, _ in generate_step(mx.array(prompt), model, max_tokens=MAX_TOKENS)])
    return list(_PLAIN[key][1])


def speculative(target_model, draft_model, strategy, prompt, k, stats):
    target, proposer, spec, sampling, _, k = prepare(
        target_model, draft_model, draft_strategy=strategy, num_draft_tokens=k
    )
    gen = speculative_generate_step(
        mx.array(prompt), target, proposer, spec.accept, num_draft_tokens=k, max_tokens=MAX_TOKENS,
        sampling=sampling, stats=stats,
    )
    return [t for t, _, _ in gen]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("k", [2, 5])
def test_greedy_is_token_identical_to_plain_decoding(models, strategy, k):
    target, other = models
    for prompt in PROMPTS:
        stats = SpecStats()
        if strategy == "lookup":
            out = speculative(target, None, "lookup", prompt, k, stats)
        else:
            draft = target if strategy == "draft-model-self" else other
            out = speculative(target, draft, "draft-model", prompt, k, stats)
        assert out == plain(target, prompt)
        if strategy == "draft-model-self":
            assert stats.accepted == stats.proposed > 0  # every round fully accepted
        if strategy == "draft-model-other":  # rounds where every draft is rejected
            assert any(r.proposed > 0 and r.accepted == 0 for r in stats.rounds)
