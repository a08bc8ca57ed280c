"""Spec: every script in examples/ runs offline (tiny generated models) and prints what it promises.

Each example runs in a subprocess. The plugin package is installed the way pip lays it out
(its module plus a ``*.dist-info`` with the entry points read from its own pyproject.toml) on
PYTHONPATH in a temporary directory, so the shared environment is left untouched: a real
``pip install --no-build-isolation`` needs ``wheel`` in the venv, which it may not have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(args, env=None, cwd=None, timeout=300):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def example(name, *args):
    return run([sys.executable, str(EXAMPLES / name), *args])


def test_one_import_switch():
    out = example("one_import_switch.py")
    assert "Speculative: strategy=lookup" in out


def test_compare_acceptors():
    out = example("compare_acceptors.py")
    for acceptor in ("rejection", "block", "match"):
        assert acceptor in out


def test_dspark_run():
    out = example("dspark_run.py")
    assert "strategy=dspark" in out


def test_dflash_run_short_block_for_chat_16_for_code():
    out = example("dflash_run.py")
    assert "[chat, block_size=4] Speculative: strategy=dflash" in out
    assert "[code, block_size=16] Speculative: strategy=dflash" in out


def test_vlm_image():
    pytest.importorskip("mlx_vlm")
    out = example("vlm_image.py")
    assert "identical to mlx_vlm.generate: True" in out and "strategy=lookup" in out


def install_like_pip(package: Path, site: Path) -> str:
    """The module and a dist-info (METADATA + entry_points.txt from pyproject.toml) in ``site``."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    for module in tomllib.loads((package / "pyproject.toml").read_text())["tool"]["setuptools"]["py-modules"]:
        shutil.copy(package / f"{module}.py", site / f"{module}.py")
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{k} = {v}" for k, v in entries.items())
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return project["name"]


def test_plugin_package_registers_a_drafter(tmp_path):
    name = install_like_pip(EXAMPLES / "plugin_package", tmp_path)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    listing = run([sys.executable, "-m", "mlx_specdec_plugin", "strategies"], env=env)
    line = next(l for l in listing.splitlines() if "repeat-last" in l)
    assert name in line and "0.1.0" in line
    out = run([sys.executable, "-m", "specdec_example_plugin"], env=env, cwd=tmp_path)
    assert "strategy=repeat-last" in out
    # without the package on the path, the strategy is gone
    assert "repeat-last" not in run([sys.executable, "-m", "mlx_specdec_plugin", "strategies"])
