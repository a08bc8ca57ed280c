"""Spec: bad input gets one clear error before any generation starts."""

import mlx_lm
import pytest

from mlx_specdec_plugin import generate, make_sampler, stream_generate
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_tiny_model, tiny_config


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return mlx_lm.load(str(save_tiny_model(tmp_path_factory.mktemp("t") / "m", "llama", seed=1)))


def first(gen):
    return next(iter(gen))


def test_draft_vocabulary_must_match(target):
    model, tok = target
    draft = make_tiny_model(tiny_config("llama", vocab_size=300), seed=3)
    with pytest.raises(ValueError, match=r"vocabulary \(300\) differs from the target's \(258\)"):
        first(stream_generate(model, tok, "hi", draft_model=draft))


def test_unknown_strategy_lists_installed(target):
    model, tok = target
    with pytest.raises(ValueError, match=r"unknown draft strategy 'nope'; installed: .*draft-model.*lookup"):
        first(stream_generate(model, tok, "hi", draft_strategy="nope"))


def test_unknown_acceptor_lists_installed(target):
    model, tok = target
    with pytest.raises(ValueError, match=r"unknown acceptor 'nope'; installed: block, greedy, match, rejection"):
        first(stream_generate(model, tok, "hi", draft_strategy="lookup", acceptor="nope"))


@pytest.mark.parametrize("k", [0, -2])
def test_num_draft_tokens_at_least_one(target, k):
    model, tok = target
    with pytest.raises(ValueError, match="num_draft_tokens must be >= 1"):
        first(stream_generate(model, tok, "hi", draft_strategy="lookup", num_draft_tokens=k))


def test_greedy_acceptor_refuses_sampling(target):
    model, tok = target
    with pytest.raises(ValueError, match="exact only at temperature 0"):
        first(stream_generate(model, tok, "hi", draft_strategy="lookup", acceptor="greedy", sampler=make_sampler(0.8)))


def test_rejection_refuses_an_opaque_sampler(target):
    model, tok = target
    opaque = lambda logprobs: logprobs.argmax(-1)  # noqa: E731
    with pytest.raises(ValueError, match="sampler is opaque"):
        first(stream_generate(model, tok, "hi", draft_strategy="lookup", acceptor="rejection", sampler=opaque))


def test_opaque_sampler_falls_back_to_match(target):
    model, tok = target
    opaque = lambda logprobs: logprobs.argmax(-1)  # noqa: E731
    responses = list(stream_generate(model, tok, "hi hi hi", draft_strategy="lookup", sampler=opaque, max_tokens=8))
    assert responses[-1].spec.acceptor == "match"


def test_draft_model_strategy_needs_a_draft(target):
    model, tok = target
    with pytest.raises(ValueError, match="needs a draft_model"):
        first(stream_generate(model, tok, "hi", draft_strategy="draft-model"))


def test_nothing_is_generated_before_the_error(target):
    model, tok = target
    gen = stream_generate(model, tok, "hi", draft_strategy="lookup", acceptor="nope")
    with pytest.raises(ValueError):
        next(gen)


def test_an_mlx_lm_sampler_is_opaque_match_keeps_it_exact(target):
    """Nothing is read from inside mlx-lm's sampler closures: it draws, ``auto`` picks ``match``, and
    acceptors that need p name what to pass instead."""
    from mlx_lm.sample_utils import make_sampler as mlx_lm_make_sampler

    model, tok = target
    sampler = mlx_lm_make_sampler(temp=0.8, top_p=0.9)
    responses = list(stream_generate(model, tok, "hi hi hi", draft_strategy="lookup", sampler=sampler, max_tokens=8))
    assert responses[-1].spec.acceptor == "match"
    with pytest.raises(ValueError, match=r"opaque .* pass sampling=SamplingParams\(\.\.\.\)"):
        first(stream_generate(model, tok, "hi", draft_strategy="lookup", acceptor="rejection", sampler=sampler))
