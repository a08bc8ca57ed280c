"""Rewrite imports written for the old flat layout (before the layout move of issue 13) to the new tree.

    python tools/relayout.py FILE...      # rewrite in place; prints each changed line
    python tools/relayout.py --check FILE...  # only print, exit 1 when something would change

Two kinds of reference are rewritten, from ``docs/relayout_map.txt`` (``old.dotted.module new.dotted.module``):

* absolute dotted names anywhere in a file (``from mlx_specdec_plugin.tiny import x``,
  ``python -m mlx_specdec_plugin.oracle_bench``, ``:mod:`mlx_specdec_plugin.cli```);
* relative imports inside the package (``from .drafting import Draft`` in what was ``server.py``),
  resolved against the file's OLD place (the same map, by file) and written relative to its new one.

Meant for one pass over code written against the old layout (a relative import that resolves to no
old module from the file's old place is left alone; an absolute name of a new module too).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "mlx_specdec_plugin"
MAP_FILE = ROOT / "docs" / "relayout_map.txt"
# new modules cut out of an old one: where their code (and its relative imports) came from
OLD_PLACE = {
    "mlx_specdec_plugin.drafters.checkpoint": "mlx_specdec_plugin.drafters",
    "mlx_specdec_plugin.drafters.config": "mlx_specdec_plugin.drafters",
    "mlx_specdec_plugin.drafters.layers": "mlx_specdec_plugin.drafters",
    "mlx_specdec_plugin.commands.generate": "mlx_specdec_plugin.cli",
    "mlx_specdec_plugin.commands.fetch": "mlx_specdec_plugin.fetch",
    "mlx_specdec_plugin.commands.calibrate": "mlx_specdec_plugin.bench",
    "mlx_specdec_plugin.bench.oracle": "mlx_specdec_plugin.oracle_bench",
    "mlx_specdec_plugin.server.http": "mlx_specdec_plugin.server",
    "mlx_specdec_plugin.server.protocol": "mlx_specdec_plugin.server",
}


def read_map() -> dict:
    out = {}
    for line in MAP_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            old, new = line.split()
            out[old] = new
    return out


def old_modules(moves: dict) -> set:
    """Every module of the old flat package (for telling an old-style relative import from a new one)."""
    now = set()
    for f in (ROOT / PKG).rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        now.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return (now - set(moves.values())) | set(moves)


def module_of(path: Path) -> str:
    parts = path.resolve().relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def map_module(name: str, moves: dict) -> str:
    """The new name of an old module (or of something inside one)."""
    for old in sorted(moves, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return moves[old] + name[len(old):]
    return name


def relative(target: str, package: str) -> str:
    """``target`` written relative to ``package`` (``from <this> import``)."""
    t, p = target.split("."), package.split(".")
    common = 0
    while common < min(len(t), len(p)) and t[common] == p[common]:
        common += 1
    return "." * (len(p) - common + 1) + ".".join(t[common:])


ABS = re.compile(rf"\b{PKG}(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
REL = re.compile(r"^(\s*from\s+)(\.+)([A-Za-z_][\w.]*)?(\s+import\s+)(.*)$")


def rewrite_text(text: str, path: Path, moves: dict, olds: set) -> str:
    inverse = {new: old for old, new in moves.items()}

    news = set(moves.values()) - set(moves)

    def absolute(m: re.Match) -> str:
        name = m.group(0)
        # longest prefix that is an old module; names of new modules stay
        parts = name.split(".")
        for n in range(len(parts), 1, -1):
            head = ".".join(parts[:n])
            if head in news:
                return name
            if head in moves:
                return moves[head] + ("." + ".".join(parts[n:]) if parts[n:] else "")
            if head in olds and head not in moves:
                return name
        return name

    new_mod = module_of(path)
    in_pkg = new_mod.startswith(PKG + ".") or new_mod == PKG
    was_pkg = inverse.get(new_mod, "").startswith(PKG + ".")  # a tool that left the package
    lines = text.splitlines(keepends=True)
    if in_pkg or was_pkg:
        is_init = path.name == "__init__.py"
        new_pkg = new_mod if is_init else new_mod.rsplit(".", 1)[0]
        old_mod = OLD_PLACE.get(new_mod) or inverse.get(new_mod, new_mod)
        old_pkg = old_mod if is_init else old_mod.rsplit(".", 1)[0]
        for i, line in enumerate(lines):
            m = REL.match(line.rstrip("\n"))
            if not m:
                continue
            level, mod = len(m.group(2)), m.group(3) or ""
            base = old_pkg.split(".")
            if level - 1 > len(base) - 1:
                continue  # reaches above the package from the old place: already new-style
            anchor = ".".join(base[: len(base) - level + 1])
            full = f"{anchor}.{mod}" if mod else anchor
            imported = m.group(5).split("#", 1)[0]
            names = [n.strip().split(" as ")[0] for n in imported.strip("()\\ ").split(",") if n.strip()]
            if mod:
                if full not in olds:
                    continue  # already new-style, or a module that is new
                target = map_module(full, moves)
                if not target.startswith(PKG) or not in_pkg:  # into tools/ or out of the package: absolute
                    if in_pkg:
                        print(f"{path}:{i + 1}: the package imports {target}, which left the wheel", file=sys.stderr)
                    lines[i] = f"{m.group(1)}{target}{m.group(4)}{m.group(5)}" + ("\n" if line.endswith("\n") else "")
                    continue
                new = relative(target, new_pkg)
                if target == new_pkg:  # e.g. ``from .drafters import x`` inside drafters/: name the submodule by hand
                    print(f"{path}:{i + 1}: rewrite by hand (imports its own package): {line.strip()}", file=sys.stderr)
                    continue
                lines[i] = f"{m.group(1)}{new}{m.group(4)}{m.group(5)}" + ("\n" if line.endswith("\n") else "")
            else:
                # ``from . import a, b``: each name a module of the old package
                moved = [n for n in names if f"{full}.{n}" in moves]
                if not moved and new_pkg == old_pkg:
                    continue
                if not all(f"{full}.{n}" in olds for n in names):
                    continue
                groups: dict = {}
                comment = "  #" + m.group(5).split("#", 1)[1] if "#" in m.group(5) else ""
                for item in imported.strip("()\\ ").split(","):
                    item = item.strip()
                    if not item:
                        continue
                    n = item.split(" as ")[0].strip()
                    target = map_module(f"{full}.{n}", moves)
                    parent, leaf = target.rsplit(".", 1)
                    alias = item.split(" as ")[1].strip() if " as " in item else (n if leaf != n else None)
                    groups.setdefault(relative(parent, new_pkg) if in_pkg else parent, []).append(leaf + (f" as {alias}" if alias and alias != leaf else ""))
                out = "".join(f"{m.group(1)}{src}{m.group(4)}{', '.join(items)}{comment.rstrip()}\n" for src, items in groups.items())
                lines[i] = out if line.endswith("\n") else out.rstrip("\n")
    for i, line in enumerate(lines):
        m = re.match(rf"^\s*from {PKG} import (.*)$", line.rstrip("\n"))
        if m:
            moved = [n.strip().split(" as ")[0] for n in m.group(1).split("#")[0].strip("()\\ ").split(",")
                     if f"{PKG}.{n.strip().split(' as ')[0]}" in moves]
            if moved:
                print(f"{path}:{i + 1}: rewrite by hand (imports moved module(s) {', '.join(moved)} by name): {line.strip()}",
                      file=sys.stderr)
    return ABS.sub(absolute, "".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--check", action="store_true")
    a = p.parse_args(argv)
    moves = read_map()
    olds = old_modules(moves)
    changed = 0
    for f in a.files:
        text = f.read_text()
        new = rewrite_text(text, f, moves, olds)
        if new != text:
            changed += 1
            for o, n in zip(text.splitlines(), new.splitlines()):
                if o != n:
                    print(f"{f}: {o.strip()}  ->  {n.strip()}")
            if not a.check:
                f.write_text(new)
    return 1 if (a.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
