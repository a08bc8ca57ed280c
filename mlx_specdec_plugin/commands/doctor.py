"""``mlx-specdec doctor``: what this machine gives MLX — device, the BLAS behind the CPU backend,
and the matmul speed it delivers (GFLOP/s on the shapes decoding uses).

The shapes: one and four rows through a 576x1536 projection (a small model's decode step and a
4-token verify), sixteen rows through a 49152-wide LM head, and a square 1024 product.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from typing import List, Optional, Tuple

import mlx.core as mx

from .. import blas

SHAPES: Tuple[Tuple[int, int, int], ...] = ((1, 576, 1536), (4, 576, 1536), (16, 576, 49152), (1024, 1024, 1024))


def matmul_gflops(m: int, k: int, n: int, repeats: int = 5) -> float:
    """float32 ``(m, k) @ (n, k).T`` on the default device: GFLOP/s of the median of ``repeats``."""
    a, w = mx.random.normal((m, k)), mx.random.normal((n, k))
    mx.eval(a, w)
    mx.eval(a @ w.T)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mx.eval(a @ w.T)
        times.append(time.perf_counter() - t)
    return 2.0 * m * k * n / statistics.median(times) / 1e9


def bundled_blas_loaded() -> Optional[str]:
    """The mlx[cpu] wheel's own libblas, if this process mapped it (Linux)."""
    try:
        with open("/proc/self/maps") as f:
            hits = {line.split()[-1] for line in f if "mlx_cpu.libs/libblas" in line}
    except OSError:
        return None
    return sorted(hits)[0] if hits else None


def report() -> dict:
    st = blas.status()
    serving = blas.serving_library() or (bundled_blas_loaded() if st.kind == "bundled" else None)
    with mx.stream(mx.cpu):
        gflops = {f"{m}x{k}.{n}x{k}T": matmul_gflops(m, k, n) for m, k, n in SHAPES}
    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "mlx": mx.__version__,
        "default_device": str(mx.default_device()),
        "blas": {"kind": st.kind, "loaded": st.path, "serving_cblas_sgemm": serving, "note": st.note},
        "cpu_matmul_gflops": gflops,
    }


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="mlx-specdec doctor", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args(argv)
    r = report()
    if a.json:
        print(json.dumps(r, indent=1))
        return 0
    print(f"python {r['python']} on {r['platform']}, mlx {r['mlx']}, default device {r['default_device']}")
    print(blas.describe())
    if r["blas"]["serving_cblas_sgemm"]:
        print(f"cblas_sgemm served by: {r['blas']['serving_cblas_sgemm']}")
    print("CPU float32 matmul (GFLOP/s): " + ", ".join(f"{s} {g:.1f}" for s, g in r["cpu_matmul_gflops"].items()))
    if r["blas"]["kind"] == "bundled":
        print("hint: the reference BLAS makes every CPU forward several times slower; "
              "pip install mkl (or apt-get install libopenblas0-pthread) and run again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
