"""The plugin contract (pluggy project name ``mlx_specdec``).

A plugin is an ordinary module listed in the entry-point group ``mlx_specdec.strategies``::

    [project.entry-points."mlx_specdec.strategies"]
    my_plugin = "my_package.my_module"

whose functions decorated with :data:`hookimpl` register instances through one hook each:

    @hookimpl
    def register_strategies(register):
        register(Strategy(name="my-drafter", build=build_my_proposer))

Names must be unique across installed plugins; a clash is an error naming both plugins.
Our own built-ins (:mod:`mlx_specdec_plugin.builtins`) are registered exactly this way.
"""

import pluggy

PROJECT = "mlx_specdec"
ENTRY_POINT_GROUP = "mlx_specdec.strategies"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_strategies(register):
    """Call ``register(strategy)`` for each :class:`~mlx_specdec_plugin.contract.Strategy`
    (a drafter kind: how to build a per-generation proposer)."""


@hookspec
def register_acceptors(register):
    """Call ``register(spec)`` for each :class:`~mlx_specdec_plugin.acceptors.AcceptorSpec`
    (a verification rule)."""
