"""The plugin manager: loads entry points, collects registrations, resolves names.

``registry()`` is built once per process (``refresh=True`` rebuilds it, e.g. after installing a
plugin in the same process). Each registration remembers the distribution that provided it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import pluggy

from . import hookspecs
from .contract import AcceptorSpec
from .contract import Strategy


@dataclass(frozen=True)
class Registered:
    """A strategy or acceptor with the plugin that registered it."""

    item: Any
    plugin: str
    distribution: str
    version: str


@dataclass
class Registry:
    strategies: Dict[str, Registered]
    acceptors: Dict[str, Registered]

    def strategy(self, name: str) -> Strategy:
        if name not in self.strategies:
            raise ValueError(
                f"unknown draft strategy '{name}'; installed: {', '.join(sorted(self.strategies))}"
            )
        return self.strategies[name].item

    def acceptor(self, name: str) -> AcceptorSpec:
        if name not in self.acceptors:
            raise ValueError(f"unknown acceptor '{name}'; installed: {', '.join(sorted(self.acceptors))}")
        return self.acceptors[name].item


_REGISTRY: Optional[Registry] = None


def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
    return pm


def _collect(pm: pluggy.PluginManager, hook_name: str) -> Dict[str, Registered]:
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    found: Dict[str, Registered] = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        dist = dists.get(id(impl.plugin))
        dist_name = dist.project_name if dist is not None else "?"
        version = dist.version if dist is not None else "?"

        def register(item, _plugin=impl.plugin_name, _dist=dist_name, _ver=version):
            if item.name in found:
                raise ValueError(
                    f"{hook_name}: name '{item.name}' registered by both "
                    f"'{found[item.name].plugin}' and '{_plugin}'"
                )
            found[item.name] = Registered(item, _plugin, _dist, _ver)

        impl.function(register=register)
    return found


def registry(refresh: bool = False) -> Registry:
    global _REGISTRY
    if _REGISTRY is None or refresh:
        pm = plugin_manager()
        _REGISTRY = Registry(_collect(pm, "register_strategies"), _collect(pm, "register_acceptors"))
        if not _REGISTRY.strategies:
            raise RuntimeError(
                "no draft strategies are registered: is mlx-specdec-plugin installed "
                "(pip install -e .), so that its entry points exist?"
            )
    return _REGISTRY
