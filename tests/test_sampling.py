"""Spec: the sampling chain is mlx-lm's (same filters, processors and draws), described by plain
SamplingParams; a sampler is never looked into."""

import mlx.core as mx
import pytest
from mlx_lm.sample_utils import greedy_sampler
from mlx_lm.sample_utils import make_logits_processors
from mlx_lm.sample_utils import make_sampler as mlx_lm_make_sampler

from mlx_specdec_plugin.sampling import Sampling, SamplingParams, make_sampler, params_from_sampler

KW = [
    dict(temp=0.0),
    dict(temp=1.0),
    dict(temp=0.7, top_p=0.9),
    dict(temp=1.0, top_k=5),
    dict(temp=1.0, min_p=0.1, min_tokens_to_keep=2),
    dict(temp=0.5, top_p=0.8, min_p=0.05, top_k=7),
]


def test_nothing_is_read_from_inside_a_sampler():
    """Known: no sampler, mlx-lm's greedy_sampler (what its make_sampler(temp=0) returns) and ours.
    mlx-lm's other samplers, XTC and any callable are opaque (drawn with, never looked into)."""
    assert params_from_sampler(None) == params_from_sampler(greedy_sampler) == SamplingParams()
    assert params_from_sampler(mlx_lm_make_sampler(temp=0.0)) == SamplingParams()
    assert params_from_sampler(make_sampler(0.7, top_p=0.9)) == SamplingParams(0.7, top_p=0.9)
    assert params_from_sampler(lambda x: x.argmax(-1)) is None
    assert params_from_sampler(mlx_lm_make_sampler(temp=0.7, top_p=0.9)) is None
    assert params_from_sampler(mlx_lm_make_sampler(temp=1.0, xtc_probability=0.5, xtc_threshold=0.1)) is None


def test_sampling_params_build_the_sampler_and_processors_the_engine_reads():
    params = SamplingParams(temp=0.8, top_k=5, repetition_penalty=1.3, logit_bias={2: -5.0})
    sampling = Sampling.create(params=params)
    assert sampling.known and sampling.params == SamplingParams(temp=0.8, top_k=5)
    logits, history = mx.random.normal((1, 8)), [1, 2]
    expected = logits
    for proc in make_logits_processors(logit_bias={2: -5.0}, repetition_penalty=1.3):
        expected = proc(mx.array(history), expected)
    assert mx.allclose(sampling.processed(logits, history), expected).item()
    xtc = Sampling.create(params=SamplingParams(temp=1.0, xtc_probability=0.5))
    assert not xtc.known  # XTC has no fixed distribution: mlx-lm's sampler draws, match accepts
    with pytest.raises(ValueError, match="sampling= .* or sampler=, not both"):
        Sampling.create(make_sampler(1.0), params=params)


@pytest.mark.parametrize("kw", KW)
def test_our_sampler_draws_what_mlx_lm_draws(kw):
    logprobs = mx.log(mx.softmax(mx.random.normal((4, 50)) * 2, axis=-1))
    mx.random.seed(11)
    ours = [make_sampler(**kw)(logprobs).tolist() for _ in range(5)]
    mx.random.seed(11)
    theirs = [mlx_lm_make_sampler(**kw)(logprobs).tolist() for _ in range(5)]
    assert ours == theirs


def test_probs_put_zero_mass_on_filtered_tokens():
    logprobs = mx.log(mx.array([[0.5, 0.3, 0.15, 0.05]]))
    sampling = Sampling.create(make_sampler(1.0, top_k=2))
    p = sampling.probs(logprobs)
    assert mx.allclose(p, mx.array([[0.625, 0.375, 0.0, 0.0]]), atol=1e-6).item()


def test_processors_see_each_rows_own_history():
    """Row i of a verify pass is penalised with the history up to its own position."""
    sampling = Sampling.create(None, make_logits_processors(repetition_penalty=2.0))
    logits = mx.ones((3, 4))
    history = [0, 1, 2]  # row 0 sees [0], row 1 sees [0, 1], row 2 sees [0, 1, 2]
    out = sampling.logprobs(logits, history)
    penalised = (out < out.max(axis=-1, keepdims=True)).tolist()
    assert penalised == [[True, False, False, False], [True, True, False, False], [True, True, True, False]]
