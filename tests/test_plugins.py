"""Spec: strategies and acceptors come from entry points; a third-party package registers its own
exactly as our built-ins do, and runs end to end."""

import sys
import textwrap

import mlx_lm
import pytest

from mlx_specdec_plugin import SpecStats, generate
from mlx_specdec_plugin.plugins import registry
from mlx_specdec_plugin.testing.tiny import save_tiny_model


def test_builtins_come_from_our_own_entry_point():
    reg = registry(refresh=True)
    assert {"draft-model", "lookup"} <= set(reg.strategies)
    assert set(reg.acceptors) >= {"greedy", "rejection", "block", "match"}
    for entry in list(reg.strategies.values()) + list(reg.acceptors.values()):
        if entry.item.name in ("draft-model", "lookup", "greedy", "rejection", "block", "match"):
            assert entry.distribution == "mlx-specdec-plugin"
            assert entry.plugin == "builtins"


PLUGIN = '''
import mlx.core as mx
from mlx_specdec_plugin import Draft, Strategy, hookimpl

class RepeatLast:
    """Proposes the pending token again, n times (a point mass)."""
    tap_layers = ()
    def extend(self, tokens, hidden):
        pass
    def propose(self, ctx, n):
        return Draft(mx.array([ctx.pending] * n, dtype=mx.uint32), None, deterministic=True)

@hookimpl
def register_strategies(register):
    register(Strategy("repeat-last", lambda target, draft, options: RepeatLast(), "third-party test"))
'''


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """Install a plugin the way pip would leave it: a module plus dist-info entry-point metadata."""
    (tmp_path / "specdec_repeat.py").write_text(PLUGIN)
    info = tmp_path / "specdec_repeat-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: specdec-repeat\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [mlx_specdec.strategies]
            repeat = specdec_repeat
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield registry(refresh=True)
    sys.modules.pop("specdec_repeat", None)
    registry(refresh=True)


def test_third_party_strategy_runs_end_to_end(third_party, tmp_path):
    entry = third_party.strategies["repeat-last"]
    assert (entry.distribution, entry.version, entry.plugin) == ("specdec-repeat", "1.2.3", "repeat")
    model, tok = mlx_lm.load(str(save_tiny_model(tmp_path / "m", "llama", seed=1, sharpness=6)))
    prompt = "aaaaaaaa"
    stats = SpecStats()
    out = generate(model, tok, prompt, max_tokens=32, draft_strategy="repeat-last", stats=stats)
    assert out == mlx_lm.generate(model, tok, prompt, max_tokens=32)
    assert stats.strategy == "repeat-last" and stats.proposed > 0


def test_name_clash_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "specdec_clash.py").write_text(
        "from mlx_specdec_plugin import Strategy, hookimpl\n"
        "@hookimpl\n"
        "def register_strategies(register):\n"
        "    register(Strategy('lookup', lambda t, d, o: None))\n"
    )
    info = tmp_path / "specdec_clash-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: specdec-clash\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mlx_specdec.strategies]\nclash = specdec_clash\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ValueError, match="name 'lookup' registered by both"):
            registry(refresh=True)
    finally:
        sys.modules.pop("specdec_clash", None)
        monkeypatch.undo()
        registry(refresh=True)
