"""``mlx-specdec strategies``: the installed strategies and acceptors, with the package that registers each."""

from __future__ import annotations

import argparse
import json
from typing import List, Optional

from ..plugins import registry


def strategies_main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mlx-specdec strategies", description="List installed strategies and acceptors")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    reg = registry()
    rows = {
        kind: [
            {"name": n, "distribution": e.distribution, "version": e.version, "plugin": e.plugin,
             "description": e.item.description,
             **({"options": {o.name: {"default": o.default, "help": o.help} for o in e.item.options}}
                if getattr(e.item, "options", None) else {})}
            for n, e in sorted(entries.items())
        ]
        for kind, entries in (("strategies", reg.strategies), ("acceptors", reg.acceptors))
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for kind, items in rows.items():
        print(f"{kind}:")
        for r in items:
            print(f"  {r['name']:<14} {r['distribution']} {r['version']}  {r['description']}")
            for name, o in (r.get("options") or {}).items():
                print(f"  {'':<14} --strategy-option {name}=... (default {o['default']}): {o['help']}")
    return 0
