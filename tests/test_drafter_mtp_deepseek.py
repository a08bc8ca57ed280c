"""Spec: a DeepSeek-V3-style target's own MTP module (``model.layers.{num_hidden_layers}.*``) is
read from its folder and stays exact.

* mlx-lm drops the module's tensors when it loads the target; ``load_drafter(target_folder, model)``
  reads them back (Hugging Face layout: fused MLA ``kv_b_proj``, per-expert MoE tensors, split and
  stacked by the target's own mlx-lm ``sanitize``) and binds them.
* Per-position draft distributions equal mlx-vlm 0.7.10's ``GlmMoeDsaMTPDraftModel`` (loaded by its
  own splitter from the same folder) on the same target hidden states, across three rounds, within
  1e-4 in float32, on a tiny GLM-5 (``glm_moe_dsa``: DeepSeek-V3.2 MLA + DSA indexer + MoE) target.
  mlx-vlm 0.7.10 has no runnable DeepSeek-V3 MTP drafter (its ``glm4_moe_lite_mtp`` package has no
  model class, and ``deepseek_v4_mtp`` is the V4 hyper-connection design); the V3 head shares every
  line of ours with the GLM-5 one except the decoder layer class, which is mlx-lm's own.
* Greedy output is token-identical to plain decoding for a random head and an always-rejected one,
  on ``deepseek_v3`` and ``glm_moe_dsa`` targets (the head's MLA / DSA cache trimmed by the proposer).
* A folder that declares the module without its tensors, missing or mis-shaped tensors, a module of
  another model, and a target that declares none are one clear error before generation.
"""

from __future__ import annotations

import shutil

import mlx.core as mx
import mlx_lm
import pytest
from mlx.utils import tree_flatten
from references import greedy_tokens

from mlx_specdec_plugin.testing.drafters import DEEPSEEK_TINY, DSA_TINY, add_deepseek_mtp
from mlx_specdec_plugin import SpecStats, load_drafter, stream_generate
from mlx_specdec_plugin.contract import DraftContext, StrategyOptions
from mlx_specdec_plugin.sampling import Sampling, make_sampler
from mlx_specdec_plugin.strategies import mtp
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_model, tiny_config

PROMPT = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100]
PROMPTS = ["the cat sat on the mat. the cat sat on the", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"]
MAX_TOKENS = 40
FAMILIES = {"deepseek_v3": DEEPSEEK_TINY, "glm_moe_dsa": DSA_TINY}


def _target(path, model_type="deepseek_v3", layers=2, copies=True, **kw):
    """(model, tokenizer, folder): the target loaded by mlx-lm from its folder *before* the MTP
    shard is added (mlx-lm's ``deepseek_v3`` drops only a 61-layer model's layer 61, so it would
    refuse a tiny folder that carries layer 2), then the published MTP tensors added."""
    cfg = tiny_config(model_type, num_hidden_layers=layers, **FAMILIES[model_type])
    save_model(path, make_tiny_model(cfg, seed=3, sharpness=6), cfg)  # (seed 3: no token 0 in the references)
    model, tok = mlx_lm.load(str(path))
    add_deepseek_mtp(path, model if copies else None, seed=2, **kw)
    return model, tok, path


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtp_deepseek")
    return {t: _target(root / t, t, copies=t == "deepseek_v3") for t in FAMILIES}


def test_mlx_lm_drops_the_module_and_we_read_it_back(worlds):
    model, _, path = worlds["deepseek_v3"]
    assert not any(k.startswith("model.layers.2.") for k, _ in tree_flatten(model.parameters()))
    d = load_drafter(path, model)
    assert (d.kind, d.config.family, d.tap_layers) == ("mtp", "deepseek", (1,))
    stored = mx.load(str(path / "model-mtp.safetensors"))
    assert mx.array_equal(d.module.shared_head_norm.weight, stored["model.layers.2.shared_head.norm.weight"])
    assert d.module.block.mlp.switch_mlp.gate_proj.weight.shape == (4, 16, 32)  # 4 experts stacked
    kv_b = stored["model.layers.2.self_attn.kv_b_proj.weight"].reshape(4, 16, 16)  # heads, nope + v, rank
    assert mx.array_equal(d.module.block.self_attn.unembed_out.weight, kv_b[:, 8:, :])  # split as mlx-lm splits


def test_deepseek_style_mtp_matches_mlx_vlm(worlds):
    vlm = pytest.importorskip("mlx_vlm.speculative.drafters")
    model, _, path = worlds["glm_moe_dsa"]
    ours = load_drafter(path, model)
    proposer = mtp.build(TargetAdapter(model), ours, StrategyOptions(block_size=8))
    theirs, kind = vlm.load_drafter(str(path))
    assert kind == "mtp" and type(theirs).__name__ == "GlmMoeDsaMTPDraftModel"
    theirs.reset(model)
    target = TargetAdapter(model)
    cache = target.make_cache()
    sampling = Sampling.create(make_sampler(temp=1.0))
    rounds = [(PROMPT[:-1], PROMPT[-1], 1), ([PROMPT[-1], 33], 10, 4), ([10], 65, 4)]
    history, diffs = list(PROMPT), []
    for i, (committed, pending, g) in enumerate(rounds):
        _, h = target(mx.array([committed], dtype=mx.uint32), cache, ours.tap_layers)
        if i:
            history += committed[1:] + [pending]
        proposer.extend(committed, h)
        draft = proposer.propose(DraftContext(list(history), sampling), g)
        tokens = draft.tokens.tolist()
        seen = []

        def replay(logits):
            seen.append(logits.reshape(-1))
            return mx.array([[tokens[len(seen) - 1]]], dtype=mx.int32)

        feats = model.model.norm(h)  # mlx-vlm is handed the target's final-normed hidden states
        if i == 0:
            theirs.prefill_from_target_hidden(mx.array([committed]), feats, pending, replay)
        else:
            theirs.accept_verified_tokens(feats, mx.array([committed[1:] or [0]]), len(committed) - 1,
                                          committed[1:] + [pending], replay)
        theirs.draft_block(pending, feats[:, -1:], None, g + 1, replay)
        assert len(seen) == g
        q_vlm = mx.softmax(mx.stack(seen).astype(mx.float32), axis=-1)
        assert float(q_vlm.max().item()) > 4 / q_vlm.shape[-1]  # peaked rows, not a degenerate comparison
        diffs.append(float(mx.abs(draft.q - q_vlm).max().item()))
    print(f"mtp glm_moe_dsa: max|q_ours - q_mlx_vlm| = {max(diffs):.2e} (per round {diffs})")
    assert max(diffs) < 1e-4


def _reference(model, tok, prompt):
    return greedy_tokens(model, tok, prompt, MAX_TOKENS)


@pytest.mark.parametrize("head", ["random", "rejected"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_equals_plain_decoding(worlds, tmp_path, family, head):
    model, tok, path = worlds[family]
    if head == "rejected":  # shared_head.norm = 0: the head's logits are 0, its argmax token 0, never in the references
        shutil.copytree(path, tmp_path / "rej")
        path = tmp_path / "rej"
        add_deepseek_mtp(path, seed=2, weight_overrides={"model.layers.2.shared_head.norm.weight": mx.zeros((32,))})
    refs = {p: _reference(model, tok, p) for p in PROMPTS}
    stats = SpecStats()
    for prompt in PROMPTS:
        out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, draft_model=str(path),
                                                num_draft_tokens=3, stats=stats)]
        assert out[: len(refs[prompt])] == refs[prompt], prompt
    assert stats.strategy == "mtp" and stats.proposed > 0  # picked by auto from the target's config.json
    if head == "rejected":
        assert 0 not in [t for r in refs.values() for t in r]
        assert stats.accepted == 0


def test_target_folder_without_the_module_tensors_is_one_clear_error(tmp_path):
    model, tok, path = _target(tmp_path / "t")
    (path / "model-mtp.safetensors").unlink()
    (path / "model.safetensors.index.json").unlink()
    with pytest.raises(ValueError, match=r"declares 1 MTP layer\(s\) but its safetensors hold no MTP weights "
                                         r"\(model.layers.2.\*\)"):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(path)))


def test_a_target_that_declares_no_mtp_is_refused_by_the_strategy(tmp_path):
    model, tok, path = _target(tmp_path / "t", declare=False)
    with pytest.raises(ValueError, match=r"not a drafter checkpoint of a known kind.*num_nextn_predict_layers"):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(path), draft_strategy="mtp"))


@pytest.mark.parametrize("kw, match", [
    (dict(drop_weights=["model.layers.2.eh_proj.weight"]), r"missing MTP weight.*'eh_proj.weight'"),
    (dict(drop_weights=["model.layers.2.mlp.experts.3.up_proj.weight"]), r"experts.\*.up_proj.*missing \[3\]"),
    (dict(drop_weights=["model.layers.2.self_attn.kv_a_layernorm.weight"]), r"missing MTP weight.*kv_a_layernorm"),
    (dict(weight_overrides={"model.layers.2.eh_proj.weight": mx.zeros((32, 48))}), r"'eh_proj.weight' has shape \(32, 48\)"),
    (dict(weight_overrides={"model.layers.2.lm_head.weight": mx.zeros((258, 32))}), r"unexpected MTP weight.*lm_head"),
])
def test_bad_module_tensors_are_one_clear_error(tmp_path, kw, match):
    model, tok, path = _target(tmp_path / "t", **kw)
    with pytest.raises(ValueError, match=match):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(path)))


def test_a_module_of_another_model_is_one_clear_error(worlds, tmp_path):
    model, tok, _ = worlds["deepseek_v3"]
    _, _, deeper = _target(tmp_path / "deeper", layers=3)
    with pytest.raises(ValueError, match=r"model of 3 layers.*the target has 2"):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(deeper), draft_strategy="mtp"))
