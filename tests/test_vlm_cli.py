"""Spec: ``mlx-specdec vlm`` is ``mlx_vlm generate`` (its parser, flags and defaults) plus the flags
``generate`` has (``--draft-strategy``, with ``--draft`` kept as a hidden alias, ``--acceptor``,
``--num-draft-tokens`` including ``auto``, ``--block-size``, ``--strategy-option``); at temperature 0
it prints what ``mlx_vlm generate`` prints."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("mlx_vlm")

from mlx_vlm.generate.dispatch import main as upstream_main  # noqa: E402

from mlx_specdec_plugin.testing.tiny_vlm import save_tiny_gemma4_vlm, write_png  # noqa: E402
from mlx_specdec_plugin.vlm.generation import vlm_main  # noqa: E402
from mlx_specdec_plugin.testing.drafters import GEMMA_DRAFT, flat_target_dir, write_dflash  # noqa: E402


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm_cli")
    model = save_tiny_gemma4_vlm(root / "g4", seed=1, sharpness=4.0)
    image = write_png(root / "img.png")
    from mlx_vlm import load

    flat = flat_target_dir(model, root / "flat", load(str(model))[0])
    dflash = write_dflash(root / "df", flat, target_layer_ids=(0, 2), seed=7, config_overrides=GEMMA_DRAFT)
    return dict(model=str(model), image=str(image), dflash=str(dflash))


def common(p):
    return ["--model", p["model"], "--image", p["image"], "--prompt", "Describe this.", "--max-tokens", "24",
            "--temperature", "0"]


def upstream_output(monkeypatch, capsys, argv):
    monkeypatch.setattr(sys, "argv", ["mlx_vlm.generate"] + argv)
    upstream_main()
    return capsys.readouterr().out


@pytest.mark.parametrize("extra", [[], ["--draft-strategy", "lookup", "--acceptor", "block", "--num-draft-tokens", "4"],
                                   ["--draft-model", "DFLASH", "--block-size", "6"], ["--draft", "none"]])
def test_same_output_as_mlx_vlm_generate(paths, monkeypatch, capsys, extra):
    extra = [paths["dflash"] if a == "DFLASH" else a for a in extra]
    expected = upstream_output(monkeypatch, capsys, common(paths))
    assert vlm_main(common(paths) + extra) == 0
    captured = capsys.readouterr()
    assert captured.out == expected
    strategy = {0: "lookup", 6: "lookup", 4: "dflash", 2: "none"}[len(extra)]
    assert f"strategy: {strategy}" in captured.err


def test_help_lists_upstream_and_our_flags():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-m", "mlx_specdec_plugin", "vlm", "--help"], capture_output=True, text=True,
                         env=env, timeout=120).stdout
    for flag in ("--image", "--audio", "--temperature", "--max-tokens", "--draft-model", "--processor-kwargs",
                 "--draft-strategy", "--acceptor", "--num-draft-tokens", "--block-size", "--strategy-option",
                 "--lookup-max-ngram"):
        assert flag in out, flag


def test_unsupported_combinations_fail_clearly(paths, capsys):
    assert vlm_main(common(paths) + ["--draft", "lookup", "--kv-bits", "4"]) == 2
    assert "--kv-bits" in capsys.readouterr().err


def test_auto_draft_length_as_in_generate(paths, monkeypatch, capsys, tmp_path):
    """``--num-draft-tokens auto`` (generate's SPEC_KEYS): calibrated through the VLM's language model, cached,
    and at temperature 0 still what ``mlx_vlm generate`` prints."""
    monkeypatch.setenv("MLX_SPECDEC_CACHE", str(tmp_path / "cache"))
    expected = upstream_output(monkeypatch, capsys, common(paths))
    assert vlm_main(common(paths) + ["--draft-model", paths["dflash"], "--num-draft-tokens", "auto"]) == 0
    captured = capsys.readouterr()
    assert captured.out == expected and "strategy: dflash" in captured.err
    assert list((tmp_path / "cache" / "calibration").glob("*.json"))
