"""Spec: on Linux the package gives MLX's CPU backend an optimised BLAS when one is installed,
chosen before ``mlx.core`` is imported (``mlx_specdec_plugin.blas``); ``MLX_SPECDEC_BLAS`` picks
one or opts out, a bad value falls back to the bundled BLAS with one clear note, and the results
of a matmul are the same either way. Each case runs in a fresh interpreter (the choice is made
once per process)."""

import json
import os
import subprocess
import sys

import pytest

from mlx_specdec_plugin import blas

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the BLAS choice is Linux-only")

PROBE = r"""
import json, sys
import numpy as np
import mlx_specdec_plugin
from mlx_specdec_plugin import blas
import mlx.core as mx
a = np.random.default_rng(0).standard_normal((8, 96)).astype(np.float32)
b = np.random.default_rng(1).standard_normal((96, 40)).astype(np.float32)
with mx.stream(mx.cpu):
    c = np.array(mx.array(a) @ mx.array(b))
s = blas.status()
print(json.dumps({"kind": s.kind, "path": s.path, "note": s.note, "serving": blas.serving_library(),
                  "err": float(np.abs(c - a.astype(np.float64) @ b).max())}))
"""


def probe(value=None, code=PROBE):
    env = {k: v for k, v in os.environ.items() if k != blas.ENV}
    if value is not None:
        env[blas.ENV] = value
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@linux
@pytest.mark.parametrize("value", ["bundled", "off"])
def test_opting_out_keeps_the_bundled_blas(value):
    r = probe(value)
    assert r["kind"] == "bundled" and r["path"] is None and value in r["note"]
    assert r["serving"] is None  # nothing was put in front of the wheel's own library
    assert r["err"] < 1e-3


@linux
def test_a_missing_library_falls_back_with_one_note(tmp_path):
    r = probe(str(tmp_path / "libnope.so"))
    assert r["kind"] == "bundled" and "no such file" in r["note"] and r["err"] < 1e-3


@linux
def test_a_file_that_is_no_library_falls_back_with_one_note(tmp_path):
    fake = tmp_path / "libblas.so.3"
    fake.write_bytes(b"not an ELF file")
    r = probe(str(fake))
    assert r["kind"] == "bundled" and "could not load" in r["note"] and str(fake) in r["note"]


@linux
def test_an_unknown_kind_is_named():
    r = probe("openblass")
    assert r["kind"] == "bundled" and "openblass" in r["note"]


@linux
def test_mlx_imported_first_is_reported_not_overridden():
    r = probe(None, "import mlx.core\n" + PROBE)
    assert r["kind"] == "bundled" and "imported before" in r["note"]


@linux
@pytest.mark.parametrize("kind", blas.KINDS)
def test_an_installed_fast_blas_serves_mlx_and_agrees(kind):
    path = blas.find(kind)
    if path is None:
        pytest.skip(f"no {kind} on this machine")
    r = probe(kind)
    assert r["kind"] == kind and r["path"] == path
    assert os.path.realpath(r["serving"]) == os.path.realpath(path)  # cblas_sgemm resolves to it
    assert r["err"] < 1e-3


@linux
def test_auto_prefers_mkl_then_openblas_then_blis():
    found = [k for k in blas.KINDS if blas.find(k)]
    r = probe("auto")
    assert r["kind"] == (found[0] if found else "bundled")


def test_doctor_reports_the_blas_and_gflops():
    out = subprocess.run([sys.executable, "-m", "mlx_specdec_plugin", "doctor", "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["blas"]["kind"] == probe(os.environ.get(blas.ENV))["kind"]  # what a fresh process chooses
    assert len(r["cpu_matmul_gflops"]) == 4 and all(g > 0 for g in r["cpu_matmul_gflops"].values())


@linux
def test_commands_that_run_models_say_which_blas_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mlx_specdec_plugin", "generate", "--model", str(tmp_path / "none"),
                          "--prompt", "x"], capture_output=True, text=True, timeout=300)
    lines = [l for l in out.stderr.splitlines() if "CPU BLAS" in l]
    assert len(lines) == 1 and lines[0].startswith("[mlx-specdec] CPU BLAS:")
