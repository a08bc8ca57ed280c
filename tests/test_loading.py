"""Spec: ``--draft-model`` / ``--draft-strategy`` resolve once, in one place, for every front end:
the drafter is read from disk once (not per generation), the strategy is the one that claims it
(no strategy names in the front ends), and strategy options are typed and checked by the strategy."""

from __future__ import annotations

import mlx_lm
import pytest

from mlx_specdec_plugin.testing.drafters import write_dflash, write_dspark
from mlx_specdec_plugin import Drafter, stream_generate
from mlx_specdec_plugin.drafters import checkpoint
from mlx_specdec_plugin.loading import LoadError, check_draft, load_draft
from mlx_specdec_plugin.options import strategy_options
from mlx_specdec_plugin.plugins import registry
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.testing.tiny import save_tiny_model


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("loading")
    save_tiny_model(root / "qwen3", "qwen3", seed=1, sharpness=4, num_hidden_layers=4)
    write_dspark(root / "dspark", root / "qwen3", target_layer_ids=(0, 2))
    write_dflash(root / "dflash", root / "qwen3", target_layer_ids=(0, 2))
    return root


@pytest.fixture(scope="module")
def qwen3(root):
    return mlx_lm.load(str(root / "qwen3"))


@pytest.mark.parametrize("kind", ["dspark", "dflash"])
def test_auto_loads_the_drafter_once_bound_to_the_target(root, qwen3, kind, monkeypatch):
    model, tok = qwen3
    choice = load_draft(check_draft(str(root / kind)), model)
    assert (choice.strategy, choice.reason) == (kind, f"--draft-model is a {kind} checkpoint")
    assert isinstance(choice.draft, Drafter) and choice.draft.target_model is model
    reads = []
    monkeypatch.setattr(checkpoint, "read_weights", lambda *a: reads.append(a) or pytest.fail("re-read"))
    for _ in range(2):  # generations reuse the loaded drafter: nothing is read from disk again
        stats = SpecStats()
        list(stream_generate(model, tok, "the cat sat", max_tokens=6, draft_model=choice.draft, stats=stats))
        assert stats.strategy == kind
    assert reads == []


def test_a_model_folder_is_a_draft_model(root, qwen3):
    model, _ = qwen3
    choice = load_draft(check_draft(str(root / "qwen3")), model)
    assert (choice.strategy, choice.reason) == ("draft-model", "--draft-model is an mlx-lm model")


def test_a_strategy_without_weights_loads_nothing(root, qwen3):
    model, _ = qwen3
    choice = load_draft(check_draft(str(root / "dspark"), "lookup"), model, "lookup")
    assert (choice.strategy, choice.draft) == ("lookup", None)
    assert load_draft(None, model).strategy == registry().strategy("lookup").name  # the engine's default
    assert load_draft(str(root / "dspark"), model, "none").strategy is None


def test_a_drafter_that_does_not_fit_the_target_is_one_line(root, tmp_path):
    wide = save_tiny_model(tmp_path / "wide", "qwen3", seed=1, num_hidden_layers=4, hidden_size=64)
    model, _ = mlx_lm.load(str(wide))
    with pytest.raises(LoadError, match=r"^--draft-model .*dspark: dspark drafter: 'hidden_size'"):
        load_draft(str(root / "dspark"), model)


def test_errors_before_the_target_loads():
    with pytest.raises(LoadError, match="--draft-strategy dflash needs --draft-model"):
        check_draft(None, "dflash")
    with pytest.raises(LoadError, match="unknown draft strategy 'nope'; installed:"):
        check_draft(None, "nope")


def test_strategy_options_are_typed_and_checked_by_the_strategy():
    lookup = registry().strategy("lookup")
    assert lookup.parse_options({"max_ngram": "4", "min_ngram": 2}) == {"max_ngram": 4, "min_ngram": 2}
    assert strategy_options("lookup", [("max_ngram", "5")]) == {"max_ngram": 5}
    with pytest.raises(LoadError, match=r"strategy 'lookup' has no option 'n' \(its options: max_ngram, min_ngram\)"):
        strategy_options("lookup", [("n", "5")])
    with pytest.raises(LoadError, match=r"option max_ngram='x' is not a valid int"):
        strategy_options("lookup", [("max_ngram", "x")])
    with pytest.raises(LoadError, match="strategy 'draft-model' has no option 'max_ngram' \\(it takes none\\)"):
        strategy_options("draft-model", [("max_ngram", "5")])
    assert strategy_options("auto", [("max_ngram", "5")]) == {}  # checked once auto has chosen
