"""Spec: the drafter kinds of issue 15 on mlx-vlm targets (the tiny Gemma-4 VLM, an image in the
prompt). EAGLE-3 taps the language model through its own ``capture_layer_ids`` and is
token-identical to ``mlx_vlm.generate`` at T=0, through the API and ``mlx-specdec vlm`` (also as
mlx-vlm's ``--draft-kind eagle3``); so are Gemma-4's assistant (reading the language model's own
keys/values) and draft trees (a block drafter's and a draft model's, through our Gemma-4 tree
forward). What a VLM target lacks is one line before generation: native MTP heads on a model whose
folder has none.
"""

from __future__ import annotations

import pytest

pytest.importorskip("mlx_vlm")

from mlx_specdec_plugin.testing.drafters import (GEMMA_DRAFT, flat_target_dir, write_dspark, write_eagle3,  # noqa: E402
                                                 write_gemma4_assistant)
from mlx_vlm import generate as vlm_generate  # noqa: E402
from mlx_vlm import load as vlm_load  # noqa: E402
from mlx_vlm.prompt_utils import apply_chat_template  # noqa: E402

from mlx_specdec_plugin import SpecStats, vlm  # noqa: E402
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config  # noqa: E402
from mlx_specdec_plugin.testing.tiny_vlm import save_tiny_gemma4_vlm, write_png  # noqa: E402
from mlx_specdec_plugin.vlm.generation import vlm_main  # noqa: E402

MAX_TOKENS = 24


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm_kinds")
    save_tiny_gemma4_vlm(root / "g4", seed=1, sharpness=4.0)
    image = str(write_png(root / "img.png", seed=0))
    model, processor = vlm_load(str(root / "g4"))
    prompt = apply_chat_template(processor, model.config, "Describe this image.", num_images=1)
    ref = vlm_generate(model, processor, prompt, image=[image], max_tokens=MAX_TOKENS, temperature=0.0).token_ids
    flat = flat_target_dir(root / "g4", root / "flat", model)
    eagle3 = write_eagle3(root / "e3", flat, aux_layer_ids=(1, 2, 3), draft_vocab_size=64, seed=3)
    dspark = write_dspark(root / "ds", flat, layout="dflash_config", target_layer_ids=(0, 2), seed=5,
                          config_overrides=GEMMA_DRAFT)
    assistant = write_gemma4_assistant(root / "assistant", root / "g4", seed=4)
    return dict(root=root, model=model, processor=processor, prompt=prompt, image=image, ref=ref,
                eagle3=str(eagle3), dspark=str(dspark), assistant=str(assistant))


def ours(w, **kw):
    return vlm.generate(w["model"], w["processor"], w["prompt"], image=[w["image"]], max_tokens=MAX_TOKENS,
                        temperature=0.0, **kw)


def test_eagle3_on_a_vlm_is_mlx_vlm_at_t0(world):
    stats = SpecStats()
    assert ours(world, draft_model=world["eagle3"], num_draft_tokens=3, stats=stats).token_ids == world["ref"]
    assert stats.strategy == "eagle3" and stats.proposed > 0


@pytest.mark.parametrize("flags", [["--draft-model", "E3"], ["--draft-model", "E3", "--draft-kind", "eagle3"]])
def test_eagle3_through_the_vlm_command(world, capsys, flags):
    argv = ["--model", str(world["root"] / "g4"), "--image", world["image"], "--prompt", "Describe this image.",
            "--max-tokens", str(MAX_TOKENS), "--temperature", "0"]
    assert vlm_main(argv + [world["eagle3"] if a == "E3" else a for a in flags]) == 0
    assert "strategy: eagle3" in capsys.readouterr().err


def test_gemma4_assistant_on_the_vlm_is_mlx_vlm_at_t0(world, capsys):
    """The assistant reads the language model's own keys/values (image rows included)."""
    stats = SpecStats()
    assert ours(world, draft_model=world["assistant"], num_draft_tokens=3, stats=stats).token_ids == world["ref"]
    assert stats.strategy == "assistant" and stats.proposed > 0
    argv = ["--model", str(world["root"] / "g4"), "--image", world["image"], "--prompt", "Describe this image.",
            "--max-tokens", str(MAX_TOKENS), "--temperature", "0", "--draft-model", world["assistant"],
            "--draft-kind", "mtp"]  # mlx-vlm's kind for assistant drafters
    assert vlm_main(argv) == 0
    assert "strategy: assistant" in capsys.readouterr().err


@pytest.mark.parametrize("draft", ["dspark", "draft-model"])
def test_trees_on_the_gemma4_vlm_are_mlx_vlm_at_t0(world, draft):
    """Gemma-4's tree forward runs the mlx-vlm language model's own layers after the image prompt."""
    w = world
    model = w["dspark"] if draft == "dspark" else make_tiny_model(
        tiny_config("llama", vocab_size=w["model"].language_model.config.vocab_size), seed=2)
    stats = SpecStats()
    assert ours(w, draft_model=model, draft_strategy="tree", num_draft_tokens=6, stats=stats).token_ids == w["ref"]
    assert stats.strategy == "tree" and stats.proposed > 0


def test_what_a_vlm_lacks_is_one_line(world, capsys):
    w = world
    lm_draft = make_tiny_model(tiny_config("llama", vocab_size=w["model"].language_model.config.vocab_size), seed=2)
    cases = [
        (dict(draft_model=str(w["root"] / "g4"), draft_strategy="mtp"), "MTP"),
    ]
    for kw, needle in cases:
        with pytest.raises(ValueError) as err:
            ours(w, **kw)
        assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)
    # the command: --draft-model equal to --model reads the target's own MTP heads; this one has none
    argv = ["--model", str(w["root"] / "g4"), "--prompt", "Hi", "--max-tokens", "4", "--temperature", "0"]
    for flags in (["--draft-model", str(w["root"] / "g4"), "--draft-strategy", "mtp"],
                  ["--draft-model", str(w["root"] / "g4"), "--draft-kind", "mtp"]):
        assert vlm_main(argv + flags) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("[mlx-specdec] error: ") and "'mtp'" in err[-1], err
    assert vlm_main(argv + ["--draft-kind", "eagle3", "--draft-strategy", "dspark", "--draft-model", w["dspark"]]) == 2
    assert "disagree" in capsys.readouterr().err
