"""Our dspark/dflash drafters equal mlx-vlm 0.7.10's on the same checkpoint files and target hidden
states: per-position draft distributions within 1e-4 (float32), Markov-corrected ones included."""

from __future__ import annotations

from types import SimpleNamespace

import mlx.core as mx
import mlx_lm
import pytest

from mlx_specdec_plugin.testing.drafters import to_dflash_config_layout, write_dflash, write_dspark
from mlx_specdec_plugin import load_drafter
from mlx_specdec_plugin.contract import DraftContext, StrategyOptions
from mlx_specdec_plugin.sampling import Sampling, make_sampler
from mlx_specdec_plugin.strategies import dflash, dspark
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import save_tiny_model

vlm_drafters = pytest.importorskip("mlx_vlm.speculative.drafters")

TAPS = (0, 2)
PROMPT = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("xcheck")
    save_tiny_model(root / "target", "qwen3", seed=3, sharpness=3.0, num_hidden_layers=4)
    model, _ = mlx_lm.load(str(root / "target"))
    write_dspark(root / "dspark_native", root / "target", layout="deepspec", target_layer_ids=TAPS, seed=5)
    to_dflash_config_layout(root / "dspark_native", root / "dspark_nested")
    write_dspark(root / "dspark_cfg", root / "target", layout="dflash_config", target_layer_ids=TAPS, seed=6,
                 num_draft_layers=2, markov_rank=16)
    write_dspark(root / "dspark_noanchor", root / "target", layout="dflash_config", target_layer_ids=TAPS, seed=10,
                 extra_keys={"sample_from_anchor": False, "causal": True})
    write_dflash(root / "dflash", root / "target", layout="zlab", target_layer_ids=TAPS, seed=7, num_draft_layers=2)
    write_dflash(root / "dflash_nested", root / "target", layout="zlab_nested", target_layer_ids=TAPS, seed=8)
    return root, model


def _hidden(model, chunks, taps=TAPS):
    """Target taps for consecutive token chunks (one target cache)."""
    target = TargetAdapter(model)
    cache = target.make_cache()
    out = []
    for chunk in chunks:
        _, h = target(mx.array([chunk], dtype=mx.uint32), cache, taps)
        out.append(h)
    return out


def _vlm_target(model):
    # mlx-vlm's bind/validation duck-types the target; mlx-lm models lack the rollback marker.
    return SimpleNamespace(model=model.model, lm_head=getattr(model, "lm_head", None), args=model.args,
                           rollback_speculative_cache=lambda *a, **k: None)


def _compare(root, model, ours_dir, theirs_dir, strategy, g, taps=TAPS):
    """Two rounds (prefill context, then 3 committed rows); returns max |q_ours - q_vlm|."""
    drafter = load_drafter(root / ours_dir, model)
    proposer = strategy.build(TargetAdapter(model), drafter, StrategyOptions(num_draft_tokens=g))
    theirs, _ = vlm_drafters.load_drafter(str(root / theirs_dir))
    vlm_cache = theirs.reset(_vlm_target(model))

    sampling = Sampling.create(make_sampler(temp=1.0))
    committed = PROMPT[:-1]
    round2 = [PROMPT[-1], 33, 10]
    h1, h2 = _hidden(model, [committed, round2], taps)
    diffs, markov_effect = [], 0.0
    for ctx_tokens, h, anchor in ((committed, h1, PROMPT[-1]), (round2, h2, 65)):
        proposer.extend(ctx_tokens, h)
        mx.random.seed(0)
        draft = proposer.propose(DraftContext(list(PROMPT) + [anchor], sampling), g)
        ours_tokens = draft.tokens.tolist()
        assert len(ours_tokens) == g

        seen = []

        def replay(logits):  # record mlx-vlm's logits, follow our drawn tokens
            seen.append(logits)
            if logits.ndim == 3:  # DFlash: the whole block at once
                return mx.array([ours_tokens], dtype=mx.int32)
            return mx.array([ours_tokens[len(seen) - 1]], dtype=mx.int32)

        theirs.draft_block(anchor, h, vlm_cache, g + 1, replay)
        vlm_logits = mx.concatenate([l.reshape(-1, l.shape[-1]) for l in seen], axis=0)
        q_vlm = mx.softmax(vlm_logits.astype(mx.float32), axis=-1)
        diffs.append(float(mx.abs(draft.q - q_vlm).max().item()))
        if strategy is dspark:
            base, _ = proposer.base_logits(anchor, g)
            markov_effect = max(markov_effect, float(mx.abs(mx.softmax(base, axis=-1) - q_vlm).max().item()))
    return max(diffs), markov_effect


@pytest.mark.parametrize(
    "ours_dir, theirs_dir",
    [("dspark_native", "dspark_nested"), ("dspark_nested", "dspark_nested"), ("dspark_cfg", "dspark_cfg"),
     ("dspark_noanchor", "dspark_noanchor")],
)
def test_dspark_matches_mlx_vlm_markov_corrected(setup, ours_dir, theirs_dir):
    root, model = setup
    diff, markov_effect = _compare(root, model, ours_dir, theirs_dir, dspark, g=7)
    print(f"dspark {ours_dir}: max|q_ours - q_mlx_vlm| = {diff:.2e} (Markov term moves q by {markov_effect:.2e})")
    assert diff < 1e-4
    assert markov_effect > 1e-2  # the comparison does exercise the Markov head


@pytest.mark.parametrize("ckpt", ["dflash", "dflash_nested"])
@pytest.mark.parametrize("g", [15, 4])
def test_dflash_matches_mlx_vlm(setup, ckpt, g):
    root, model = setup
    diff, _ = _compare(root, model, ckpt, ckpt, dflash, g=g)
    print(f"dflash {ckpt} g={g}: max|q_ours - q_mlx_vlm| = {diff:.2e}")
    assert diff < 1e-4


def test_native_and_nested_dspark_layouts_load_identically(setup):
    root, model = setup
    a = load_drafter(root / "dspark_native", model)
    b = load_drafter(root / "dspark_nested", model)
    assert (a.config.layout, b.config.layout) == ("deepspec", "dflash_config")
    for field in ("target_layer_ids", "proposal_length", "mask_token_id", "markov_rank", "enable_confidence_head"):
        assert getattr(a.config, field) == getattr(b.config, field)


def test_gemma4_dflash_matches_mlx_vlm(tmp_path):
    """z-lab's Gemma-4 DFlash: target embedding scale sqrt(H), drafter softcap, default mask id 4."""
    save_tiny_model(tmp_path / "g4", "gemma4_text", **GEMMA4_TINY)
    model, _ = mlx_lm.load(str(tmp_path / "g4"))
    write_dflash(tmp_path / "df", tmp_path / "g4", target_layer_ids=TAPS, seed=9,
                 config_overrides={"model_type": "gemma4", "final_logit_softcapping": 30.0,
                                   "dflash_config": {"target_layer_ids": list(TAPS)}})
    assert load_drafter(tmp_path / "df", model).config.mask_token_id == 4
    diff, _ = _compare(tmp_path, model, "df", "df", dflash, g=6)
    print(f"dflash gemma4: max|q_ours - q_mlx_vlm| = {diff:.2e}")
    assert diff < 1e-4


GEMMA4_TINY = dict(seed=1, sharpness=4, num_hidden_layers=4, head_dim=8, global_head_dim=16, num_kv_shared_layers=1,
                   hidden_size_per_layer_input=8, vocab_size_per_layer_input=258, sliding_window=8,
                   sliding_window_pattern=2, final_logit_softcapping=30.0, tie_word_embeddings=True)
