"""Spec: a bucketed KV cache (whole buffer + mask) changes no token, across many bucket edges."""

import mlx.core as mx
import pytest
from mlx_lm.generate import generate_step

from mlx_specdec_plugin.bucketed import BucketedKVCache, bucketed
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config


@pytest.mark.parametrize("model_type", ["llama", "qwen3", "gemma3_text"])
@pytest.mark.parametrize("strategy", ["lookup", "draft-model"])
def test_bucketed_cache_is_token_identical(model_type, strategy, monkeypatch):
    monkeypatch.setattr(BucketedKVCache, "step", 16)  # cross a bucket edge every few rounds
    model = make_tiny_model(tiny_config(model_type, num_hidden_layers=2), seed=1, sharpness=6)
    prompt = mx.array([5, 6, 7, 5, 6, 7, 5, 6])
    reference = [t for t, _ in generate_step(prompt, model, max_tokens=120)]
    target, proposer, spec, sampling, _, _ = prepare(
        model, model if strategy == "draft-model" else None, draft_strategy=strategy, num_draft_tokens=4
    )
    cache = bucketed(target.make_cache())
    assert any(type(c) is BucketedKVCache for c in cache)
    out = [t for t, _, _ in speculative_generate_step(
        prompt, target, proposer, spec.accept, num_draft_tokens=4, max_tokens=120, prompt_cache=cache)]
    assert out == reference
    assert all(c.keys.shape[2] % 16 == 0 for c in cache if type(c) is BucketedKVCache)
