"""Render the headline table of docs/benchmarks.md from `mlx-specdec bench --json` files (the ones
docs/scripts/headline_bench.sh writes): one markdown row per method, speedup as the median over
slots with its min-max, tau, loop efficiency and the round split.

  python docs/scripts/headline_table.py docs/bench/headline/qwen_*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _num(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)


def rows(path: Path):
    d = json.loads(path.read_text())
    for m in d["methods"]:
        if "tokens_per_s" not in m:
            continue  # mlx-vlm's loop where it cannot run (its reason is in the JSON)
        split = m.get("round_split_ms") or {}
        cells = [
            path.stem, m["method"], _num(m["tokens_per_s"]),
            f"{m['speedup']:.2f} ({m['speedup_min']:.2f}–{m['speedup_max']:.2f})",
            _num(m.get("mean_accepted_length")), _num(m.get("loop_efficiency")),
            (f"{split['draft']:.0f} / {split['verify']:.0f} / {split['commit'] + split['other']:.1f}" if split else "-"),
            " ".join(f"{k}:{v}" for k, v in (m.get("auto_lengths") or {}).items()) or "-",
        ]
        yield "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    print("| run | method | tok/s | speedup (min–max) | τ | eff | ms/round draft / verify / rest | auto lengths |")
    print("|---|---|---|---|---|---|---|---|")
    for p in paths:
        for r in rows(p):
            print(r)
    machine = {json.loads(p.read_text())["machine"]["blas"] for p in paths}
    print(f"\nBLAS: {', '.join(sorted(machine))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
