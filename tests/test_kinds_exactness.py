"""Spec: the drafter kinds of issue 15 keep sampling exact under every rejection-style acceptor.

For each kind, the joint of the first 3 tokens at T=1 over seeded generations on a tiny-vocabulary
qwen3 target matches the target's enumerated joint (chi-square, alpha 1e-3), and a planted wrong
variant of the same drafter fails the same test at the same sample size (its p-value is printed;
the assertion demands < 1e-6), which is the power of the test: a fault that shifts the joint as
much as the planted one cannot pass.

N per kind (EAGLE-3 1000, MTP 600, DeepSeek-style MTP 600; ~17 CPU ms per 3-token generation on this 2-core machine, so
10-17 CPU s per case). Power at those N, measured: reporting ``(q + uniform) / 2`` instead of q
gives p ~ 1e-5 at N = 600 and 5e-8 at 1000 for the EAGLE-3 head (its q is already close to
uniform on its 5 tokens), p ~ 2e-15 for the MTP head at 600; EAGLE-3 proposing draft-vocabulary
ids unmapped gives p = 0. Correct drafters give p ~ 0.5-0.8. The DeepSeek-style MTP head
(``deepseek_v3`` target: MLA + MoE, ~50 CPU ms per generation, so N = 400 and ~20 s per case)
draws a flatter q on a less peaked target (a peaked one makes block and rejection draw the same
samples); there the (q + uniform) / 2 fault gives only p ~ 7e-5 at N = 400, so its planted fault is
reporting q at half the temperature (``q^2`` renormalised): p ~ 5e-8. DFlash2 (N = 600, 5
selector candidates, so q is zero on 3 of the 8 tokens): correct p ~ 0.4-0.6 over four seeds,
(q + uniform) / 2 gives p ~ 4e-8. Gemma-4's assistant (N = 900, a vocabulary-8 gemma4_text target
with window 4): correct p ~ 0.4-0.5; its q is flat enough that (q + uniform) / 2 gives only p ~ 0.2
at N = 600, so its planted fault is q at half the temperature: p ~ 3e-17. On the shared 2-core machine these cases took 20-40 s each.
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx_specdec_plugin.sampling import make_sampler  # mlx-lm's arguments and draws, with a known distribution

from mlx_specdec_plugin.testing.drafters import (DEEPSEEK_TINY, QWEN_GDN, add_deepseek_mtp, add_qwen_mtp, write_dflash2,
                                                 write_eagle3, write_gemma4_assistant)
from exactness import chi_square_pvalue, exact_joint
from mlx_specdec_plugin.drafters import load_drafter
from mlx_specdec_plugin.contract import Draft
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_model, tiny_config

VOCAB = 8
PROMPT = [1, 2, 3]
ALPHA = 1e-3
SAMPLES = {"eagle3": 1000, "mtp": 600, "mtp-deepseek": 400, "dflash2": 600, "assistant": 900}
STRATEGY = {"eagle3": "eagle3", "mtp": "mtp", "mtp-deepseek": "mtp", "dflash2": "dflash2", "assistant": "assistant"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds_exact")
    config = tiny_config("qwen3", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=3)
    model = make_tiny_model(config, seed=1, sharpness=3)
    target_dir = save_model(root / "target", model, config, tokenizer=False)
    drafters = {
        # a 5-token draft vocabulary: q is zero on 3 tokens the target can emit
        "eagle3": load_drafter(write_eagle3(root / "eagle3", target_dir, aux_layer_ids=(1, 2, 3),
                                            draft_tokens=[0, 2, 3, 5, 6], seed=3, scale=0.3), model),
    }
    # DFlash2: 5 selector candidates per position, so q is zero on 3 tokens the target can emit
    drafters["dflash2"] = load_drafter(write_dflash2(root / "dflash2", target_dir, target_layer_ids=(0, 2),
                                                     selector_top_k=5, selector_rank=4, seed=4, scale=0.5,
                                                     output_multiplier=0.3), model)
    joints = {k: exact_joint(model, PROMPT, 3, VOCAB, dict(temp=1.0), {}) for k in drafters}
    # native MTP: a Gated-DeltaNet hybrid qwen3_5 target carrying its own mtp.* head
    config = tiny_config("qwen3_5", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2,
                         **{**QWEN_GDN, "num_attention_heads": 2, "num_key_value_heads": 1})
    hybrid = make_tiny_model(config, seed=1, sharpness=3)
    hybrid_dir = add_qwen_mtp(save_model(root / "qwen3_5", hybrid, config, tokenizer=False), seed=3, scale=0.5)
    models = {k: model for k in drafters}
    drafters["mtp"], models["mtp"] = load_drafter(hybrid_dir, hybrid), hybrid
    joints["mtp"] = exact_joint(hybrid, PROMPT, 3, VOCAB, dict(temp=1.0), {})
    # DeepSeek-V3-style MTP: an MLA + MoE deepseek_v3 target carrying model.layers.{N}.*
    config = tiny_config("deepseek_v3", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, **DEEPSEEK_TINY)
    deepseek = make_tiny_model(config, seed=1, sharpness=1.0)
    deepseek_dir = add_deepseek_mtp(save_model(root / "deepseek_v3", deepseek, config, tokenizer=False), deepseek,
                                    seed=5, scale=0.5)
    drafters["mtp-deepseek"], models["mtp-deepseek"] = load_drafter(deepseek_dir, deepseek), deepseek
    joints["mtp-deepseek"] = exact_joint(deepseek, PROMPT, 3, VOCAB, dict(temp=1.0), {})
    # Gemma-4's assistant: a gemma4_text target (sliding window 4, so the 3-token prompt and its drafts
    # outgrow it) whose keys/values the assistant reads
    config = tiny_config("gemma4_text", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=4, head_dim=8,
                         global_head_dim=16, num_kv_shared_layers=1, hidden_size_per_layer_input=8,
                         vocab_size_per_layer_input=VOCAB, sliding_window=4, sliding_window_pattern=2,
                         final_logit_softcapping=30.0, tie_word_embeddings=True)
    gemma = make_tiny_model(config, seed=1, sharpness=2)
    gemma_dir = save_model(root / "gemma4", gemma, config, tokenizer=False)
    drafters["assistant"] = load_drafter(write_gemma4_assistant(root / "assistant", gemma_dir, seed=3, scale=1.0), gemma)
    models["assistant"] = gemma
    joints["assistant"] = exact_joint(gemma, PROMPT, 3, VOCAB, dict(temp=1.0), {})
    return models, drafters, joints


def generate(model, drafter, strategy, acceptor, n, wrap=None):
    mx.random.seed(1234)
    target, samples, stats = None, [], SpecStats()
    for _ in range(n):
        target, proposer, spec, sampling, _, k = prepare(
            model, drafter, draft_strategy=strategy, acceptor=acceptor,
            sampler=make_sampler(temp=1.0), num_draft_tokens=2, target=target,
        )
        if wrap is not None:
            proposer = wrap(proposer)
        gen = speculative_generate_step(mx.array(PROMPT), target, proposer, spec.accept, num_draft_tokens=k,
                                        max_tokens=3, sampling=sampling, stats=stats)
        samples.append(tuple(t for t, _, _ in gen))
    return samples, stats


class _Planted:
    """A wrapped proposer with a planted fault in what it proposes."""

    def __init__(self, inner):
        self.inner, self.tap_layers, self.cap = inner, inner.tap_layers, inner.cap

    def extend(self, tokens, hidden):
        self.inner.extend(tokens, hidden)


class _MixedQ(_Planted):
    """Planted fault (any kind): drafts from q but reports ``(q + uniform) / 2``."""

    def propose(self, ctx, n):
        d = self.inner.propose(ctx, n)
        return Draft(d.tokens, 0.5 * d.q + 0.5 / d.q.shape[-1], d.deterministic)


class _SharpQ(_Planted):
    """Planted fault (any kind): drafts from q but reports it at half the temperature,
    ``q^2 / sum q^2`` (the reported row forgot a temperature the draw applied)."""

    def propose(self, ctx, n):
        d = self.inner.propose(ctx, n)
        q2 = d.q * d.q
        return Draft(d.tokens, q2 / q2.sum(axis=-1, keepdims=True), d.deterministic)


class _ForgetsD2T(_Planted):
    """Planted EAGLE-3 fault: proposes draft-vocabulary ids as if they were target ids (the
    reported q is the right one)."""

    def propose(self, ctx, n):
        draft = self.inner.propose(ctx, n)
        hot = self.inner.drafter.hot.tolist()
        wrong = [hot.index(t) for t in draft.tokens.tolist()]
        return Draft(mx.array(wrong, dtype=mx.uint32), draft.q, draft.deterministic)


PLANTED = [("eagle3", _MixedQ), ("eagle3", _ForgetsD2T), ("mtp", _MixedQ), ("mtp-deepseek", _SharpQ), ("dflash2", _MixedQ),
           ("assistant", _SharpQ)]


@pytest.mark.parametrize("acceptor", ["rejection", "block"])
@pytest.mark.parametrize("kind", list(SAMPLES))
def test_new_kinds_keep_sampling_exact(world, kind, acceptor):
    models, drafters, joints = world
    model, joint = models[kind], joints[kind]
    samples, stats = generate(model, drafters[kind], STRATEGY[kind], acceptor, SAMPLES[kind])
    p = chi_square_pvalue(samples, joint)
    print(f"{kind} x {acceptor}: N={SAMPLES[kind]} p={p:.3g} accepted {stats.accepted}/{stats.proposed}")
    assert p > ALPHA
    assert 0 < stats.accepted < stats.proposed  # both paths ran


@pytest.mark.parametrize("kind, fault", PLANTED, ids=[f"{k}-{f.__name__}" for k, f in PLANTED])
def test_the_test_catches_a_planted_fault(world, kind, fault):
    models, drafters, joints = world
    model, joint = models[kind], joints[kind]
    samples, _ = generate(model, drafters[kind], STRATEGY[kind], "rejection", SAMPLES[kind], wrap=fault)
    p = chi_square_pvalue(samples, joint)
    print(f"planted {kind} fault {fault.__name__}: N={SAMPLES[kind]} p={p:.3g}")
    assert p < 1e-6
