"""Spec: the package is built in floors, each importing only from its own floor or the ones below,
and it has no import circles.

    core       contract sampling loop stats target recurrent caches bucketed tree hookspecs plugins
               distributed fetch blas            (the round, and the types every floor speaks)
    kinds      acceptors/ strategies/ drafters/  (each acceptor, strategy and drafter kind)
    assembly   generate loading options costs scheduler builtins, and the package's __init__
               (one call from a model and a --draft-model value to tokens)
    testing    testing/                          (tiny models and drafter fixtures)
    front ends vlm/ server/ train/ bench/
    commands   commands/ and __main__            (the CLI; nothing imports it)

The engine (core, kinds, assembly) never imports a front end, a command or testing/, not even
inside a function; nothing in the package imports tools/ (not in the wheel). Checked twice:
statically, over every import in every module (top level or not), and at run time, importing
every engine module in a fresh interpreter.
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
FLOORS = ("core", "kinds", "assembly", "testing", "front ends", "commands")
KINDS = ("acceptors", "strategies", "drafters")
ASSEMBLY = ("generate", "loading", "options", "costs", "scheduler", "builtins")
TESTING = ("testing",)
FRONT_ENDS = ("vlm", "server", "train", "bench")
COMMANDS = ("commands", "__main__")


def floor(module: str) -> int:
    """The floor of a package module (an index into FLOORS)."""
    if module == NAME:
        return FLOORS.index("assembly")  # the public API: re-exports of the engine
    top = module.split(".")[1]
    for name, group in (("kinds", KINDS), ("assembly", ASSEMBLY), ("testing", TESTING),
                        ("front ends", FRONT_ENDS), ("commands", COMMANDS)):
        if top in group:
            return FLOORS.index(name)
    return FLOORS.index("core")


def modules() -> dict:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def imported_names(f: Path):
    """Every absolute module name an import statement in ``f`` names (relative ones excluded)."""
    for node in ast.walk(ast.parse(f.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


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
    return sorted(m for m in modules() if floor(m) <= FLOORS.index("assembly"))


def upward_imports(graph: dict) -> dict:
    """module -> the modules it imports from a higher floor."""
    bad = {m: sorted(t for t in targets if floor(t) > floor(m)) for m, targets in graph.items()}
    return {m: t for m, t in bad.items() if t}


def test_every_floor_holds_modules():
    counts = defaultdict(int)
    for m in modules():
        counts[FLOORS[floor(m)]] += 1
    assert set(counts) == set(FLOORS)


def test_no_module_imports_from_a_higher_floor_anywhere_in_its_source():
    assert upward_imports(import_graph()) == {}


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_nothing_in_the_package_imports_the_dev_tools():
    bad = {m: n for m, f in modules().items() for n in imported_names(f) if n == "tools" or n.startswith("tools.")}
    assert bad == {}


def test_importing_the_engine_loads_no_front_end_command_or_fixture():
    above = sorted(m for m in modules() if floor(m) > FLOORS.index("assembly"))
    code = (
        "import importlib, json, sys\n"
        f"for m in {engine_modules()!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(set(sys.modules) & set({above!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_checks_see_a_planted_import():
    graph = import_graph()
    graph[f"{NAME}.loop"] = set(graph[f"{NAME}.loop"]) | {f"{NAME}.commands.cli"}
    graph[f"{NAME}.commands.cli"] = set(graph[f"{NAME}.commands.cli"]) | {f"{NAME}.loop"}
    assert any(f"{NAME}.commands.cli" in c and f"{NAME}.loop" in c for c in circles(graph))
    assert upward_imports(graph) == {f"{NAME}.loop": [f"{NAME}.commands.cli"]}
    graph = import_graph()
    graph[f"{NAME}.drafters.config"] = set(graph[f"{NAME}.drafters.config"]) | {f"{NAME}.drafters.checkpoint"}
    assert any(f"{NAME}.drafters.config" in c for c in circles(graph))  # the old drafters <-> gemma4 circle
    graph = import_graph()
    graph[f"{NAME}.generate"] = set(graph[f"{NAME}.generate"]) | {f"{NAME}.testing.tiny"}
    assert upward_imports(graph) == {f"{NAME}.generate": [f"{NAME}.testing.tiny"]}
