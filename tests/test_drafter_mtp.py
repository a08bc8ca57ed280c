"""Spec: a target's own MTP heads (Qwen3.5 ``mtp.*``) are read from its folder and stay exact.

* mlx-lm drops the ``mtp.*`` tensors when it loads the target; ``load_drafter(target_folder,
  model)`` reads them back (Hugging Face layout: zero-centred norms) and binds them.
* Per-position draft distributions equal mlx-vlm 0.7.10's ``Qwen3_5MTPDraftModel`` (loaded by its
  own splitter from the same folder) on the same target hidden states, across three rounds, within
  1e-4 in float32.
* Greedy output is token-identical to plain decoding on the Gated-DeltaNet hybrid target (its
  recurrent caches rolled back by the loop, the head's KV cache by the proposer).
* A folder that declares MTP layers without MTP tensors, missing or mis-shaped MTP tensors, and a
  head of another model are one clear error before generation.
"""

from __future__ import annotations

import shutil

import mlx.core as mx
import mlx_lm
import pytest
from references import greedy_tokens

from mlx_specdec_plugin.testing.drafters import QWEN_GDN, add_qwen_mtp
from mlx_specdec_plugin import SpecStats, load_drafter, stream_generate
from mlx_specdec_plugin.contract import DraftContext, StrategyOptions
from mlx_specdec_plugin.sampling import Sampling, make_sampler
from mlx_specdec_plugin.strategies import mtp
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import save_tiny_model

PROMPT = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100]
PROMPTS = ["the cat sat on the mat. the cat sat on the", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"]
MAX_TOKENS = 40


def _target(path, mtp_seed=2, **kw):
    save_tiny_model(path, "qwen3_5", seed=1, sharpness=6, num_hidden_layers=4, **QWEN_GDN)
    return add_qwen_mtp(path, seed=mtp_seed, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtp")
    _target(root / "t")
    model, tok = mlx_lm.load(str(root / "t"))
    return root, model, tok


def test_mlx_lm_drops_the_heads_and_we_read_them_back(world):
    root, model, _ = world
    assert not any("mtp" in k for k, _ in __import__("mlx.utils").utils.tree_flatten(model.parameters()))
    d = load_drafter(root / "t", model)
    assert d.kind == "mtp" and d.tap_layers == (3,)
    stored = mx.load(str(root / "t" / "model-mtp.safetensors"))
    assert mx.allclose(d.module.norm.weight, stored["mtp.norm.weight"] + 1.0)  # zero-centred on disk


def test_mtp_matches_mlx_vlm(world):
    vlm = pytest.importorskip("mlx_vlm.speculative.drafters")
    root, model, _ = world
    ours = load_drafter(root / "t", model)
    proposer = mtp.build(TargetAdapter(model), ours, StrategyOptions(block_size=8))
    theirs, kind = vlm.load_drafter(str(root / "t"))
    assert kind == "mtp"
    theirs.reset(model)
    target = TargetAdapter(model)
    cache = target.make_cache()
    norm = model.language_model.model.norm
    sampling = Sampling.create(make_sampler(temp=1.0))
    # rounds: (tokens committed before it, hidden of them, new pending token, proposals)
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

        feats = norm(h)  # mlx-vlm is handed the target's final-normed hidden states
        if i == 0:
            theirs.prefill_from_target_hidden(mx.array([committed]), feats, pending, replay)
        else:
            accepted = len(committed) - 1
            theirs.accept_verified_tokens(feats, mx.array([committed[1:] or [0]]), accepted,
                                          committed[1:] + [pending], replay)
        theirs.draft_block(pending, feats[:, -1:], None, g + 1, replay)
        assert len(seen) == g
        q_vlm = mx.softmax(mx.stack(seen).astype(mx.float32), axis=-1)
        assert float(q_vlm.max().item()) > 4 / q_vlm.shape[-1]  # peaked rows, not a degenerate comparison
        diffs.append(float(mx.abs(draft.q - q_vlm).max().item()))
    print(f"mtp qwen3_5: max|q_ours - q_mlx_vlm| = {max(diffs):.2e} (per round {diffs})")
    assert max(diffs) < 1e-4


def _reference(model, tok, prompt):
    return greedy_tokens(model, tok, prompt, MAX_TOKENS)


@pytest.mark.parametrize("head", ["random", "rejected"])
def test_greedy_equals_plain_decoding(world, tmp_path, head):
    root, model, tok = world
    path = root / "t"
    if head == "rejected":  # the head's output is 0 after its norm, so are its logits (the target's head has no
        path = tmp_path / "rej"  # bias): the argmax is token 0, which the references never contain
        shutil.copytree(root / "t", path)
        add_qwen_mtp(path, seed=2, weight_overrides={"mtp.norm.weight": mx.full((32,), -1.0)})
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


def test_target_folder_without_mtp_tensors_is_one_clear_error(tmp_path):
    """An mlx-lm conversion keeps mtp_num_hidden_layers in config.json but no mtp.* tensors."""
    path = _target(tmp_path / "t")
    (path / "model-mtp.safetensors").unlink()
    model, tok = mlx_lm.load(str(path))
    with pytest.raises(ValueError, match=r"declares 1 MTP layer\(s\) but its safetensors hold no MTP weights"):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(path)))


def test_a_target_that_declares_no_mtp_is_refused_by_the_strategy(tmp_path):
    save_tiny_model(tmp_path / "t", "qwen3_5", seed=1, num_hidden_layers=4, **QWEN_GDN)
    model, tok = mlx_lm.load(str(tmp_path / "t"))
    with pytest.raises(ValueError, match=r"not a drafter checkpoint of a known kind.*declares MTP layers"):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(tmp_path / "t"), draft_strategy="mtp"))


@pytest.mark.parametrize("kw, match", [
    (dict(drop_weights=["mtp.fc.weight"]), r"missing MTP weight.*'fc.weight'"),
    (dict(drop_weights=["mtp.layers.0.self_attn.q_norm.weight"]), r"missing MTP weight.*layers.0.self_attn.q_norm"),
    (dict(weight_overrides={"mtp.fc.weight": mx.zeros((32, 48))}), r"'fc.weight' has shape \(32, 48\)"),
    (dict(weight_overrides={"mtp.lm_head.weight": mx.zeros((258, 32))}), r"unexpected MTP weight.*lm_head"),
])
def test_bad_mtp_tensors_are_one_clear_error(tmp_path, kw, match):
    path = _target(tmp_path / "t", **kw)
    model, tok = mlx_lm.load(str(path))
    with pytest.raises(ValueError, match=match):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(path)))


def test_heads_of_another_model_are_one_clear_error(world, tmp_path):
    root, model, tok = world
    save_tiny_model(tmp_path / "deeper", "qwen3_5", seed=1, num_hidden_layers=6, **QWEN_GDN)
    add_qwen_mtp(tmp_path / "deeper")
    with pytest.raises(ValueError, match=r"model of 6 layers.*the target has 4"):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(tmp_path / "deeper")))


def _cli(*args):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "mlx_specdec_plugin", "generate", *args, "--max-tokens", "12",
                           "--ignore-chat-template", "--prompt", "the cat sat"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_reads_the_heads_from_the_targets_own_folder_only(world, tmp_path):
    """``--draft-model`` = ``--model``: the target's MTP heads; another model folder that also
    declares MTP layers is a classic draft model."""
    root, model, tok = world
    ref = mlx_lm.generate(model, tok, tok.encode("the cat sat", add_special_tokens=False), max_tokens=12)
    proc = _cli("--model", str(root / "t"), "--draft-model", str(root / "t"))
    assert "strategy: mtp (--draft-model is a mtp checkpoint)" in proc.stderr and ref in proc.stdout
    save_tiny_model(tmp_path / "small", "qwen3_5", seed=5, num_hidden_layers=2, **QWEN_GDN)
    add_qwen_mtp(tmp_path / "small")
    proc = _cli("--model", str(root / "t"), "--draft-model", str(tmp_path / "small"))
    assert "strategy: draft-model" in proc.stderr and ref in proc.stdout


def test_moe_mtp_layer_matches_mlx_vlm_and_keeps_greedy(tmp_path):
    """A sparse-MoE MTP layer (Hugging Face per-expert tensors, stacked as mlx-lm stacks them)."""
    vlm = pytest.importorskip("mlx_vlm.speculative.drafters")
    moe = {**QWEN_GDN, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
           "shared_expert_intermediate_size": 16}
    save_tiny_model(tmp_path / "t", "qwen3_5", seed=1, sharpness=6, num_hidden_layers=4, **moe)
    add_qwen_mtp(tmp_path / "t", seed=2)
    model, tok = mlx_lm.load(str(tmp_path / "t"))
    ours = load_drafter(tmp_path / "t", model)
    assert "switch_mlp" in ours.module.layers[0].mlp
    theirs, _ = vlm.load_drafter(str(tmp_path / "t"))
    theirs.reset(model)
    target = TargetAdapter(model)
    _, h = target(mx.array([PROMPT], dtype=mx.uint32), target.make_cache(), ours.tap_layers)
    feats = model.language_model.model.norm(h)
    seen = []
    theirs.prefill_from_target_hidden(mx.array([PROMPT[:-1]]), feats[:, :-1], PROMPT[-1],
                                      lambda logits: (seen.append(logits), mx.array([[5]]))[1])
    out = ours.step(ours.embed(mx.array([PROMPT[1:]])), ours.project(h[:, :-1]), ours.make_cache())
    q_ours, q_vlm = mx.softmax(ours.head(out[:, -1:]).reshape(-1)), mx.softmax(seen[0].reshape(-1))
    assert float(mx.abs(q_ours - q_vlm).max().item()) < 1e-4
    ref = _reference(model, tok, PROMPTS[0])
    out = [r.token for r in stream_generate(model, tok, PROMPTS[0], max_tokens=MAX_TOKENS, draft_model=str(tmp_path / "t"))]
    assert out[: len(ref)] == ref
