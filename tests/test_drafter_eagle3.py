"""Spec: EAGLE-3 heads (speculators and SpecForge layouts) load, draft and stay exact.

* Per-position draft distributions equal mlx-vlm 0.7.10's ``Eagle3DraftModel`` on the same files
  and target hidden states (1e-4, float32), through the draft-vocabulary map and across rounds.
* The SpecForge layout (``midlayer.*``, layer-output aux ids) reads as the same head.
* Greedy output is token-identical to plain decoding (good, random, always-rejected heads).
* At T=1 the joint of the first 3 tokens matches the target's (chi-square), rejection and block.
* Bad checkpoints give one clear error before generation; ``auto`` recognises EAGLE-3 configs.
"""

from __future__ import annotations


import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from mlx_lm.generate import generate_step
from references import greedy_tokens

from mlx_specdec_plugin.testing.drafters import write_eagle3
from mlx_specdec_plugin import SpecStats, load_drafter, stream_generate
from mlx_specdec_plugin.contract import DraftContext, StrategyOptions
from mlx_specdec_plugin.sampling import Sampling, make_sampler
from mlx_specdec_plugin.strategies import eagle3
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import save_tiny_model

PROMPT = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100]
PROMPTS = ["the cat sat on the mat. the cat sat on the", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"]
MAX_TOKENS = 48


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("eagle3")
    save_tiny_model(root / "t", "qwen3", seed=1, sharpness=6, num_hidden_layers=6)
    model, tok = mlx_lm.load(str(root / "t"))
    return root, model, tok


def _round_inputs(model, taps):
    target = TargetAdapter(model)
    cache = target.make_cache()
    committed, round2 = PROMPT[:-1], [PROMPT[-1], 33, 10]
    hs = []
    for chunk in (committed, round2):
        _, h = target(mx.array([chunk], dtype=mx.uint32), cache, taps)
        hs.append(h)
    return committed, round2, hs


def _compare_with_mlx_vlm(path, model, g, theirs_path=None):
    """Two rounds through our proposer and mlx-vlm's head on the same hidden states; max |dq|."""
    vlm = pytest.importorskip("mlx_vlm.speculative.drafters")
    ours = load_drafter(path, model)
    proposer = eagle3.build(TargetAdapter(model), ours, StrategyOptions(block_size=g + 1))
    theirs, kind = vlm.load_drafter(str(theirs_path or path))
    assert kind == "eagle3"
    theirs.reset(model)
    committed, round2, (h1, h2) = _round_inputs(model, ours.taps)
    hot = np.array(ours.hot) if ours.hot is not None else np.arange(ours.config.vocab_size)
    to_draft = {int(t): i for i, t in enumerate(hot)}
    V = ours.config.vocab_size
    sampling = Sampling.create(make_sampler(temp=1.0))
    diffs = []
    for extend_tokens, h, history in ((committed, h1, list(PROMPT)), (round2, h2, list(PROMPT) + [33, 10, 65])):
        proposer.extend(extend_tokens, h)
        draft = proposer.propose(DraftContext(history, sampling), g)
        tokens = draft.tokens.tolist()
        assert len(tokens) == g
        seen = []

        def replay(logits):  # record mlx-vlm's draft-vocab logits, follow our tokens
            seen.append(logits.reshape(-1))
            return mx.array([[to_draft[tokens[len(seen) - 1]]]], dtype=mx.int32)

        if history == list(PROMPT):
            theirs.prefill_from_target_hidden(mx.array([committed]), h1, PROMPT[-1], replay)
            theirs.draft_block(PROMPT[-1], h1[:, -1:], None, g + 1, replay)
        else:
            theirs.accept_verified_tokens(h2, mx.array([[33, 10]]), 2, [33, 10, 65], replay)
            theirs.draft_block(65, h2[:, -1:], None, g + 1, replay)
        assert len(seen) == g
        full = np.full((g, V), -np.inf, np.float32)
        full[:, hot] = np.array(mx.stack(seen).astype(mx.float32))
        q_vlm = np.array(mx.softmax(mx.array(full), axis=-1))
        diffs.append(float(np.abs(np.array(draft.q) - q_vlm).max()))
    return max(diffs)


@pytest.mark.parametrize("variant, kw", [
    ("draft vocab", dict(draft_vocab_size=64)),
    ("full vocab", dict(draft_vocab_size=None)),
    ("norm_before_residual, 2 layers", dict(norm_before_residual=True, num_layers=2, seed=3)),
    ("no embed_tokens (the target's)", dict(embed_tokens=False, seed=4)),
])
def test_eagle3_matches_mlx_vlm(world, tmp_path, variant, kw):
    root, model, _ = world
    path = write_eagle3(tmp_path / "e3", root / "t", **kw)
    # mlx-vlm 0.7.10 cannot bind a head without embed_tokens (it drops the module, then reads its
    # shape): it reads the same head with the target's embedding copied in
    theirs = write_eagle3(tmp_path / "vlm", root / "t", **{**kw, "embed_tokens": True})
    diff = _compare_with_mlx_vlm(path, model, g=4, theirs_path=theirs)
    print(f"eagle3 {variant}: max|q_ours - q_mlx_vlm| = {diff:.2e}")
    assert diff < 1e-4


def test_specforge_layout_reads_as_the_same_head(world, tmp_path):
    """``midlayer.*`` + layer-output ids (0, 1, 3) are speculators' ``layers.0.*`` + ids (1, 2, 4)."""
    root, model, _ = world
    a = load_drafter(write_eagle3(tmp_path / "a", root / "t", aux_layer_ids=(1, 2, 4), seed=7), model)
    b = load_drafter(write_eagle3(tmp_path / "b", root / "t", layout="specforge", aux_layer_ids=(0, 1, 3), seed=7), model)
    assert (a.config.layout, b.config.layout) == ("speculators", "specforge")
    assert a.taps == b.taps == (0, 1, 3)
    sampling = Sampling.create(make_sampler(temp=1.0))
    qs = []
    for d in (a, b):
        p = eagle3.build(TargetAdapter(model), d, StrategyOptions(block_size=4))
        committed, _, (h1, _) = _round_inputs(model, d.taps)
        p.extend(committed, h1)
        qs.append(np.array(p.propose(DraftContext(list(PROMPT), sampling), 1).q))
    assert np.abs(qs[0] - qs[1]).max() < 1e-6


def test_default_taps_follow_the_target_depth(world, tmp_path):
    """No aux ids: vLLM's/SGLang's [2, n//2, n-3] (inputs of those layers) for the target's n = 6."""
    root, model, _ = world
    d = load_drafter(write_eagle3(tmp_path / "e3", root / "t", aux_layer_ids=None), model)
    assert d.taps == (1, 2, 2)  # ids (2, 3, 3) -> layer outputs (1, 2, 2)


def _reference(model, tok, prompt):
    return greedy_tokens(model, tok, prompt, MAX_TOKENS)


@pytest.mark.parametrize("head", ["good", "random", "rejected"])
def test_greedy_equals_plain_decoding(world, tmp_path, head):
    root, model, tok = world
    refs = {p: _reference(model, tok, p) for p in PROMPTS}
    counts = np.bincount(np.concatenate([np.array(r) for r in refs.values()]), minlength=258)
    # good: a one-token draft vocabulary on the references' most frequent token; rejected: on a
    # token they never contain (every draft is that token); random: a random head over 64 tokens
    kw = {"good": dict(draft_tokens=[int(counts.argmax())]),
          "rejected": dict(draft_tokens=[int(np.flatnonzero(counts == 0)[0])]),
          "random": dict(draft_vocab_size=64, seed=11)}[head]
    path = write_eagle3(tmp_path / head, root / "t", **kw)
    stats = SpecStats()
    for prompt in PROMPTS:
        out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, draft_model=str(path),
                                                num_draft_tokens=3, stats=stats)]
        assert out[: len(refs[prompt])] == refs[prompt], prompt
    assert stats.strategy == "eagle3" and stats.proposed > 0  # picked by auto from config.json
    if head == "rejected":
        assert stats.accepted == 0
    if head == "good":
        assert stats.accepted > 0


def test_one_token_prompt_drafts_nothing_until_a_feature_exists(world, tmp_path):
    root, model, tok = world
    path = write_eagle3(tmp_path / "e3", root / "t")
    ref = [t for t, _ in generate_step(mx.array([65]), model, max_tokens=12)]
    out = [r.token for r in stream_generate(model, tok, [65], max_tokens=12, draft_model=str(path))]
    assert out == ref


@pytest.mark.parametrize("kw, match", [
    (dict(drop_weights=["lm_head.weight"]), r"missing weight.*lm_head.weight"),
    (dict(drop_weights=["layers.0.hidden_norm.weight"]), r"missing weight.*layers.0.hidden_norm"),
    (dict(drop_weights=["d2t"]), r"'d2t' is missing"),
    (dict(aux_layer_ids=(1, 2), n_taps=3), r"names 2 layer\(s\) \[1, 2\].*reads 3 target hidden states"),
    (dict(aux_layer_ids=(1, 2, 9)), r"tap layer\(s\) \[8\].*6 decoder layers"),
    (dict(aux_layer_ids=(0, 2, 4)), r"hidden state 0"),
    (dict(config_overrides={"draft_vocab_size": 300}), r"'draft_vocab_size' 300 exceeds"),
    (dict(weight_overrides={"d2t": mx.array(np.full(64, 500, np.int64))}), r"'d2t' maps draft ids outside"),
    (dict(weight_overrides={"t2d": mx.array(np.ones(258, bool))}), r"'t2d' does not mark"),
    (dict(weight_overrides={"fc.weight": mx.zeros((32, 100))}), r"'fc.weight' has shape \(32, 100\)"),
])
def test_bad_checkpoint_is_one_clear_error(world, tmp_path, kw, match):
    root, model, tok = world
    path = write_eagle3(tmp_path / "bad", root / "t", **kw)
    with pytest.raises(ValueError, match=match):
        load_drafter(path, model)
    with pytest.raises(ValueError, match=match):  # before any token, from generate() too
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(path)))


def test_target_mismatch_is_one_clear_error(tmp_path):
    save_tiny_model(tmp_path / "t", "qwen3", seed=1, num_hidden_layers=6)
    save_tiny_model(tmp_path / "wide", "qwen3", seed=1, num_hidden_layers=6, hidden_size=48)
    model, _ = mlx_lm.load(str(tmp_path / "wide"))
    path = write_eagle3(tmp_path / "e3", tmp_path / "t")
    with pytest.raises(ValueError, match=r"target hidden size 32.*target's 48"):
        load_drafter(path, model)
