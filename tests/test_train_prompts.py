"""tools/make_train_prompts.py: the self-distillation prompt set (fast, standard library only)."""
import json
import string
from pathlib import Path

import pytest

from tools import make_train_prompts

ROOT = Path(__file__).resolve().parents[1]
EVAL = [ROOT / "mlx_specdec_plugin" / "prompts" / f"{name}.jsonl" for name in ("chat", "code", "math")]
N = 600


@pytest.fixture(scope="module")
def mod():
    return make_train_prompts


def _run(mod, path, seed):
    assert mod.main(["--out", str(path), "--n", str(N), "--seed", str(seed)]) == 0
    return path.read_bytes()


def _words(text):
    return text.lower().translate(str.maketrans("", "", string.punctuation)).split()


def _six_grams(text):
    w = _words(text)
    return {tuple(w[i:i + 6]) for i in range(len(w) - 5)}


def test_output_file(mod, tmp_path):
    data = _run(mod, tmp_path / "a.jsonl", 0)
    lines = data.decode("utf-8").splitlines()
    assert len(lines) == N
    prompts = [json.loads(line)["prompt"] for line in lines]
    assert all(isinstance(p, str) and p.strip() for p in prompts)
    assert len(set(prompts)) == N
    # deterministic for a seed, different for another
    assert _run(mod, tmp_path / "b.jsonl", 0) == data
    other = _run(mod, tmp_path / "c.jsonl", 1)
    assert other != data
    assert len(set(other.decode("utf-8").splitlines()) - set(lines)) > N // 2


def test_categories(mod):
    items = mod.make_prompts(N, 0)
    cats = [c for c, _, _ in items]
    assert set(cats) == {"chat", "code", "math"}
    share = {c: cats.count(c) / N for c in ("chat", "code", "math")}
    assert abs(share["chat"] - 0.45) < 0.02 and abs(share["code"] - 0.35) < 0.02 and abs(share["math"] - 0.20) < 0.02
    kinds = {k for c, k, _ in items if c == "code"}
    assert {"stdlib_docstring", "stdlib_explain"} <= kinds
    assert [p for _, _, p in items] == [p for _, _, p in mod.make_prompts(N, 0)]


def test_no_overlap_with_eval_prompts(mod):
    eval_prompts = [json.loads(line)["prompt"] for f in EVAL for line in f.read_text().splitlines() if line.strip()]
    assert len(eval_prompts) >= 20
    eval_grams = set().union(*(_six_grams(p) for p in eval_prompts))
    eval_norm = {" ".join(_words(p)) for p in eval_prompts}
    for seed in (0, 1):
        for _, _, p in mod.make_prompts(N, seed):
            assert p not in eval_prompts and " ".join(_words(p)) not in eval_norm
            assert not (_six_grams(p) & eval_grams), p
