"""Spec: on mlx-vlm models, our loop is token-identical to ``mlx_vlm.generate`` at temperature 0.

A tiny random float32 Gemma-4 VLM (mlx-vlm's own ``gemma4`` classes: sliding + full attention,
a KV-shared layer, per-layer inputs, soft-capping, bidirectional attention over image tokens)
with a generated PNG; the prompt goes through mlx-vlm's processor and chat template. Drafters:
prompt lookup, DSpark and DFlash checkpoints in the published layouts (mlx_specdec_plugin/testing/drafters.py),
good (many drafts accepted) and random (nearly all rejected).
"""

from __future__ import annotations


import mlx.core as mx
import numpy as np
import pytest

pytest.importorskip("mlx_vlm")

from mlx_specdec_plugin.testing.drafters import GEMMA_DRAFT, flat_target_dir, write_dflash, write_dspark  # noqa: E402
from mlx_vlm import generate as vlm_generate  # noqa: E402
from mlx_vlm import load as vlm_load  # noqa: E402
from mlx_vlm.prompt_utils import apply_chat_template  # noqa: E402

from mlx_specdec_plugin import SpecStats, vlm  # noqa: E402
from mlx_specdec_plugin.vlm.generation import VLMTargetAdapter  # noqa: E402
from mlx_specdec_plugin.testing.tiny_vlm import IMAGE_ID, save_tiny_gemma4_vlm, write_png  # noqa: E402

MAX_TOKENS = 40
def bigram_markov(refs, V, scale=20.0):
    """A rank-V Markov head predicting the reference continuations' bigrams (a 'good' DSpark)."""
    w2 = np.zeros((V, V), np.float32)
    for seq in refs:
        for a, b in zip(seq, seq[1:]):
            w2[b, a] += scale
    return {"markov_head.markov_w1.weight": mx.eye(V), "markov_head.markov_w2.weight": mx.array(w2)}


def reference(model, processor, prompt, image, **kw):
    return vlm_generate(model, processor, prompt, image=image, max_tokens=MAX_TOKENS, temperature=0.0, **kw).token_ids


def ours(model, processor, prompt, image, stats=None, **kw):
    r = vlm.generate(model, processor, prompt, image=image, max_tokens=MAX_TOKENS, temperature=0.0, stats=stats, **kw)
    return r.token_ids


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm")
    save_tiny_gemma4_vlm(root / "g4", seed=1, sharpness=4.0)
    images = [str(write_png(root / f"img{i}.png", seed=i)) for i in range(2)]
    model, processor = vlm_load(str(root / "g4"))
    prompt = apply_chat_template(processor, model.config, "Describe this image.", num_images=1)
    refs = [reference(model, processor, prompt, [img]) for img in images]
    flat = flat_target_dir(root / "g4", root / "flat", model)
    V = model.language_model.config.vocab_size
    H = model.language_model.config.hidden_size
    drafts = {
        "dspark/good": write_dspark(
            root / "ds_good", flat, layout="dflash_config", target_layer_ids=(0, 2), markov_rank=V,
            confidence=False, config_overrides=GEMMA_DRAFT,
            weight_overrides={"norm.weight": mx.zeros((H,)), **bigram_markov(refs, V)},
        ),
        "dspark/random": write_dspark(root / "ds_rand", flat, layout="deepspec", target_layer_ids=(1, 3), seed=5),
        "dflash/random": write_dflash(root / "df_rand", flat, target_layer_ids=(0, 2), seed=7, block_size=8,
                                      config_overrides=GEMMA_DRAFT),
    }
    return dict(root=root, model=model, processor=processor, prompt=prompt, images=images, refs=refs, drafts=drafts)


def test_the_image_reaches_the_model(world):
    """Otherwise parity below would not show that the image embedding path is right."""
    assert world["refs"][0] != world["refs"][1]
    assert len(world["refs"][0]) == MAX_TOKENS


def test_no_drafter_is_mlx_vlm_itself(world):
    w = world
    assert ours(w["model"], w["processor"], w["prompt"], w["images"][:1]) == w["refs"][0]
    assert ours(w["model"], w["processor"], w["prompt"], w["images"][:1], draft_strategy="none") == w["refs"][0]


@pytest.mark.parametrize("acceptor", ["greedy", "block"])
def test_lookup_greedy_parity_with_image(world, acceptor):
    w = world
    for img, ref in zip(w["images"], w["refs"]):
        stats = SpecStats()
        assert ours(w["model"], w["processor"], w["prompt"], [img], stats, draft_strategy="lookup",
                    acceptor=acceptor, num_draft_tokens=4) == ref
        assert stats.strategy == "lookup" and stats.proposed > 0


@pytest.mark.parametrize("name", ["dspark/good", "dspark/random", "dflash/random"])
def test_block_drafters_greedy_parity_with_image(world, name):
    w = world
    stats = SpecStats()
    for img, ref in zip(w["images"], w["refs"]):
        out = ours(w["model"], w["processor"], w["prompt"], [img], stats, draft_model=str(w["drafts"][name]),
                   num_draft_tokens=5)
        assert out == ref
    assert stats.strategy == name.split("/")[0] and stats.proposed > 0
    if name.endswith("good"):
        assert stats.accepted >= stats.proposed // 4  # the accept + rollback path is exercised


def test_text_only_prompt_with_chunked_prefill(world):
    """No image: the context is prefilled in chunks (mlx-vlm's policy), taps handed on per chunk."""
    w = world
    prompt = apply_chat_template(w["processor"], w["model"].config, "Count: 1 2 3 4 5 6 7 8 9", num_images=0)
    ref = vlm_generate(w["model"], w["processor"], prompt, max_tokens=MAX_TOKENS, temperature=0.0,
                       prefill_step_size=7).token_ids
    r = vlm.generate(w["model"], w["processor"], prompt, max_tokens=MAX_TOKENS, temperature=0.0,
                     prefill_step_size=7, draft_model=str(w["drafts"]["dspark/good"]))
    assert r.token_ids == ref


def test_stream_generate_mirrors_mlx_vlm(world):
    w = world
    stats = SpecStats()
    chunks = list(vlm.stream_generate(w["model"], w["processor"], w["prompt"], image=w["images"][:1],
                                      max_tokens=12, temperature=0.0, draft_strategy="lookup", stats=stats))
    last = chunks[-1]
    assert last.finish_reason in ("length", "stop") and last.token_ids == w["refs"][0][:12]
    assert last.generation_tokens == 12 and last.prompt_tokens > 16  # image soft tokens included
    assert all(c.spec is stats for c in chunks)
    assert "".join(c.text for c in chunks) == vlm_generate(
        w["model"], w["processor"], w["prompt"], image=w["images"][:1], max_tokens=12, temperature=0.0).text


def test_past_the_sliding_window(tmp_path):
    """Generations longer than Gemma-4's sliding window: rotating-cache rollback stays exact."""
    save_tiny_gemma4_vlm(tmp_path / "g4w", seed=2, sharpness=4.0, sliding_window=16)
    img = [str(write_png(tmp_path / "img.png", seed=3))]
    model, processor = vlm_load(str(tmp_path / "g4w"))
    prompt = apply_chat_template(processor, model.config, "What is it?", num_images=1)
    ref = reference(model, processor, prompt, img)
    assert ours(model, processor, prompt, img, draft_strategy="lookup", num_draft_tokens=4) == ref


def test_clear_errors(world):
    w = world
    with pytest.raises(ValueError, match="kv_bits"):
        vlm.generate(w["model"], w["processor"], w["prompt"], image=w["images"][:1], draft_strategy="lookup",
                     kv_bits=4)
    ids = mx.array([[1, 2, 3, IMAGE_ID]])
    with pytest.raises(ValueError, match="media token"):
        vlm.generate(w["model"], w["processor"], "", draft_strategy="lookup", input_ids=ids, max_tokens=3)


def test_target_adapter_taps_match_layer_outputs(world):
    """Tap i = output of decoder layer i, in tap order, whatever order the model captures in."""
    target = VLMTargetAdapter(world["model"])
    target.check_taps((3, 0))
    x = mx.array([[5, 6, 7, 8]], dtype=mx.uint32)
    _, both = target(x, target.make_cache(), (3, 0))
    _, first = target(x, target.make_cache(), (0,))
    _, last = target(x, target.make_cache(), (3,))
    H = target.hidden_size
    assert mx.allclose(both[..., :H], last).item() and mx.allclose(both[..., H:], first).item()
