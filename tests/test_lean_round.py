"""Spec: the round's shortcuts change nothing but time.

* ``greedy_tokens`` equals mlx-lm's argmax of the normalised log-probabilities on every row,
  near ties included (those rows are decided on the normalised values), in float32 and bfloat16.
* ``Sampling.distribution`` of processed logits equals ``probs`` of the normalised ones for every
  filter combination.
* A quantized drafter is unpacked to float32 on the CPU: its drafts match the packed module's,
  and ``save_drafter`` still writes the packed checkpoint.
"""

import json

import mlx.core as mx
import mlx.nn as nn
import mlx_lm
import numpy as np
import pytest

from mlx_specdec_plugin.testing.drafters import write_dspark
from mlx_specdec_plugin import load_drafter, save_drafter
from mlx_specdec_plugin.sampling import Sampling, greedy_tokens, make_sampler, normalise
from mlx_specdec_plugin.testing.tiny import save_tiny_model


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_greedy_tokens_equal_argmax_of_logprobs_with_near_ties(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 500)).astype(np.float32) * 8
    for i in range(0, 64, 4):  # plant ties and near ties between the two best entries
        j, k = rng.choice(500, 2, replace=False)
        top = x[i].max() + 1.0
        x[i, j], x[i, k] = top, top + (0.0 if i % 8 == 0 else np.float32(1e-6) * (i % 3))
    logits = mx.array(x).astype(dtype)
    expected = mx.argmax(normalise(logits), axis=-1).tolist()
    assert greedy_tokens(logits) == expected


@pytest.mark.parametrize("kw", [dict(temp=0.7), dict(temp=1.0, min_p=0.1), dict(temp=1.2, top_k=5),
                                dict(temp=0.9, top_p=0.8), dict(temp=1.0, top_p=0.9, min_p=0.05, top_k=20)])
def test_distribution_of_processed_logits_equals_probs_of_logprobs(kw):
    sampling = Sampling.create(make_sampler(**kw))
    logits = mx.array(np.random.default_rng(1).standard_normal((6, 300)).astype(np.float32) * 4 + 30)
    a = sampling.distribution(logits)
    b = sampling.probs(normalise(logits))
    assert float(mx.abs(a - b).max()) < 1e-5


def test_quantized_drafter_is_unpacked_on_cpu_and_saved_packed(tmp_path):
    target_dir = save_tiny_model(tmp_path / "t", "qwen3", seed=1, num_hidden_layers=4, hidden_size=64)
    model, _ = mlx_lm.load(str(target_dir))
    write_dspark(tmp_path / "d", target_dir, layout="dflash_config", target_layer_ids=(0, 2), markov_rank=32)
    packed = load_drafter(tmp_path / "d", model, quantize={"bits": 4, "group_size": 32})
    saved = save_drafter(packed, tmp_path / "d4")
    unpacked = load_drafter(saved, model)  # a 4-bit checkpoint, loaded on the CPU
    kept = load_drafter(saved, model, unpack=False)
    assert any(isinstance(m, nn.QuantizedLinear) for _, m in kept.module.named_modules())
    assert not any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in unpacked.module.named_modules())
    assert unpacked.config.quantization == {"group_size": 32, "bits": 4}
    h = mx.random.normal((1, 5, 2 * 64))
    outs = []
    for d in (kept, unpacked):
        cache = d.make_cache()
        d.module.extend_context(cache, h)
        tokens = mx.array([[3, d.config.mask_token_id, d.config.mask_token_id]])
        outs.append(d.head(d.module.block(d.embed(tokens), cache)) + d.module.markov_head(mx.array([3])))
    assert float(mx.abs(outs[0] - outs[1]).max()) < 1e-3 * (1 + float(mx.abs(outs[0]).max()))
    again = save_drafter(unpacked, tmp_path / "again")
    assert json.loads((again / "config.json").read_text())["quantization"] == {"group_size": 32, "bits": 4}
    w = mx.load(str(again / "model.safetensors"))
    assert any(k.endswith(".scales") for k in w)  # the packed weights, not the float copies


def test_a_draft_model_round_of_k_drafts_costs_k_draft_forwards(tmp_path):
    """The last round's committed tokens go through the draft model with the pending token."""
    from mlx_specdec_plugin import SpecStats, stream_generate

    target, tok = mlx_lm.load(str(save_tiny_model(tmp_path / "t", "llama", seed=1, sharpness=6)))
    draft, _ = mlx_lm.load(str(save_tiny_model(tmp_path / "t", "llama", seed=1, sharpness=6)))
    calls = []
    base = type(draft)
    draft.__class__ = type("Counting", (base,), {"__call__": lambda self, x, cache=None: calls.append(x.shape[1])
                                                  or base.__call__(self, x, cache=cache)})
    stats = SpecStats()
    out = [r.token for r in stream_generate(target, tok, "the cat sat", max_tokens=33, draft_model=draft,
                                            num_draft_tokens=4, stats=stats)]
    assert len(out) == 33 and stats.accepted == stats.proposed  # the same weights: every draft kept
    assert len(stats.rounds) > 4
    # one forward per draft: the prompt (and later each round's unfed committed token) rides along
    # with the pending token's step instead of costing a forward of its own
    assert len(calls) == sum(r.proposed for r in stats.rounds)
    assert calls[0] == len(tok.encode("the cat sat")) and max(calls[1:]) == 2


def test_rounds_that_draft_nothing_cost_no_drafter_forward_and_drafting_resumes_on_the_same_context(tmp_path):
    """A block drafter queues the target's features while ``auto`` decodes plainly and projects
    them in one forward when it next drafts; its blocks are then the ones an eager update gives."""
    from mlx_specdec_plugin.contract import StrategyOptions
    from mlx_specdec_plugin.loop import speculative_generate_step
    from mlx_specdec_plugin.acceptors.greedy import accept as greedy
    from mlx_specdec_plugin.strategies import dspark
    from mlx_specdec_plugin.target import TargetAdapter

    target_dir = save_tiny_model(tmp_path / "t", "qwen3", seed=1, num_hidden_layers=4, hidden_size=64)
    model, _ = mlx_lm.load(str(target_dir))
    write_dspark(tmp_path / "d", target_dir, target_layer_ids=(0, 2))
    drafter = load_drafter(tmp_path / "d", model)
    target = TargetAdapter(model)
    lazy = dspark.build(target, drafter, StrategyOptions())
    projections = []
    extend = drafter.module.extend_context
    drafter.module.extend_context = lambda c, h: projections.append(h.shape[1]) or extend(c, h)

    schedule = [0] * 20 + [3] * 40  # twenty plain rounds, then drafting
    gen = speculative_generate_step(mx.array([5, 9, 11, 4]), target, lazy, greedy, num_draft_tokens=3,
                                    max_tokens=30, draft_length=lambda stats, cap: min(cap, schedule[len(stats.rounds)]))
    tokens = [t for t, _, _ in gen]
    assert len(tokens) == 30
    # the prompt's prefill (3 rows) and the plain stretch (20): one forward, before the first block
    assert projections[0] == 23
    assert len(projections) <= 1 + 10  # then one projection per drafting round at most

    eager = dspark.build(target, drafter, StrategyOptions())
    cache = target.make_cache()
    for chunk in ([5, 9, 11], [4]):
        _, hidden = target(mx.array([chunk], dtype=mx.uint32), cache, eager.tap_layers)
        eager.extend(chunk, hidden)
        eager.flush_context()
    for t in tokens[:19]:  # one row at a time, projected at once
        _, hidden = target(mx.array([[t]], dtype=mx.uint32), cache, eager.tap_layers)
        eager.extend([t], hidden)
        eager.flush_context()
    queued = dspark.build(target, drafter, StrategyOptions())
    cache2 = target.make_cache()
    _, hidden = target(mx.array([[5, 9, 11, 4] + tokens[:19]], dtype=mx.uint32), cache2, queued.tap_layers)
    queued.extend([5, 9, 11, 4] + tokens[:19], hidden)  # queued, projected by the block forward
    a, _ = eager.base_logits(tokens[19], 3)
    b, _ = queued.base_logits(tokens[19], 3)
    assert float(mx.abs(a - b).max()) < 1e-4 * (1 + float(mx.abs(a).max()))
