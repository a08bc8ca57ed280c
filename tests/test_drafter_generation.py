"""Spec: with dspark / dflash drafting, greedy output is token-identical to mlx-lm's plain decoding
(tiny random qwen3 and llama targets, 3 prompts x 64 tokens), whether the drafter is good (many
drafts accepted), random, or always wrong (every draft rejected)."""

from __future__ import annotations

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from mlx_lm.generate import generate_step
from mlx_lm.sample_utils import make_logits_processors

from mlx_specdec_plugin.testing.drafters import write_dflash, write_dspark
from mlx_specdec_plugin import SpecStats, load_drafter, stream_generate
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.sampling import make_sampler
from mlx_specdec_plugin.testing.tiny import save_tiny_model

PROMPTS = [
    "def fib(n): return fib(n-1) + fib(n-2) if n > 1 else n\ndef fib",
    "the cat sat on the mat. the cat sat on the",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
]
MAX_TOKENS = 64
TAPS = (0, 2)


def reference(model, tok, prompt, logits_processors=None):
    ids = mx.array(tok.encode(prompt))
    out = [t for t, _ in generate_step(ids, model, max_tokens=MAX_TOKENS, logits_processors=logits_processors)]
    eos = set(tok.eos_token_ids)
    return out[: next((i for i, t in enumerate(out) if t in eos), len(out))]


def _bigram_markov(refs, V, scale=20.0):
    """A rank-V Markov head that predicts the reference continuations' bigrams (a 'good' DSpark)."""
    w2 = np.zeros((V, V), np.float32)
    for seq in refs:
        for a, b in zip(seq, seq[1:]):
            w2[b, a] += scale  # the most frequent successor wins
    return {"markov_head.markov_w1.weight": mx.eye(V), "markov_head.markov_w2.weight": mx.array(w2)}


def _one_row(V, r, token):
    w = np.zeros((V, r), np.float32)
    w[token] = 1.0
    return mx.array(w)


def _constant_dflash(cfg_H, V, token):
    """Zero residual branches + own lm_head peaked at ``token``: every proposal is ``token``."""
    over = {"lm_head.weight": mx.zeros((V, cfg_H))}
    over["lm_head.weight"][token] = mx.ones((cfg_H,))
    for name in ("self_attn.o_proj.weight", "mlp.down_proj.weight"):
        over[f"layers.0.{name}"] = mx.zeros((cfg_H, cfg_H if "o_proj" in name else 2 * cfg_H))
    over["norm.weight"] = mx.ones((cfg_H,))
    return over


@pytest.fixture(scope="module", params=["qwen3", "llama"])
def world(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    save_tiny_model(root / "t", request.param, seed=1, sharpness=6, num_hidden_layers=4)
    model, tok = mlx_lm.load(str(root / "t"))
    refs = {p: reference(model, tok, p) for p in PROMPTS}
    V, H = model.args.vocab_size, model.args.hidden_size
    counts = np.bincount(np.concatenate([np.array(r) for r in refs.values()]), minlength=V)
    frequent = int(counts.argmax())
    never = int(np.flatnonzero(counts == 0)[0])  # a token none of the references contains
    zero_base = {"norm.weight": mx.zeros((H,))}  # draft hidden 0 -> base logits 0
    ck = {
        "dspark/random": write_dspark(root / "ds_rand", root / "t", target_layer_ids=TAPS, seed=11),
        "dspark/good": write_dspark(
            root / "ds_good", root / "t", target_layer_ids=TAPS, markov_rank=V, confidence=False,
            weight_overrides={**zero_base, **_bigram_markov(refs.values(), V)},
        ),
        "dspark/rejected": write_dspark(
            root / "ds_rej", root / "t", target_layer_ids=TAPS, confidence=False,
            weight_overrides={**zero_base, "markov_head.markov_w1.weight": mx.ones((V, 8)),
                             "markov_head.markov_w2.weight": _one_row(V, 8, never)},
        ),
        "dflash/random": write_dflash(root / "df_rand", root / "t", target_layer_ids=TAPS, seed=12),
        "dflash/good": write_dflash(
            root / "df_good", root / "t", target_layer_ids=TAPS, weight_overrides=_constant_dflash(H, V, frequent)
        ),
        "dflash/rejected": write_dflash(
            root / "df_rej", root / "t", target_layer_ids=TAPS, weight_overrides=_constant_dflash(H, V, never)
        ),
    }
    return model, tok, refs, ck


@pytest.mark.parametrize(
    "strategy, k, drafter",
    [(s, k, d) for s, k in (("dspark", 7), ("dflash", 15)) for d in ("good", "random", "rejected")]
    + [("dspark", 2, "good"), ("dflash", 3, "random")],
)
def test_greedy_equals_plain_decoding(world, strategy, k, drafter):
    model, tok, refs, ck = world
    stats = SpecStats()
    draft = load_drafter(ck[f"{strategy}/{drafter}"], model)
    for prompt in PROMPTS:
        out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, draft_model=draft,
                                                num_draft_tokens=k, stats=stats)]
        assert out[: len(refs[prompt])] == refs[prompt], prompt
    assert stats.strategy == strategy  # picked by draft_strategy="auto" from the drafter object
    assert stats.proposed > 0
    if drafter == "rejected":
        assert stats.accepted == 0
    if drafter == "good":
        assert stats.accepted > 0
    if drafter == "good" and strategy == "dspark":  # the bigram oracle gets whole runs accepted
        assert stats.accepted / stats.proposed > 0.05
        assert max(r.accepted for r in stats.rounds) >= 2  # multi-row context extension exercised


def test_checkpoint_path_as_draft_model(world):
    model, tok, refs, ck = world
    prompt = PROMPTS[1]
    out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS,
                                            draft_model=str(ck["dspark/good"]), num_draft_tokens=7)]
    assert out[: len(refs[prompt])] == refs[prompt]


def test_loop_directly_with_logits_processors(world):
    """speculative_generate_step with a repetition penalty: drafts see the processed chain too."""
    model, tok, _, ck = world
    procs = make_logits_processors(repetition_penalty=1.3)
    for name in ("dspark/good", "dflash/random"):
        target, proposer, spec, sampling, _, k = prepare(
            model, load_drafter(ck[name], model), logits_processors=procs, num_draft_tokens=5
        )
        prompt = PROMPTS[0]
        out = [t for t, _, _ in speculative_generate_step(
            mx.array(tok.encode(prompt)), target, proposer, spec.accept,
            num_draft_tokens=k, max_tokens=MAX_TOKENS, sampling=sampling)]
        ref = reference(model, tok, prompt, logits_processors=procs)
        assert out[: len(ref)] == ref


@pytest.mark.parametrize("threshold", [0.5, 1.0])
def test_confidence_truncation_keeps_greedy_exact(world, threshold):
    model, tok, refs, ck = world
    stats = SpecStats()
    prompt = PROMPTS[2]
    out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS,
                                            draft_model=load_drafter(ck["dspark/random"], model),
                                            num_draft_tokens=7, stats=stats,
                                            strategy_options={"confidence_threshold": threshold})]
    assert out[: len(refs[prompt])] == refs[prompt]
    assert stats.proposed < 7 * len(stats.rounds)
    if threshold == 1.0:  # sigmoid < 1: every block is truncated before its first proposal
        assert stats.proposed == 0


@pytest.mark.parametrize("strategy", ["dspark", "dflash"])
def test_sampling_runs_with_rejection_and_opaque_samplers(world, strategy):
    model, tok, _, ck = world
    draft = load_drafter(ck[f"{strategy}/random"], model)
    for sampler, acceptor in ((make_sampler(temp=0.8, top_p=0.9), "rejection"), (lambda lp: mx.argmax(lp, -1), "match")):
        stats = SpecStats()
        out = [r.token for r in stream_generate(model, tok, PROMPTS[0], max_tokens=32, draft_model=draft,
                                                sampler=sampler, acceptor=acceptor, num_draft_tokens=4, stats=stats)]
        assert len(out) > 0 and stats.acceptor == acceptor


def test_gemma4_target_with_dflash_greedy_exact(tmp_path):
    """Gemma-4 text targets: taps through KV-shared layers and per-layer inputs, scaled embedding."""
    from test_drafter_crosscheck import GEMMA4_TINY

    save_tiny_model(tmp_path / "g4", "gemma4_text", **GEMMA4_TINY)
    model, tok = mlx_lm.load(str(tmp_path / "g4"))
    path = write_dflash(tmp_path / "df", tmp_path / "g4", target_layer_ids=TAPS, seed=4,
                        config_overrides={"model_type": "gemma4", "final_logit_softcapping": 30.0})
    stats = SpecStats()
    for prompt in PROMPTS:
        ref = reference(model, tok, prompt)
        out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, draft_model=str(path),
                                                num_draft_tokens=6, stats=stats)]
        assert out[: len(ref)] == ref
    assert stats.strategy == "dflash" and stats.proposed > 0


@pytest.mark.parametrize("strategy", ["dspark", "dflash"])
def test_one_token_prompt_drafts_without_context(world, strategy):
    model, tok, _, ck = world
    ids = [65]
    ref = [t for t, _ in generate_step(mx.array(ids), model, max_tokens=16)]
    out = [r.token for r in stream_generate(model, tok, ids, max_tokens=16, draft_model=str(ck[f"{strategy}/random"]))]
    assert out == ref[: len(out)] and len(out) == 16
