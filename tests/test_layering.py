"""Spec: the engine never imports a front end, and the package has no import circles.

Front ends (the commands and the HTTP server) sit on top: they may import the engine, never the
other way round, not even inside a function. Checked twice: statically, over every import in every
module (top level or not), and at run time, importing every engine module in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mlx_specdec_plugin"
NAME = "mlx_specdec_plugin"
FRONT_ENDS = {f"{NAME}.{m}" for m in ("cli", "server", "server_anthropic", "vlm", "bench", "demo", "__main__")}
# Dev tools and test fixtures shipped in the package (they may use anything; nothing engine-side uses them).
TOOLS = {f"{NAME}.{m}" for m in ("oracle_bench", "rollback_bench", "server_load", "train", "doctor", "fetch")}
# Known circle, left for the layout move (drafters/ as a package: the shared layers, then gemma4).
KNOWN_CIRCLES = [{f"{NAME}.drafters", f"{NAME}.drafters_gemma4"}]


def modules() -> dict:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def import_graph() -> dict:
    """module -> the package modules it imports anywhere in its source (relative or absolute)."""
    mods = modules()
    graph = defaultdict(set)
    for name, f in mods.items():
        package = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = subs or ([base] if base in mods else [])
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name in mods]
            graph[name].update(t for t in targets if t != name and t != NAME)
    return graph


def circles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on.discard(w)
                scc.add(w)
                if w == v:
                    break
            if len(scc) > 1:
                found.append(scc)

    for v in sorted(list(graph)):
        if v not in index:
            visit(v)
    return found


def engine_modules() -> list:
    return sorted(m for m in modules() if m not in FRONT_ENDS | TOOLS and m != NAME and not m.endswith("tiny_vlm"))


def test_no_engine_module_imports_a_front_end_anywhere_in_its_source():
    graph = import_graph()
    bad = {m: sorted(graph[m] & FRONT_ENDS) for m in engine_modules() if graph[m] & FRONT_ENDS}
    assert bad == {}


def test_no_import_circles():
    assert [c for c in circles(import_graph()) if c not in KNOWN_CIRCLES] == []


def test_importing_the_engine_loads_no_front_end():
    code = (
        "import importlib, json, sys\n"
        f"for m in {engine_modules()!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(set(sys.modules) & set({sorted(FRONT_ENDS)!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_check_sees_a_planted_import():
    graph = import_graph()
    graph[f"{NAME}.loop"] = set(graph[f"{NAME}.loop"]) | {f"{NAME}.cli"}
    graph[f"{NAME}.cli"] = set(graph[f"{NAME}.cli"]) | {f"{NAME}.loop"}
    assert any(f"{NAME}.cli" in c and f"{NAME}.loop" in c for c in circles(graph))
