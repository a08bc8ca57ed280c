"""Spec: the console scripts work as installed (run in a subprocess, like a user would)."""

import os
import shutil
import subprocess
import sys

import mlx_lm
import pytest

from mlx_specdec_plugin.testing.tiny import save_tiny_model

SCRIPT = shutil.which("mlx-specdec") or os.path.join(os.path.dirname(sys.executable), "mlx-specdec")


def run(*args, check=True):
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("cli") / "m", "llama", seed=1, sharpness=6))


def test_generate_matches_mlx_lm_and_prints_stats(model_path):
    prompt = "the cat sat on the mat. the cat sat on the"
    proc = run(SCRIPT, "generate", "--model", model_path, "--prompt", prompt, "--max-tokens", "24",
               "--ignore-chat-template", "--draft-strategy", "lookup", "--verbose", "True")
    model, tok = mlx_lm.load(model_path)
    expected = mlx_lm.generate(model, tok, tok.encode(prompt, add_special_tokens=False), max_tokens=24)
    assert expected in proc.stdout
    assert "Generation: " in proc.stdout and "Speculative: strategy=lookup acceptor=greedy" in proc.stdout
    assert "[mlx-specdec] strategy: lookup (requested)" in proc.stderr


def test_auto_uses_a_draft_model_and_says_why(model_path):
    proc = run(sys.executable, "-m", "mlx_specdec_plugin", "generate", "--model", model_path, "--draft-model",
               model_path, "--prompt", "hello", "--max-tokens", "8", "--temp", "0.7", "--seed", "3")
    assert "strategy: draft-model (--draft-model is an mlx-lm model)" in proc.stderr


def test_unknown_strategy_fails_with_one_line(model_path):
    proc = run(SCRIPT, "generate", "--model", model_path, "--prompt", "hi", "--draft-strategy", "nope", check=False)
    assert proc.returncode == 2
    assert "unknown draft strategy 'nope'; installed:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_strategies_lists_plugins_with_their_distribution():
    proc = run(SCRIPT, "strategies")
    assert "lookup" in proc.stdout and "mlx-specdec-plugin 0.1.0" in proc.stdout
    assert "rejection" in proc.stdout and "block" in proc.stdout


def error_lines(proc):
    """The stderr lines a failed command printed, the BLAS announcement left out."""
    return [l for l in proc.stderr.splitlines() if l.strip() and "CPU BLAS" not in l]


@pytest.mark.parametrize("case, expected", [
    ("missing model", "--model /no/such/dir: no such folder"),
    ("truncated drafter config", "config.json is not valid JSON (line 1"),
    ("shipped name typo", "--draft-model smollm2-dsprak: no such folder or shipped drafter; did you mean smollm2-dspark?"),
    ("strategy without drafter", "--draft-strategy dspark needs --draft-model"),
    ("no model offline", "no --model given, and mlx-lm's default"),
])
def test_a_bad_model_or_drafter_is_one_line_before_any_generation(model_path, tmp_path, case, expected):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"architectures": ["DFlashDraftModel"], "block_')
    args = {
        "missing model": ["--model", "/no/such/dir"],
        "truncated drafter config": ["--model", model_path, "--draft-model", str(broken)],
        "shipped name typo": ["--model", model_path, "--draft-model", "smollm2-dsprak"],
        "strategy without drafter": ["--model", model_path, "--draft-strategy", "dspark"],
        "no model offline": [],
    }[case]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([SCRIPT, "generate", *args, "--prompt", "hi", "--max-tokens", "4"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "strategy:" not in proc.stderr and proc.stdout == ""  # before anything is chosen or generated


def test_an_unknown_command_says_which_and_suggests_one():
    proc = run(SCRIPT, "generat", check=False)
    assert proc.returncode == 2
    assert error_lines(proc) == ["mlx-specdec: unknown command 'generat'; did you mean generate?"]


def test_generate_help_names_the_shipped_drafters():
    assert "smollm2-dspark" in run(SCRIPT, "generate", "--help").stdout


@pytest.mark.parametrize("flags, expected", [
    (["--strategy-option", "max_ngram=0"], "lookup needs 1 <= min_ngram <= max_ngram, got 1, 0"),
    (["--lookup-max-ngram", "0"], "lookup needs 1 <= min_ngram <= max_ngram, got 1, 0"),  # the old flag: an alias
    (["--strategy-option", "max_ngram=two"], "--strategy-option: strategy 'lookup': option max_ngram='two' is not"),
    (["--strategy-option", "colour=red"], "strategy 'lookup' has no option 'colour' (its options: max_ngram, min_ngram)"),
])
def test_strategy_options_reach_the_strategy_which_checks_them(model_path, flags, expected):
    proc = run(SCRIPT, "generate", "--model", model_path, "--prompt", "hi", "--max-tokens", "4",
               "--draft-strategy", "lookup", *flags, check=False)
    assert proc.returncode == 2
    errors = [l for l in error_lines(proc) if "error:" in l]
    assert len(errors) == 1 and expected in errors[0] and "Traceback" not in proc.stderr, proc.stderr
