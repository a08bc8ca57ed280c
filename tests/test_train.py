"""Spec for ``mlx-specdec train`` (issue 8), on tiny random targets (< 60 s on 2 CPU cores):

* the training forward is the runtime proposer's forward (same hidden states and Markov-corrected
  logits for every anchor), so what is trained is what drafts;
* a few dozen steps of self-distillation lower the loss; the saved drafter loads with our
  ``load_drafter`` *and* mlx-vlm's, whose draft distributions equal ours, and greedy decoding
  with it is token-identical to plain decoding;
* checkpoints resume to the same weights as an uninterrupted run, also when a run is cut into
  time-limited chunks and its state travels as small pieces without the frozen copies of the
  target's embedding/head; the DeepSpec layout keeps those copies frozen; the memory budget
  shrinks the step.
"""

from __future__ import annotations

import json

import mlx.core as mx
import mlx_lm
import pytest
from mlx.utils import tree_flatten
from mlx_lm.generate import generate_step

from mlx_specdec_plugin import load_drafter, stream_generate
from mlx_specdec_plugin.contract import StrategyOptions
from mlx_specdec_plugin.strategies import dflash, dspark
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import save_tiny_model
from mlx_specdec_plugin.train.trainer import (
    TargetFeatures,
    Trainer,
    TrainConfig,
    block_hidden,
    block_targets,
    default_taps,
    draft_logits,
    fit_to_budget,
    main as train_main,
    new_drafter,
    pack_checkpoint,
    unpack_checkpoint,
)

PROMPTS = ["def fib(n):", "the cat sat on the", "1, 2, 3, 4,", "hello world", "import os\nimport", "a b c d",
           "once upon a time", "for i in range(10):"]
SMALL = dict(seq_len=48, batch_size=2, num_anchors=8, block_size=5, markov_rank=16, num_taps=2, eval_fraction=0.25,
             eval_blocks=64, log_every=1, save_every=0)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    save_tiny_model(root / "t", "qwen3", seed=1, sharpness=4, num_hidden_layers=4)
    model, tok = mlx_lm.load(str(root / "t"))
    return root, model, tok


@pytest.mark.parametrize("strategy, causal", [("dspark", False), ("dflash", False), ("dspark", True)])
def test_training_forward_is_the_runtime_forward(target, strategy, causal):
    _, model, _ = target
    d = new_drafter(model, TrainConfig(strategy=strategy, block_size=5, markov_rank=8, num_taps=2, num_draft_layers=2))
    if causal:  # the config knob the runtime honours (DSpark without sample_from_anchor / causal blocks)
        from dataclasses import replace

        d = type(d)(replace(d.config, causal=True), d.module, d.target_model)
        for layer in d.module.layers:
            layer.self_attn.causal = True
    if strategy == "dspark":  # make the Markov term matter
        w2 = d.module.markov_head.markov_w2
        w2.weight = mx.random.normal(w2.weight.shape)
    L, g = 40, 5
    tokens = mx.random.randint(0, 258, (2, L)).astype(mx.uint32)
    feats, _ = TargetFeatures(model, d.tap_layers).batch([0, 1], tokens)
    anchors = mx.array([[3, 17, 30], [1, 10, 34]])
    hidden = block_hidden(d, feats, tokens, anchors, g)
    _, _, _, prev = block_targets(tokens, mx.ones((2, L), mx.int32), anchors, g)
    logits = draft_logits(d, hidden, prev)
    mod = dspark if strategy == "dspark" else dflash
    worst = 0.0
    for b in range(2):
        for j in range(3):
            a, i = anchors[b, j].item(), b * 3 + j
            prop = mod.build(TargetAdapter(model), d, StrategyOptions(num_draft_tokens=g))
            prop.extend(tokens[b, :a].tolist(), feats[b : b + 1, :a])
            base, h = prop.base_logits(tokens[b, a].item(), g)
            if strategy == "dspark":
                base = base + prop.markov(prev[i])
            worst = max(worst, mx.abs(h - hidden[i]).max().item(), mx.abs(base - logits[i]).max().item())
    assert worst < 1e-4


def _reference(model, tok, prompt, n=40):
    out = [t for t, _ in generate_step(mx.array(tok.encode(prompt)), model, max_tokens=n)]
    eos = set(tok.eos_token_ids)
    return out[: next((i for i, t in enumerate(out) if t in eos), len(out))]


def _ours(model, tok, prompt, drafter, n=40):
    out = []
    for r in stream_generate(model, tok, prompt, max_tokens=n, draft_model=drafter, draft_strategy=drafter.kind):
        out.append(r.token)
    return out[: len(_reference(model, tok, prompt, n))]


@pytest.fixture(scope="module")
def trained_dspark(target):
    root, model, tok = target
    out = root / "dspark"
    trainer = Trainer(model, tok, TrainConfig(strategy="dspark", steps=40, lr=3e-3, **SMALL), out, resume=False,
                      progress=False)
    trainer.add_records([{"prompt": p} for p in PROMPTS], generate=True, max_new_tokens=40)
    log = trainer.fit()
    return out, log, trainer.evaluate()


def test_dspark_smoke_loss_falls_loads_everywhere_and_decodes_exactly(target, trained_dspark):
    root, model, tok = target
    out, log, ev = trained_dspark
    first = sum(r["loss"] for r in log[:5]) / 5
    last = sum(r["loss"] for r in log[-5:]) / 5
    print(f"dspark loss {first:.3f} -> {last:.3f}; held-out tau T=0 {ev['tau_t0']} T=1 {ev['tau_t1']}")
    assert last < 0.8 * first
    assert 1.0 <= ev["tau_t0"] <= 6.0 and 1.0 <= ev["tau_t1"] <= 6.0
    assert len(ev["accept_t0_by_position"]) == 5
    assert (out / "generated.jsonl").is_file() and (out / "checkpoint" / "optimizer.safetensors").is_file()

    drafter = load_drafter(out, model)
    assert (drafter.kind, drafter.config.layout, drafter.config.proposal_length) == ("dspark", "dflash_config", 5)
    assert drafter.config.enable_confidence_head and drafter.config.markov_rank == 16
    for p in PROMPTS[:3]:
        assert _ours(model, tok, p, drafter) == _reference(model, tok, p)

    # mlx-vlm reads the same folder and drafts the same distributions
    xcheck = pytest.importorskip("test_drafter_crosscheck")
    diff, markov_effect = xcheck._compare(root, model, "dspark", "dspark", dspark, g=5)
    assert diff < 1e-4 and markov_effect > 0


def test_dflash_cli_smoke_and_mlx_vlm(target, capsys):
    root, model, tok = target
    data = root / "gen.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out = root / "dflash"
    rc = train_main([
        "--target", str(root / "t"), "--strategy", "dflash", "--data", str(data), "--generate", "--max-new-tokens",
        "32", "--out", str(out), "--steps", "12", "--seq-len", "48", "--block-size", "4", "--num-taps", "2",
        "--num-anchors", "8", "--eval-fraction", "0.25", "--eval-blocks", "32", "--no-progress", "--quantize", "8",
    ])
    assert rc == 0
    ev = json.loads(capsys.readouterr().out)
    assert set(ev) >= {"tau_t0", "tau_t1", "accept_t0_by_position", "accept_t1_by_position"}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["DFlashDraftModel"] and cfg["block_size"] == 5  # z-lab counts the anchor
    drafter = load_drafter(out, model)
    assert drafter.kind == "dflash" and drafter.config.proposal_length == 4
    for p in PROMPTS[:2]:
        assert _ours(model, tok, p, drafter) == _reference(model, tok, p)
    assert load_drafter(str(out) + "-8bit", model).config.quantization["bits"] == 8
    xcheck = pytest.importorskip("test_drafter_crosscheck")
    diff, _ = xcheck._compare(root, model, "dflash", "dflash", dflash, g=4)
    assert diff < 1e-4


def test_resume_matches_uninterrupted_run(target):
    root, model, tok = target
    records = [{"text": "the quick brown fox jumps over the lazy dog. " * 6 + p} for p in PROMPTS]
    cfg = TrainConfig(strategy="dspark", steps=6, **{**SMALL, "save_every": 3})

    def run(out, stop_at=None):
        t = Trainer(model, tok, cfg, out, resume=True, progress=False)
        t.add_records(records)
        t.fit(stop_at) if stop_at else t.fit()
        return t

    full = run(root / "full")
    run(root / "cut", stop_at=3)
    resumed = Trainer(model, tok, cfg, root / "cut", resume=True, progress=False)
    assert resumed.step == 3
    resumed.add_records(records)
    resumed.fit()
    a = dict(tree_flatten(full.drafter.module.parameters()))
    b = dict(tree_flatten(resumed.drafter.module.parameters()))
    assert max(mx.abs(a[k] - b[k]).max().item() for k in a) < 1e-5


def test_a_run_cut_into_chunks_and_moved_as_pieces_resumes_to_the_uninterrupted_weights(target, monkeypatch):
    import mlx_specdec_plugin.train.trainer as train_mod

    root, model, tok = target
    records = [{"text": "the quick brown fox jumps over the lazy dog. " * 6 + p} for p in PROMPTS]
    cfg = TrainConfig(strategy="dspark", layout="deepspec", steps=6, **SMALL)
    full = Trainer(model, tok, cfg, root / "chunk_full", resume=False, progress=False)
    full.add_records(records)
    full.fit()

    clock = iter(range(0, 10_000))  # a clock that ticks once per reading: the chunk ends mid-run
    monkeypatch.setattr(train_mod.time, "time", lambda: float(next(clock)))
    first = Trainer(model, tok, cfg, root / "chunk_a", resume=False, progress=False)
    first.add_records(records)
    first.fit(stop_after_s=8)
    monkeypatch.undo()
    assert not first.finished and 0 < first.step < 6
    assert not (root / "chunk_a" / "model.safetensors").exists()  # no drafter written for a chunk

    pieces = pack_checkpoint(root / "chunk_a", model, root / "moved", max_piece_bytes=60_000)
    assert len(pieces) > 2 and all(p.stat().st_size <= 60_000 for p in pieces[:-1])
    blob = b"".join(p.read_bytes() for p in pieces[:-1])
    assert b"embed_tokens" not in blob and b"lm_head" not in blob  # the frozen copies stay behind
    unpack_checkpoint(root / "moved", root / "chunk_b", model)  # another machine, a fresh folder
    second = Trainer(model, tok, cfg, root / "chunk_b", resume=True, progress=False)
    assert second.step == first.step
    second.add_records(records)
    second.fit()
    assert second.finished
    a = dict(tree_flatten(full.drafter.module.parameters()))
    b = dict(tree_flatten(second.drafter.module.parameters()))
    assert a.keys() == b.keys()
    assert max(mx.abs(a[k] - b[k]).max().item() for k in a) < 1e-5

    damaged = root / "moved" / pieces[1].name
    damaged.write_bytes(b"x" + damaged.read_bytes()[1:])
    with pytest.raises(ValueError, match="sha256"):
        unpack_checkpoint(root / "moved", root / "chunk_c", model)


def test_deepspec_layout_keeps_embed_and_head_frozen(target):
    root, model, tok = target
    t = Trainer(model, tok, TrainConfig(strategy="dspark", layout="deepspec", steps=3, **SMALL), root / "ds_native",
                resume=False, progress=False)
    t.add_records([{"text": "abc def ghi jkl mno pqr stu vwx yz " * 8}])
    before = mx.array(t.drafter.module.embed_tokens.weight)
    t.fit()
    assert mx.array_equal(before, t.drafter.module.embed_tokens.weight)
    d = load_drafter(root / "ds_native", model)
    assert d.config.layout == "deepspec" and "lm_head" in d.module
    assert d.config.architectures == ("Qwen3DSparkModel",)


def test_default_taps_and_memory_budget():
    assert default_taps(36, 5) == (1, 9, 17, 25, 33)  # z-lab / DeepSpec Qwen3-4B
    assert default_taps(30, 3) == (1, 14, 27)
    assert default_taps(4, 2) == (0, 3)
    big = TrainConfig(strategy="dspark", batch_size=8, num_anchors=64, memory_budget_gb=0.5)
    small, feature_bytes = fit_to_budget(big, vocab=151936, hidden=2560, n_taps=5)
    assert small.num_anchors * small.batch_size < 64 * 8 and feature_bytes > 0
    assert fit_to_budget(TrainConfig(), 100, 8, 2)[1] is None


def test_time_budget_fixes_the_step_count_and_resume_keeps_it(target):
    root, model, tok = target
    records = [{"text": "the quick brown fox jumps over the lazy dog. " * 6 + p} for p in PROMPTS]
    cfg = TrainConfig(strategy="dflash", steps=10_000, time_budget_s=3.0, **{**SMALL, "save_every": 0})
    t = Trainer(model, tok, cfg, root / "budget", resume=False, progress=False)
    t.add_records(records)
    w0 = dict(tree_flatten(t.drafter.module.parameters()))
    t.fit()
    steps = t.cfg.steps
    assert 1 <= t.step <= steps < 10_000  # the budget, not --steps, ended the run (a 15 % overrun stops early)
    assert json.loads((root / "budget" / "train_config.json").read_text())["steps"] == steps
    assert any(not mx.array_equal(w0[k], v) for k, v in tree_flatten(t.drafter.module.parameters()))
    again = Trainer(model, tok, cfg, root / "budget", resume=True, progress=False)
    assert again.cfg.steps == steps and again.cfg.time_budget_s is None  # resumed on the same schedule


def test_generate_only_writes_the_responses_and_no_drafter(target):
    root, model, tok = target
    data = root / "gen_only.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS[:3]))
    out = root / "gen_only"
    assert train_main(["--target", str(root / "t"), "--data", str(data), "--generate", "--generate-only",
                       "--max-new-tokens", "8", "--gen-batch", "2", "--out", str(out), "--no-progress"]) == 0
    rows = [json.loads(l) for l in (out / "generated.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(0 < len(r["response_ids"]) <= 8 for r in rows)
    assert not (out / "config.json").exists()
    with pytest.raises(SystemExit):
        train_main(["--target", str(root / "t"), "--data", str(data), "--generate-only", "--out", str(out)])
