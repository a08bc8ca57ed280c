"""Spec: at temperature 1 the loop samples a hybrid (Gated DeltaNet + attention) target exactly.

The joint of the first 3 generated tokens over many seeded generations (vocabulary 6, a different
random hybrid as draft model, rejection sampling, 2 drafts per round, so most generations roll
the recurrent state back at least once) is compared by a chi-square test with the target's
joint enumerated from full, cache-free forwards. Sample count: what fits in about a minute on
a shared 2-core CPU (a generation costs 8-12 ms here); the same count fails a planted rollback bug
(the recurrent state after all verified tokens kept) with p ~ 0.
"""

import mlx.core as mx

from exactness import chi_square_pvalue, exact_joint
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.sampling import SamplingParams
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config
from test_caches import GDN

VOCAB = 6
PROMPT = [1, 2, 3]
SAMPLES = 4_500
ALPHA = 1e-3  # seeded, so the verdict is deterministic


def hybrid(seed: int):
    config = tiny_config("qwen3_5", vocab_size=VOCAB, num_hidden_layers=2, hidden_size=16, **GDN)
    return make_tiny_model(config, seed=seed, sharpness=2)


def draw(target_model, draft_model, n: int, stats: SpecStats):
    mx.random.seed(4321)
    target, samples = None, []
    for _ in range(n):
        target, proposer, spec, sampling, _, k = prepare(
            target_model, draft_model, draft_strategy="draft-model", acceptor="rejection",
            sampling=SamplingParams(temp=1.0), num_draft_tokens=2, target=target,
        )
        gen = speculative_generate_step(
            mx.array(PROMPT), target, proposer, spec.accept, num_draft_tokens=k, max_tokens=3,
            sampling=sampling, stats=stats,
        )
        samples.append(tuple(t for t, _, _ in gen))
    return samples


def test_hybrid_target_is_sampled_exactly():
    target, draft = hybrid(1), hybrid(2)
    joint = exact_joint(target, PROMPT, 3, VOCAB, dict(temp=1.0), {})
    stats = SpecStats()
    samples = draw(target, draft, SAMPLES, stats)
    partial = sum(1 for r in stats.rounds if r.accepted < r.proposed)
    assert partial > SAMPLES // 2, "most generations must roll the target back"
    assert chi_square_pvalue(samples, joint) > ALPHA
