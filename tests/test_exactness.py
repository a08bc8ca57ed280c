"""Spec: the speculative loop emits tokens distributed exactly as the target would sample them.

The joint of the first 3 generated tokens over 10,000 seeded generations is compared with the
target's exact joint (enumerated from mlx-lm's own processors and filters) by a chi-square test
(alpha 1e-3), for every exact acceptor x sampling configuration. Planted wrong acceptors must fail it.

Power (why 10,000, not the 20,000 of earlier releases): these whole-loop tests prove the
integration (draft chain, verify rows, per-row processor histories, cache rollback, emission) for
every acceptor x configuration; the acceptance rules themselves are checked on given p and q at
30,000 rounds each in ``test_acceptors.py``. The planted acceptor that keeps every draft fails here
with p ~ 0 (below 1e-300), and so does one that is wrong in only 1 round in 10 (asserted below
1e-12; measured p ~ 1e-90). The smallest such fraction the test catches grows by
sqrt(2), from ~2.5 % to ~3.5 % of rounds (noncentrality ~ n * fraction^2), measured with this
mixture at n = 5,000 and 8,000 (p ~ 1e-3 at 5 %, n = 5,000).
"""

import random

import mlx.core as mx
import pytest
from mlx_lm.sample_utils import make_logits_processors
from mlx_lm.sample_utils import make_sampler as mlx_lm_make_sampler

from exactness import CONFIGS, chi_square_pvalue, exact_joint
from mlx_specdec_plugin.acceptors import AcceptorSpec
from mlx_specdec_plugin.contract import Verdict
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.plugins import registry
from mlx_specdec_plugin.sampling import SamplingParams
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config
from tiny_lm import ContextLM, perturbed

VOCAB = 6
PROMPT = [1, 2, 3]
SAMPLES = 10_000
ALPHA = 1e-3  # runs are seeded, so the verdict is deterministic


def draw(target_model, draft_model, acceptor, sampler_kw, proc_kw, n, strategy=None, k=2, tokens=3, prompt=PROMPT):
    """n independent generations of `tokens` tokens through prepare() + the loop. Acceptors that need
    p get SamplingParams (what the front ends build); ``match`` gets mlx-lm's own sampler and
    processors, which are opaque to us: match must be exact for any sampler."""
    mx.random.seed(1234)
    target = None
    samples = []
    if acceptor == "match":
        drawing = dict(sampler=mlx_lm_make_sampler(**sampler_kw), logits_processors=make_logits_processors(**proc_kw))
    else:
        drawing = dict(sampling=SamplingParams(**sampler_kw, **proc_kw))
    for _ in range(n):
        target, proposer, spec, sampling, _, _ = prepare(
            target_model,
            draft_model,
            draft_strategy=strategy,
            acceptor=acceptor if isinstance(acceptor, str) else "rejection",
            num_draft_tokens=k,
            target=target,
            **drawing,
        )
        if acceptor == "match":
            assert not sampling.known  # nothing is read from mlx-lm's sampler
        accept = spec.accept if isinstance(acceptor, str) else acceptor
        gen = speculative_generate_step(
            mx.array(prompt), target, proposer, accept, num_draft_tokens=k, max_tokens=tokens, sampling=sampling
        )
        samples.append(tuple(t for t, _, _ in gen))
    return samples


@pytest.fixture(scope="module")
def pair():
    target = ContextLM(VOCAB, 8, seed=1)
    return target, perturbed(target, seed=2)


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("acceptor", ["rejection", "block", "match"])
def test_loop_is_exact(pair, acceptor, config):
    target, draft = pair
    sampler_kw, proc_kw = CONFIGS[config]
    joint = exact_joint(target, PROMPT, 3, VOCAB, sampler_kw, proc_kw)
    samples = draw(target, draft, acceptor, sampler_kw, proc_kw, SAMPLES, strategy="draft-model")
    assert chi_square_pvalue(samples, joint) > ALPHA


@pytest.mark.parametrize("acceptor", ["rejection", "block"])
def test_lookup_point_mass_drafts_are_exact(pair, acceptor):
    target, _ = pair
    sampler_kw, proc_kw = CONFIGS["T1"]
    prompt = [1, 2, 1, 2, 1]  # repetitive, so that lookup proposes on most rounds
    joint = exact_joint(target, prompt, 3, VOCAB, sampler_kw, proc_kw)
    samples = draw(target, None, acceptor, sampler_kw, proc_kw, SAMPLES, strategy="lookup", prompt=prompt)
    assert chi_square_pvalue(samples, joint) > ALPHA


def accept_always(draft, scores):
    """A wrong acceptor: keeps every draft, then samples the bonus from the target."""
    g = len(draft)
    return Verdict(g, int(scores.sample()[g].item()))


def test_the_test_catches_a_wrong_acceptor(pair):
    target, draft = pair
    sampler_kw, proc_kw = CONFIGS["T1"]
    joint = exact_joint(target, PROMPT, 3, VOCAB, sampler_kw, proc_kw)
    samples = draw(target, draft, accept_always, sampler_kw, proc_kw, SAMPLES, strategy="draft-model")
    assert chi_square_pvalue(samples, joint) < 1e-12


def test_the_test_catches_an_acceptor_wrong_in_one_round_in_ten(pair):
    """The power at SAMPLES: rejection sampling, except that one round in ten (its own seeded coin)
    keeps every draft."""
    target, draft = pair
    sampler_kw, proc_kw = CONFIGS["T1"]
    coin = random.Random(0)
    rejection = registry().acceptor("rejection").accept

    def sometimes_wrong(d, scores):
        return accept_always(d, scores) if coin.random() < 0.1 else rejection(d, scores)

    joint = exact_joint(target, PROMPT, 3, VOCAB, sampler_kw, proc_kw)
    samples = draw(target, draft, sometimes_wrong, sampler_kw, proc_kw, SAMPLES, strategy="draft-model")
    assert chi_square_pvalue(samples, joint) < 1e-12


def test_real_mlx_lm_model_is_exact():
    """The same check on a real mlx-lm llama (real caches, attention, RoPE), one configuration."""
    cfg = tiny_config("llama", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1)
    target = make_tiny_model(cfg, seed=1, sharpness=3)
    draft = make_tiny_model(cfg, seed=2, sharpness=3)
    sampler_kw, proc_kw = CONFIGS["repetition_penalty1.3"]
    joint = exact_joint(target, PROMPT, 3, VOCAB, sampler_kw, proc_kw)
    samples = draw(target, draft, "rejection", sampler_kw, proc_kw, SAMPLES, strategy="draft-model")
    assert chi_square_pvalue(samples, joint) > ALPHA
