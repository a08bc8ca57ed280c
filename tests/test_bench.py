"""Spec: ``mlx-specdec bench`` and ``mlx-specdec calibrate`` (commands, not timed tests).

bench runs plain mlx-lm, mlx-lm's own speculative loop, mlx-vlm's loop (or says why not) and our
strategy x acceptor combinations on the same prompts and prints a table + JSON with tokens/s,
speedup, tau, acceptance by position, draft/verify split, the cost-model ideal and loop
efficiency. calibrate caches the verify curve keyed by model, quantization, mlx and device.
"""

import json

import mlx.core as mx
import mlx.nn as nn
import pytest

from mlx_specdec_plugin import costs
from mlx_specdec_plugin.bench import runner as bench
from mlx_specdec_plugin.commands.cli import main as cli_main
from mlx_specdec_plugin.generate import proposer_factory
from mlx_specdec_plugin.options import draft_tokens_type
from mlx_specdec_plugin.scheduler import CostCurve
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_tiny_model, tiny_config


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_SPECDEC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_prompt_sets_ship_with_the_package():
    for name in bench.PROMPT_SETS:
        prompts = bench.load_prompts([name], 100)
        assert len(prompts) >= 5 and all(p for _, p in prompts)


def test_bench_prints_the_table_and_writes_the_json(tmp_path, cache_dir, capsys):
    out = tmp_path / "bench.json"
    rc = cli_main(["bench", "--random-weights", "tiny", "--random-draft", "layerskip:1", "--max-tokens", "10",
                   "--prompts", "code", "--num-prompts", "1", "--num-draft-tokens", "2", "auto",
                   "--strategies", "draft-model", "oracle:0", "--acceptors", "greedy", "--repeats", "1",
                   "--no-progress", "--json", str(out), "--plot-dir", str(tmp_path / "plots")])
    assert rc == 0
    text = capsys.readouterr().out
    for word in ("plain", "mlx-lm-spec k=2", "mlx-vlm", "draft-model greedy k=auto", "oracle:0 greedy k=2",
                 "speedup", "tau", "eff"):
        assert word in text
    result = json.loads(out.read_text())
    assert len(result["verify_curve_s"]) == 9 and result["max_tokens"] == 10
    rows = {r["method"]: r for r in result["methods"]}
    assert rows["plain"]["speedup"] == pytest.approx(1.0, abs=1e-9) and rows["plain"]["tokens"] == 10
    assert rows["mlx-vlm dflash/dspark"]["status"].startswith(("n/a", "unsupported"))
    assert rows["mlx-lm-spec k=2"]["mean_accepted_length"] >= 1.0
    for name in ("draft-model greedy k=2", "draft-model greedy k=auto", "oracle:0 greedy k=2"):
        r = rows[name]
        assert r["tokens"] == 10
        for key in ("tokens_per_s", "speedup", "mean_accepted_length", "acceptance_by_position", "draft_s",
                    "verify_s", "ideal_speedup", "loop_efficiency"):
            assert r[key] is not None, (name, key)
    assert rows["oracle:0 greedy k=2"]["mean_accepted_length"] == 1.0
    assert "auto_lengths" in rows["draft-model greedy k=auto"]


def test_layerskip_draft_shares_the_target_weights():
    model, config = bench.random_model("tiny")
    draft = bench.layerskip_draft(model, config, 1)
    assert len(draft.layers) == 1 and draft.model.embed_tokens is model.model.embed_tokens
    assert draft(mx.array([[1, 2, 3]])).shape == (1, 3, config["vocab_size"])


def test_real_shapes_are_known():
    for shape in ("qwen3-0.6b", "qwen3-4b", "qwen3-8b", "qwen2.5-0.5b", "qwen2.5-1.5b"):
        assert bench.SHAPES[shape]["vocab_size"] == 151936


def test_calibrate_caches_the_curve_per_model_quantization_mlx_and_device(cache_dir, monkeypatch):
    model = make_tiny_model(tiny_config("llama"), seed=0)
    first = costs.calibrate(model, width=3, repeats=1, context=8, progress=False)
    assert len(first.curve.verify) == 3 and all(t > 0 for t in first.curve.verify)
    path = costs.cache_path(first.key)
    assert path.is_file() and path.is_relative_to(cache_dir)
    for field in ("model", "quantization", "mlx", "device"):
        assert first.key[field]
    assert first.key["mlx"] == mx.__version__

    def boom(*a, **k):
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(costs, "measure_verify_curve", boom)
    again = costs.calibrate(model, width=3, repeats=1, context=8, progress=False)
    assert again.curve == first.curve

    quantized = make_tiny_model(tiny_config("llama", hidden_size=64), seed=0)
    nn.quantize(quantized, group_size=32, bits=4)
    assert "4bit" in costs.quantization_of(quantized)
    key = costs.cache_key(quantized)
    assert costs.cache_path(key) != path


def test_calibrate_measures_the_drafter(cache_dir):
    cfg = tiny_config("llama")
    target, draft = make_tiny_model(cfg, seed=0), make_tiny_model(cfg, seed=1)
    build = proposer_factory(target, draft, "draft-model")  # the engine builds, the calibration times
    cal = costs.calibrate(target, draft_model=draft, strategy="draft-model", build=build, width=3, draft_width=2,
                              repeats=1, context=8, progress=False)
    assert len(cal.curve.draft) == 3 and cal.curve.draft[0] == 0.0 and cal.curve.draft[2] > 0
    assert cal.key["drafter"].startswith("draft-model:")


def test_calibrate_command_prints_and_caches(tmp_path, cache_dir, capsys):
    path = save_tiny_model(tmp_path / "m", "llama")
    assert cli_main(["calibrate", "--model", str(path), "--width", "2", "--repeats", "1", "--context", "8",
                     "--no-progress", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["verify_s"]) == 2 and d["key"]["model"] == str(path)
    assert (cache_dir / "calibration").is_dir()


def test_num_draft_tokens_auto_on_the_command_line(tmp_path, cache_dir, capsys):
    assert draft_tokens_type("auto") == "auto" and draft_tokens_type("4") == 4
    path = save_tiny_model(tmp_path / "m", "llama")
    assert cli_main(["generate", "--model", str(path), "--draft-model", str(path), "--num-draft-tokens", "auto",
                     "--max-tokens", "12", "--prompt", "hello", "--ignore-chat-template"]) == 0
    assert capsys.readouterr().out.strip()
    assert list((cache_dir / "calibration").iterdir())  # auto calibrated and cached the curve


def test_upstream_default_is_kept():
    from mlx_lm.generate import setup_arg_parser

    from mlx_specdec_plugin.options import allow_auto_draft_tokens

    parser = setup_arg_parser()
    default = parser.parse_args([]).num_draft_tokens
    allow_auto_draft_tokens(parser)
    # None = "resolve per strategy" (upstream's 3, or a block drafter's trained width)
    assert parser.parse_args([]).num_draft_tokens in (default, None)
    assert parser.parse_args(["--num-draft-tokens", "auto"]).num_draft_tokens == "auto"
