"""Spec: ``num_draft_tokens="auto"`` never loses and is reproducible.

* Any draft object the API accepts works (a drafter from ``load_drafter`` included).
* The first run calibrates quickly (a few widths and lengths), caches the curve, and later runs
  read it back without measuring.
* Decisions read only the calibrated curve and acceptance counts: the same seed gives the same
  tokens at T=1.
* A round that drafts nothing is a pipelined plain step: with every round empty the output is
  token-identical to mlx-lm's plain decoding, and mixing empty and drafting rounds changes
  nothing at T=0.
"""

import time

import mlx.core as mx
import mlx_lm
import pytest
from mlx_lm.generate import generate_step

from mlx_specdec_plugin.testing.drafters import write_dspark
from mlx_specdec_plugin import SamplingParams, SpecStats, load_drafter, stream_generate
from mlx_specdec_plugin import costs
from mlx_specdec_plugin.testing.tiny import save_tiny_model

PROMPT = "the cat sat on the mat. the cat sat on the"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto")
    target_dir = save_tiny_model(root / "t", "qwen3", seed=1, sharpness=6, num_hidden_layers=4)
    model, tok = mlx_lm.load(str(target_dir))
    write_dspark(root / "dspark", target_dir, layout="dflash_config", target_layer_ids=(0, 2))
    return model, tok, root


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_SPECDEC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def tokens(model, tok, **kw):
    return [r.token for r in stream_generate(model, tok, PROMPT, **kw)]


def test_auto_accepts_a_loaded_drafter_and_caches_a_quick_calibration(world, cache_dir):
    model, tok, root = world
    drafter = load_drafter(root / "dspark", model)
    t0 = time.perf_counter()
    out = tokens(model, tok, draft_model=drafter, num_draft_tokens="auto", max_tokens=24)
    first = time.perf_counter() - t0
    files = list((cache_dir / "calibration").glob("*.json"))
    assert len(out) == 24 and len(files) == 1
    measured_at = files[0].stat().st_mtime_ns
    t0 = time.perf_counter()
    assert tokens(model, tok, draft_model=drafter, num_draft_tokens="auto", max_tokens=24) == out
    assert files[0].stat().st_mtime_ns == measured_at  # read back, not measured again
    assert time.perf_counter() - t0 < first


def test_the_calibration_key_names_the_blas_and_the_drafter(world):
    model, _, root = world
    drafter = load_drafter(root / "dspark", model)
    assert str(root / "dspark") in costs.drafter_id(drafter)
    assert costs.cache_key(model)["blas"] == costs.blas_id()


def test_same_seed_same_tokens_under_auto_at_t1(world, cache_dir):
    model, tok, root = world
    runs = []
    for _ in range(3):
        mx.random.seed(7)
        runs.append(tokens(model, tok, draft_model=str(root / "dspark"), num_draft_tokens="auto", max_tokens=32,
                           sampling=SamplingParams(1.0)))
    assert runs[0] == runs[1] == runs[2]


def reference(model, tok, n, **kw):
    return [t for t, _ in generate_step(mx.array(tok.encode(PROMPT)), model, max_tokens=n, **kw)]


@pytest.mark.parametrize("schedule", ["never", "alternate", "bursts"])
def test_empty_rounds_are_plain_steps_token_identical_to_mlx_lm(world, schedule):
    model, tok, root = world
    pick = {"never": lambda i: 0, "alternate": lambda i: 2 * (i % 2), "bursts": lambda i: 3 if i % 7 == 6 else 0}[schedule]
    calls = []

    def draft_length(stats, cap):
        calls.append(len(stats.rounds))
        return min(pick(len(calls)), cap)

    stats = SpecStats()
    out = tokens(model, tok, draft_model=str(root / "dspark"), draft_length=draft_length, num_draft_tokens=3,
                 max_tokens=40, stats=stats)
    assert out == reference(model, tok, 40)[: len(out)] and len(out) == 40
    assert calls == sorted(set(calls))  # asked once per round, after the previous round was recorded
    assert sum(r.emitted for r in stats.rounds) == 40
    if schedule == "never":
        assert all(r.proposed == 0 for r in stats.rounds)


def test_empty_rounds_with_logits_processors_stay_exact(world):
    model, tok, root = world
    from mlx_lm.sample_utils import make_logits_processors

    procs = make_logits_processors(repetition_penalty=1.3)
    out = tokens(model, tok, draft_model=str(root / "dspark"), draft_length=lambda s, c: 0, num_draft_tokens=3,
                 max_tokens=30, logits_processors=procs)
    assert out == reference(model, tok, 30, logits_processors=make_logits_processors(repetition_penalty=1.3))
