"""``mlx-specdec calibrate``: measure and cache this machine's verify cost curve T(w) and the
drafter's cost (:mod:`~mlx_specdec_plugin.costs`), with the models loaded as ``bench`` loads them."""

from __future__ import annotations

import argparse
import json
from typing import List, Optional

from ..bench.runner import add_model_args, load_models
from ..costs import Calibration, cache_path, calibrate
from ..generate import proposer_factory


def format_curve(cal: Calibration) -> str:
    v = cal.curve.verify
    lines = [f"model={cal.key['model']} quantization={cal.key['quantization']} mlx={cal.key['mlx']} "
             f"device={cal.key['device']} drafter={cal.key['drafter']} context={cal.key['context']}",
             f"{'w':>3} {'T_verify(w) ms':>15} {'/ T(1)':>7}"]
    for w, t in enumerate(v, 1):
        lines.append(f"{w:>3} {t * 1e3:>15.3f} {t / v[0]:>7.2f}")
    if len(cal.curve.draft) > 1:
        lines.append(f"{'k':>3} {'T_draft(k) ms':>15}")
        for k, t in enumerate(cal.curve.draft):
            lines.append(f"{k:>3} {t * 1e3:>15.3f}")
    return "\n".join(lines)



def calibrate_main(argv: Optional[List[str]] = None) -> int:
    """``mlx-specdec calibrate``: measure and cache the cost curve (the models as ``bench`` loads them)."""
    parser = argparse.ArgumentParser(prog="mlx-specdec calibrate",
                                     description="Measure and cache T_verify(w) and the drafter's cost on this machine")
    add_model_args(parser)
    parser.add_argument("--draft-strategy", default=None,
                        help="the strategy whose drafting cost to measure (auto: the one --draft-model's config names; "
                        "default: none, the verify curve only)")
    parser.add_argument("--width", type=int, default=16, help="measure verify widths w = 1..WIDTH (default 16)")
    parser.add_argument("--draft-width", type=int, default=8, help="drafter lengths k = 1..K (default 8)")
    parser.add_argument("--context", type=int, default=256, help="tokens in the cache while measuring (default 256)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--force", action="store_true", help="re-measure even if a cached curve exists")
    parser.add_argument("--quick", action="store_true",
                        help="measure a few widths and draft lengths and interpolate (what `auto`'s first run does)")
    parser.add_argument("--json", action="store_true", help="print the curve as JSON")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    models = load_models(args)
    strategy = models.draft_strategy if args.draft_strategy == "auto" else args.draft_strategy
    strategy = strategy if strategy not in (None, "none") else None
    build = proposer_factory(models.model, models.draft, strategy) if strategy else None
    cal = calibrate(models.model, name=models.name, draft_model=models.draft, strategy=strategy, build=build,
                    width=args.width, draft_width=args.draft_width, context=args.context, repeats=args.repeats,
                    use_cache=not args.force, progress=not args.no_progress, quick=args.quick)
    cal_path = cache_path(cal.key)
    if args.force:  # re-measured: store it
        cal_path.parent.mkdir(parents=True, exist_ok=True)
        cal_path.write_text(json.dumps(cal.as_dict(), indent=1))
    if args.json:
        print(json.dumps({**cal.as_dict(), "path": str(cal_path)}, indent=1))
    else:
        print(format_curve(cal))
        print(f"cached at {cal_path}")
    return 0
