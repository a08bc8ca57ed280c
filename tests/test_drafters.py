"""Spec: ``load_drafter`` reads DSpark / DFlash checkpoints in every published layout, normalises
block semantics, refuses bad checkpoints with one clear ValueError before generation, and
quantizes drafters (at load or as a saved conversion)."""

from __future__ import annotations

import json

import mlx.core as mx
import mlx.nn as nn
import mlx_lm
from mlx_lm.generate import generate_step
import pytest

from mlx_specdec_plugin.testing.drafters import write_dflash, write_dspark
from mlx_specdec_plugin import load_drafter, save_drafter, stream_generate
from mlx_specdec_plugin.contract import DraftContext, StrategyOptions
from mlx_specdec_plugin.generate import prepare, resolve_strategy
from mlx_specdec_plugin.sampling import Sampling, make_sampler
from mlx_specdec_plugin.strategies import dflash, dspark
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import save_tiny_model

TAPS = (0, 2)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("drafters")
    save_tiny_model(root / "qwen3", "qwen3", seed=1, sharpness=4, num_hidden_layers=4)
    save_tiny_model(root / "llama", "llama", seed=1, sharpness=4, num_hidden_layers=4)
    save_tiny_model(root / "qwen3_wide", "qwen3", seed=1, num_hidden_layers=4, hidden_size=64)
    write_dspark(root / "dspark", root / "qwen3", target_layer_ids=TAPS)
    write_dspark(root / "dspark_cfg", root / "qwen3", layout="dflash_config", target_layer_ids=TAPS)
    write_dflash(root / "dflash", root / "qwen3", target_layer_ids=TAPS)
    write_dflash(root / "dflash_nested", root / "qwen3", layout="zlab_nested", target_layer_ids=TAPS, block_size=8)
    return root


@pytest.fixture(scope="module")
def qwen3(root):
    return mlx_lm.load(str(root / "qwen3"))


# ---------------------------------------------------------------- layouts and semantics


def test_layouts_and_block_semantics(root, qwen3):
    model, _ = qwen3
    native = load_drafter(root / "dspark", model)
    nested = load_drafter(root / "dspark_cfg", model)
    zlab = load_drafter(root / "dflash", model)
    zlab_nested = load_drafter(root / "dflash_nested", model)
    assert (native.kind, native.config.layout) == ("dspark", "deepspec")
    assert (nested.kind, nested.config.layout) == ("dspark", "dflash_config")
    # DeepSpec's block_size counts proposals (block7 -> 7 proposals, verify width 8)
    assert native.config.proposal_length == nested.config.proposal_length == 7
    # z-lab's block_size counts the anchor (b16 -> 15 proposals), top level or nested
    assert (zlab.kind, zlab.config.proposal_length) == ("dflash", 15)
    assert zlab_nested.config.proposal_length == 7
    assert native.tap_layers == zlab.tap_layers == TAPS
    assert "lm_head" in native.module and "lm_head" not in zlab.module  # DeepSpec ships its head


def test_block_length_knob(root, qwen3):
    model, _ = qwen3
    target = TargetAdapter(model)
    drafter = load_drafter(root / "dflash", model)
    sampling = Sampling.create(None)
    for block_size, n, expected in ((None, 20, 15), (None, 4, 4), (6, 20, 5), (6, 3, 3), (64, 40, 15)):
        p = dflash.build(target, drafter, StrategyOptions(block_size=block_size))
        p.extend(list(range(5)), target(mx.array([list(range(5))], dtype=mx.uint32), target.make_cache(), TAPS)[1])
        assert len(p.propose(DraftContext([1, 2, 3, 4, 5, 6], sampling), n)) == expected
    with pytest.raises(ValueError, match="block_size"):
        dflash.build(target, drafter, StrategyOptions(block_size=1))


def test_q_is_the_markov_corrected_sampling_distribution(root, qwen3):
    """At temperature > 0 with top-k, q rows are the processed distributions the tokens came from."""
    model, _ = qwen3
    target = TargetAdapter(model)
    p = dspark.build(target, load_drafter(root / "dspark", model), StrategyOptions())
    p.extend(list(range(6)), target(mx.array([list(range(6))], dtype=mx.uint32), target.make_cache(), TAPS)[1])
    sampling = Sampling.create(make_sampler(temp=0.7, top_k=5))
    draft = p.propose(DraftContext(list(range(7)), sampling), 7)
    assert draft.q.shape == (7, model.args.vocab_size) and draft.q.dtype == mx.float32
    assert mx.allclose(draft.q.sum(-1), mx.ones(7), atol=1e-5)
    assert ((draft.q > 0).sum(-1) <= 5).all()
    assert (draft.q[mx.arange(7), draft.tokens] > 0).all()
    base, _ = p.base_logits(6, 7)
    prev = mx.concatenate([mx.array([6], dtype=mx.uint32), draft.tokens[:-1]])
    expected = sampling.probs(sampling.logprobs(base + p.drafter.module.markov_head(prev), []))
    assert mx.allclose(draft.q, expected, atol=1e-6)


def test_auto_strategy_and_claims(root, qwen3):
    model, _ = qwen3
    assert resolve_strategy(load_drafter(root / "dspark", model), "auto").name == "dspark"
    assert resolve_strategy(load_drafter(root / "dflash", model), "auto").name == "dflash"
    assert resolve_strategy(str(root / "dspark_cfg"), "auto").name == "dspark"
    assert resolve_strategy(root / "dflash_nested", "auto").name == "dflash"
    with pytest.raises(ValueError, match="use draft_strategy='dflash'"):
        prepare(model, load_drafter(root / "dflash", model), draft_strategy="dspark")


def test_rebinding_to_another_target(root, qwen3):
    model, tok = qwen3
    other, _ = mlx_lm.load(str(root / "qwen3"))
    drafter = load_drafter(root / "dspark", model)
    _, proposer, *_ = prepare(other, drafter)
    assert proposer.drafter.target_model is other and proposer.drafter.module is drafter.module


# ---------------------------------------------------------------- bad checkpoints


def _bad(tmp_path, root, writer, **kw):
    return writer(tmp_path / "bad", root / "qwen3", target_layer_ids=kw.pop("taps", TAPS), **kw)


@pytest.mark.parametrize(
    "writer, kw, match",
    [
        (write_dspark, dict(drop_weights=["markov_head.markov_w2.weight"]), r"missing weight.*markov_head.markov_w2"),
        (write_dflash, dict(drop_weights=["fc.weight"]), r"missing weight.*'fc.weight'"),
        (write_dflash, dict(weight_overrides={"fc.weight": mx.zeros((32, 96))}), r"'fc.weight' has shape \(32, 96\)"),
        (write_dflash, dict(weight_overrides={"lm_head.bias": mx.zeros((258,))}), r"unexpected weight.*lm_head.bias"),
        (write_dspark, dict(taps=(0, 4)), r"'target_layer_ids' \[0, 4\].*4 decoder layers"),
        (write_dflash, dict(config_overrides={"num_target_layers": 36}), r"'num_target_layers' 36"),
        (write_dspark, dict(mask_token_id=258), r"'mask_token_id' 258 is outside the vocabulary"),
        (write_dflash, dict(mask_token_id=-1), r"'mask_token_id' -1"),
        (write_dflash, dict(config_overrides={"vocab_size": 300}), r"'vocab_size' 300"),
        (write_dspark, dict(config_overrides={"hidden_size": 64}), r"'hidden_size' 64"),
        (write_dspark, dict(config_overrides={"model_type": "llama"}), r"'model_type' 'llama'"),
        (write_dflash, dict(config_overrides={"model_type": "gemma4_text"}), r"another target family"),
        # a Qwen3-style DSpark relabelled Gemma4DSparkModel: read as Gemma-4, its SwiGLU config is refused
        (write_dspark, dict(config_overrides={"architectures": ["Gemma4DSparkModel"]}), r"'hidden_activation' 'silu'"),
        (write_dflash, dict(config_overrides={"dflash_config": {"target_layer_ids": [2, 0], "mask_token_id": 3}}), "strictly increasing"),
        (write_dflash, dict(config_overrides={"block_size": None}), r"'block_size' is missing"),
        (write_dflash, dict(config_overrides={"auto_map": {"AutoModel": "dflash.DFlashDraftModel"}}), "trust_remote_code=True"),
        (write_dspark, dict(config_overrides={"model_file": "dspark.py"}), "trust_remote_code=True"),
        (write_dflash, dict(config_overrides={"architectures": ["DFlash2DraftModel"]}), "DFlash2"),
    ],
)
def test_bad_checkpoint_is_one_clear_value_error(tmp_path, root, qwen3, writer, kw, match):
    model, tok = qwen3
    path = _bad(tmp_path, root, writer, **kw)
    with pytest.raises(ValueError, match=match):
        load_drafter(path, model)
    # the same error surfaces from generate() before any token is produced
    with pytest.raises(ValueError, match=match):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(path),
                             draft_strategy="dspark" if writer is write_dspark else "dflash"))


def test_gemma4_dspark_checkpoint_loads(tmp_path):
    """DeepSpec's Gemma-4 DSpark layout (Gemma4DSparkModel, flat gemma4_text config) loads as dspark
    (its cross-check, generation and error cases: test_drafter_gemma4.py)."""
    from mlx_specdec_plugin.testing.drafters import write_gemma4_dspark
    from test_drafter_gemma4 import GEMMA4_TINY

    save_tiny_model(tmp_path / "g4", "gemma4_text", **GEMMA4_TINY)
    model, _ = mlx_lm.load(str(tmp_path / "g4"))
    d = load_drafter(write_gemma4_dspark(tmp_path / "ds", tmp_path / "g4", target_layer_ids=TAPS), model)
    assert (d.kind, d.config.architectures, d.config.proposal_length) == ("dspark", ("Gemma4DSparkModel",), 7)
    assert d.config.gemma4 is not None and "lm_head" in d.module and "embed_tokens" in d.module


def test_hidden_size_mismatch_with_target(root):
    wide, _ = mlx_lm.load(str(root / "qwen3_wide"))
    with pytest.raises(ValueError, match=r"'hidden_size' 32 differs from the target's hidden size 64"):
        load_drafter(root / "dflash", wide)


def test_drafter_for_another_family(root):
    llama, _ = mlx_lm.load(str(root / "llama"))  # same sizes, other family
    with pytest.raises(ValueError, match=r"'model_type' 'qwen3' says it was built for a qwen target"):
        load_drafter(root / "dspark", llama)


def test_trust_remote_code_loads_without_running_code(tmp_path, root, qwen3):
    model, _ = qwen3
    path = _bad(tmp_path, root, write_dflash, config_overrides={"auto_map": {"AutoModel": "dflash.X"}, "model_file": "x.py"})
    (path / "x.py").write_text("raise SystemExit('checkpoint code must never run')\n")
    assert load_drafter(path, model, trust_remote_code=True).kind == "dflash"


# ---------------------------------------------------------------- quantization


@pytest.mark.parametrize("bits", [4, 8])
def test_quantize_at_load_and_saved_conversion(tmp_path, root, qwen3, bits):
    model, tok = qwen3
    q = load_drafter(root / "dspark", model, quantize={"bits": bits, "group_size": 32})
    kinds = {type(m).__name__ for _, m in q.module.named_modules()}
    assert "QuantizedLinear" in kinds and "QuantizedEmbedding" in kinds
    assert isinstance(q.module.confidence_head.proj, nn.Linear)
    saved = save_drafter(q, tmp_path / f"dspark-{bits}bit")
    assert json.loads((saved / "config.json").read_text())["quantization"] == {"group_size": 32, "bits": bits}
    again = load_drafter(saved, model)
    assert again.config.quantization == {"group_size": 32, "bits": bits}
    # same weights -> same proposals
    target = TargetAdapter(model)
    drafts = []
    for d in (q, again):
        p = dspark.build(target, d, StrategyOptions())
        p.extend(list(range(6)), target(mx.array([list(range(6))], dtype=mx.uint32), target.make_cache(), TAPS)[1])
        drafts.append(p.propose(DraftContext(list(range(7)), Sampling.create(None)), 7).tokens.tolist())
    assert drafts[0] == drafts[1]
    # and greedy generation stays exact with a quantized drafter
    ref = [t for t, _ in generate_step(mx.array(tok.encode("abc abc")), model, max_tokens=24)]
    out = [r.token for r in stream_generate(model, tok, "abc abc", max_tokens=24, draft_model=again, num_draft_tokens=7)]
    assert out == ref[: len(out)] and len(out) == 24
