"""An optimised CPU BLAS for MLX on Linux, chosen before ``mlx.core`` is imported.

The ``mlx[cpu]`` Linux wheel links the netlib *reference* BLAS it bundles (a few GFLOP/s). MLX's
CPU backend calls ``cblas_sgemm`` (and LAPACK) through the dynamic linker, which resolves a symbol
in the process's global scope before a library's own dependencies. So loading an optimised BLAS
with ``RTLD_GLOBAL`` *before* ``mlx.core`` is first imported makes MLX use it: nothing is patched,
no environment variable has to be set before Python starts. :func:`preload` does that, once, from
``mlx_specdec_plugin/__init__.py``; it only reads the standard library.

Choice (``MLX_SPECDEC_BLAS``):

* ``auto`` (default): the first library found of Intel's MKL from PyPI (a dependency of ours on
  Linux x86-64, so no root is needed), then the system's OpenBLAS (``apt-get install
  libopenblas0-pthread``), then BLIS. Measured on a 2-core x86-64 CPU, MKL with its OpenMP
  threading runs every forward width fastest (``docs/benchmarks.md``).
* ``mkl``, ``openblas``, ``blis``: that kind only; a path: that library file.
* ``bundled`` (or ``off``, ``0``, ``none``): opt out, keep the wheel's reference BLAS.

macOS is left alone (MLX uses Accelerate and Metal there), and so is a process that imported
``mlx.core`` before us: its BLAS is already bound. :func:`status` tells what happened and
:func:`serving_library` which file actually serves ``cblas_sgemm``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

ENV = "MLX_SPECDEC_BLAS"
OPT_OUT = ("bundled", "off", "0", "none", "reference")
KINDS = ("mkl", "openblas", "blis")


@dataclass(frozen=True)
class BlasStatus:
    """What :func:`preload` did. ``kind``: ``mkl``/``openblas``/``blis``/``custom`` when a library was
    loaded, else ``bundled`` (Linux reference BLAS) or ``platform`` (macOS, other OSes). ``path``:
    the loaded file. ``note``: why (one line, for the CLI and ``mlx-specdec doctor``)."""

    kind: str
    path: Optional[str]
    note: str

    @property
    def fast(self) -> bool:
        return self.kind not in ("bundled",)


_STATUS: Optional[BlasStatus] = None


def _prefixes() -> List[Path]:
    out = []
    for p in (sys.prefix, sys.base_prefix, getattr(site, "USER_BASE", None), sysconfig.get_config_var("prefix")):
        if p and Path(p) not in out:
            out.append(Path(p))
    return out


def _first(patterns: List[str]) -> Optional[str]:
    for pattern in patterns:
        for hit in sorted(glob.glob(pattern), reverse=True):
            if os.path.isfile(hit):
                return hit
    return None


def find(kind: str) -> Optional[str]:
    """The library file for ``kind`` on this machine, or ``None``."""
    arch = os.uname().machine if hasattr(os, "uname") else ""
    multiarch = [f"/usr/lib/{arch}-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    if kind == "mkl":
        return _first([str(p / "lib" / "libmkl_rt.so*") for p in _prefixes()])
    if kind == "openblas":
        hit = _first([f"{d}/openblas-pthread/libopenblas*.so*" for d in multiarch]
                     + [f"{d}/libopenblas.so*" for d in multiarch]
                     + [f"{d}/openblas-openmp/libopenblas*.so*" for d in multiarch])
        return hit or ctypes.util.find_library("openblas")
    if kind == "blis":
        hit = _first([f"{d}/blis-pthread/libblis*.so*" for d in multiarch] + [f"{d}/libblis.so*" for d in multiarch])
        return hit or ctypes.util.find_library("blis")
    raise ValueError(f"unknown BLAS kind {kind!r} (choose from {', '.join(KINDS)})")


def _prepare_env(kind: str, path: str) -> None:
    """Threading defaults a library reads at its first call (the user's own settings win)."""
    if kind == "mkl":
        has_omp = bool(glob.glob(str(Path(path).parent / "libiomp5.so*")))
        os.environ.setdefault("MKL_INTERFACE_LAYER", "LP64")
        os.environ.setdefault("MKL_THREADING_LAYER", "INTEL" if has_omp else "SEQUENTIAL")


def _load(kind: str, path: str) -> Tuple[bool, str]:
    _prepare_env(kind, path)
    try:
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        getattr(lib, "cblas_sgemm")
    except (OSError, AttributeError) as e:
        return False, f"{path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return True, ""


def preload() -> BlasStatus:
    """Choose and load the BLAS (idempotent). Never raises: a failure leaves the bundled BLAS."""
    global _STATUS
    if _STATUS is not None:
        return _STATUS
    choice = os.environ.get(ENV, "auto").strip() or "auto"
    if not sys.platform.startswith("linux"):
        _STATUS = BlasStatus("platform", None, f"{sys.platform}: MLX's own BLAS")
    elif choice.lower() in OPT_OUT:
        _STATUS = BlasStatus("bundled", None, f"{ENV}={choice}: the mlx[cpu] wheel's reference BLAS")
    elif "mlx.core" in sys.modules:
        _STATUS = BlasStatus("bundled", None, "mlx.core was imported before mlx_specdec_plugin, so its BLAS was "
                             "already bound; import mlx_specdec_plugin first for a fast one")
    else:
        _STATUS = _choose(choice)
    return _STATUS


def _choose(choice: str) -> BlasStatus:
    if choice.lower() == "auto":
        tried = []
        for kind in KINDS:
            path = find(kind)
            if path is None:
                continue
            ok, why = _load(kind, path)
            if ok:
                return BlasStatus(kind, path, f"{kind} ({path}), found automatically")
            tried.append(why)
        extra = f" (could not load: {'; '.join(tried)})" if tried else ""
        return BlasStatus("bundled", None, "no optimised BLAS found: pip install mkl "
                          f"or apt-get install libopenblas0-pthread{extra}")
    kind = choice.lower() if choice.lower() in KINDS else "custom"
    path = find(kind) if kind != "custom" else choice
    if kind == "custom" and not os.path.isfile(path):
        return BlasStatus("bundled", None, f"{ENV}={choice}: no such file, or not one of auto, "
                          f"{', '.join(KINDS)}, bundled; using the bundled reference BLAS")
    if path is None:
        return BlasStatus("bundled", None, f"{ENV}={choice}: no {kind} library found; using the bundled reference BLAS")
    ok, why = _load(kind, path)
    if not ok:
        return BlasStatus("bundled", None, f"{ENV}={choice}: could not load {why}; using the bundled reference BLAS")
    return BlasStatus(kind, path, f"{kind} ({path}), from {ENV}={choice}")


def status() -> BlasStatus:
    return preload()


def serving_library() -> Optional[str]:
    """The file whose ``cblas_sgemm`` the process's global scope resolves first (Linux; else None)."""
    if not sys.platform.startswith("linux"):
        return None
    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    info = DlInfo()
    try:
        scope = ctypes.CDLL(None)  # the global scope: the executable and every RTLD_GLOBAL library
        sym = ctypes.cast(scope.cblas_sgemm, ctypes.c_void_p).value
        if not scope.dladdr(ctypes.c_void_p(sym), ctypes.byref(info)):
            return None
    except (OSError, AttributeError):
        return None
    return os.path.realpath(info.dli_fname.decode()) if info.dli_fname else None


def describe() -> str:
    """One line for the CLI: which BLAS MLX's CPU backend uses and how to change it."""
    s = status()
    if s.kind == "platform":
        return f"CPU BLAS: {s.note}"
    if s.fast:
        return f"CPU BLAS: {s.note}; {ENV}=bundled to opt out"
    return f"CPU BLAS: bundled reference BLAS (slow) - {s.note}"
