"""Spec: at temperature 0 every strategy's output is token-identical to mlx-lm's own decoding."""

import mlx.core as mx
import mlx_lm
import pytest
from mlx_lm.generate import generate_step

from mlx_specdec_plugin import SpecStats, generate, stream_generate
from mlx_specdec_plugin.testing.tiny import save_tiny_model

PROMPTS = [
    "def fib(n): return fib(n-1) + fib(n-2) if n > 1 else n\ndef fib",
    "the cat sat on the mat. the cat sat on the",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
]
MAX_TOKENS = 64


@pytest.fixture(scope="module", params=["llama", "qwen3", "qwen2"])
def models(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    target, tok = mlx_lm.load(str(save_tiny_model(root / "t", request.param, seed=1, sharpness=6)))
    other, _ = mlx_lm.load(str(save_tiny_model(root / "d", request.param, seed=2, sharpness=6, hidden_size=16)))
    return target, other, tok


_REFERENCES = {}


def reference_tokens(model, tok, prompt):
    """mlx-lm's plain greedy decoding of ``prompt`` (computed once per model and prompt)."""
    key = (id(model), prompt)
    if key not in _REFERENCES:
        ids = mx.array(tok.encode(prompt))
        _REFERENCES[key] = (model, [t for t, _ in generate_step(ids, model, max_tokens=MAX_TOKENS)])
    return list(_REFERENCES[key][1])


def spec_tokens(model, tok, prompt, **kw):
    return [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, **kw)]


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("strategy", ["lookup", "draft-model", "draft-model-self"])
@pytest.mark.parametrize("k", [1, 4])
def test_greedy_equals_plain_decoding(models, prompt, strategy, k):
    target, other, tok = models
    ref = reference_tokens(target, tok, prompt)
    stats = SpecStats()
    if strategy == "lookup":
        kw = dict(draft_strategy="lookup")
    elif strategy == "draft-model":
        kw = dict(draft_model=other)  # mostly rejected
    else:
        kw = dict(draft_model=target)  # the target drafting for itself: everything accepted
    out = spec_tokens(target, tok, prompt, num_draft_tokens=k, stats=stats, **kw)
    eos = set(tok.eos_token_ids)
    expected = ref[: next((i for i, t in enumerate(ref) if t in eos), len(ref))]
    assert out[: len(expected)] == expected
    if strategy == "draft-model-self":
        assert stats.accepted == stats.proposed > 0


def test_generate_text_matches_mlx_lm(models):
    target, _, tok = models
    for prompt in PROMPTS:
        ref = mlx_lm.generate(target, tok, prompt, max_tokens=MAX_TOKENS)
        assert generate(target, tok, prompt, max_tokens=MAX_TOKENS, draft_strategy="lookup") == ref
        assert generate(target, tok, prompt, max_tokens=MAX_TOKENS, draft_model=target) == ref


def test_responses_carry_upstream_fields_and_stats(models):
    target, _, tok = models
    responses = list(stream_generate(target, tok, PROMPTS[1], max_tokens=20, draft_model=target))
    last = responses[-1]
    assert last.finish_reason in ("length", "stop")
    assert last.generation_tokens == len(responses)
    assert any(r.from_draft for r in responses)
    assert last.spec.strategy == "draft-model" and last.spec.acceptor == "greedy"
    assert last.spec.num_rounds >= 1 and last.spec.mean_accepted_length > 1
    assert last.logprobs.shape == (target.args.vocab_size,)


def test_without_drafter_it_is_mlx_lm(models):
    target, _, tok = models
    ref = mlx_lm.generate(target, tok, PROMPTS[0], max_tokens=16)
    assert generate(target, tok, PROMPTS[0], max_tokens=16) == ref
