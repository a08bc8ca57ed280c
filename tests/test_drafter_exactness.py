"""Spec: DSpark and DFlash drafts (Markov-corrected q included) keep the loop exact under sampling,
for every exact acceptor: the joint of the first 3 tokens over seeded generations matches the
target's enumerated joint (chi-square), on a tiny-vocabulary qwen3 target.

4,000 generations per case (a generation with a block drafter costs ~5-10 ms here, so the core
issue's 20k x 6 cases would take ~15 CPU minutes); the power of the same test to catch a wrong rule
is shown in tests/test_exactness.py and tests/test_caches_exactness.py.
"""

import mlx.core as mx
import pytest

from mlx_specdec_plugin.testing.drafters import write_dflash, write_dspark
from exactness import chi_square_pvalue, exact_joint
from mlx_specdec_plugin.drafters import load_drafter
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.sampling import SamplingParams
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_model, tiny_config

VOCAB = 8
PROMPT = [1, 2, 3]
SAMPLES = 4_000
ALPHA = 1e-3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("drafter_exact")
    config = tiny_config("qwen3", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=3)
    model = make_tiny_model(config, seed=1, sharpness=3)
    target_dir = save_model(root / "target", model, config, tokenizer=False)
    drafters = {
        "dspark": load_drafter(write_dspark(root / "dspark", target_dir, markov_rank=4, block_size=3,
                                            mask_token_id=VOCAB - 1, seed=3, scale=2.0), model),
        "dflash": load_drafter(write_dflash(root / "dflash", target_dir, block_size=4,
                                            mask_token_id=VOCAB - 1, seed=3, scale=2.0), model),
    }
    return model, drafters


@pytest.mark.parametrize("acceptor", ["rejection", "block", "match"])
@pytest.mark.parametrize("strategy", ["dspark", "dflash"])
def test_block_drafters_keep_sampling_exact(world, strategy, acceptor):
    model, drafters = world
    joint = exact_joint(model, PROMPT, 3, VOCAB, dict(temp=1.0), {})
    mx.random.seed(1234)
    target, samples, stats = None, [], SpecStats()
    for _ in range(SAMPLES):
        target, proposer, spec, sampling, _, k = prepare(
            model, drafters[strategy], draft_strategy=strategy, acceptor=acceptor,
            sampling=SamplingParams(temp=1.0), num_draft_tokens=2, target=target,
        )
        gen = speculative_generate_step(mx.array(PROMPT), target, proposer, spec.accept, num_draft_tokens=k,
                                        max_tokens=3, sampling=sampling, stats=stats)
        samples.append(tuple(t for t, _, _ in gen))
    assert chi_square_pvalue(samples, joint) > ALPHA
    assert 0 < stats.accepted < stats.proposed  # drafts were kept and rejected: both paths ran
