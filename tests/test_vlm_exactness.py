"""Spec: on an mlx-vlm target with an image in the prompt, the speculative loop samples exactly the
target's distribution at temperature 1.

A tiny-vocabulary (8 tokens) Gemma-4 VLM built from mlx-vlm's classes; the prompt holds two image
soft tokens (a 8x16 image: bidirectional attention between them) and goes through mlx-vlm's
``get_input_embeddings`` and our embedded prefill. The joint of the first 3 generated tokens over
many seeded generations is compared by chi-square with the exact joint, enumerated from full
(cache-free) forwards of the language model on the prompt embeddings + the continuation.
"""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest

pytest.importorskip("mlx_vlm")


from mlx_specdec_plugin.testing.drafters import write_dspark  # noqa: E402
from exactness import CONFIGS, chi_square_pvalue, exact_joint  # noqa: E402
from mlx_specdec_plugin import load_drafter  # noqa: E402
from mlx_specdec_plugin.generate import prepare  # noqa: E402
from mlx_specdec_plugin.loop import speculative_generate_step  # noqa: E402
from mlx_specdec_plugin.sampling import SamplingParams  # noqa: E402
from mlx_specdec_plugin.testing.tiny_vlm import make_tiny_gemma4, tiny_gemma4_config  # noqa: E402
from mlx_specdec_plugin.vlm.generation import EmbeddedPrompt, VLMTargetAdapter  # noqa: E402

VOCAB, IMAGE = 8, 7
PROMPT = [1, 2, IMAGE, IMAGE, 3, 4]
SAMPLES = 2000
ALPHA = 1e-3  # seeded: the verdict is deterministic


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm_exact")
    cfg = tiny_gemma4_config(vocab_size=VOCAB, vocab_size_per_layer_input=VOCAB)
    cfg.update(vocab_size=VOCAB, image_token_id=IMAGE, boi_token_id=100, eoi_token_id=101, audio_token_id=102,
               boa_token_id=103, eoa_token_id=104, video_token_id=None, eos_token_id=[105])
    model = make_tiny_gemma4(cfg, seed=3, sharpness=2.0)
    lm = model.language_model
    pixels = mx.array(np.random.default_rng(0).random((1, 3, 8, 16), dtype=np.float32))
    ids = mx.array([PROMPT])
    types = (ids == IMAGE).astype(mx.int32)
    prompt = EmbeddedPrompt.from_inputs(model, ids, pixels, mm_token_type_ids=types)
    assert not prompt.chunked  # Gemma-4's policy: image prompts are prefilled whole

    def full_logits(x):
        """Logits of prompt + continuation in one cache-free forward (the reference)."""
        seq = x[:, len(PROMPT):]
        embeds = mx.concatenate([prompt.inputs_embeds, lm.model.embed_tokens(seq) * lm.model.embed_scale], axis=1)
        per_layer = mx.concatenate([prompt.lm_kwargs["per_layer_inputs"], lm.model.get_per_layer_inputs(seq)], axis=1)
        tt = mx.concatenate([types, mx.zeros(seq.shape, mx.int32)], axis=1)
        return lm(x, inputs_embeds=embeds, per_layer_inputs=per_layer, mm_token_type_ids=tt).logits

    flat = root / "flat"
    flat.mkdir()
    (flat / "config.json").write_text(json.dumps(cfg["text_config"]))
    mx.save_safetensors(str(flat / "model.safetensors"), {"model.embed_tokens.weight": lm.model.embed_tokens.weight})
    write_dspark(root / "ds", flat, layout="deepspec", target_layer_ids=(0, 2), markov_rank=4, seed=4)
    drafter = load_drafter(root / "ds", lm)
    return dict(model=model, lm=lm, prompt=prompt, full_logits=full_logits, drafter=drafter)


def draw(world, strategy, acceptor, n, k=3, tokens=3):
    mx.random.seed(1234)
    target = VLMTargetAdapter(world["model"])
    draft = world["drafter"] if strategy == "dspark" else None
    samples = []
    for _ in range(n):
        target, proposer, spec, sampling, _, _ = prepare(
            world["lm"], draft, draft_strategy=strategy, acceptor=acceptor, sampling=SamplingParams(temp=1.0),
            num_draft_tokens=k, target=target,
        )
        gen = speculative_generate_step(
            world["prompt"].input_ids[0], target, proposer, spec.accept, num_draft_tokens=k, max_tokens=tokens,
            sampling=sampling, prefill_fn=world["prompt"].prefill,
        )
        samples.append(tuple(t for t, _, _ in gen))
    return samples


def test_vlm_loop_is_exact_at_t1(world):
    """DSpark (real q, hidden-state taps from the embedded prefill) + rejection; the acceptors and
    other strategies are covered on mlx-lm targets by test_exactness.py (kept short: < 1 min)."""
    sampler_kw, proc_kw = CONFIGS["T1"]
    joint = exact_joint(world["full_logits"], PROMPT, 3, VOCAB, sampler_kw, proc_kw)
    samples = draw(world, "dspark", "rejection", SAMPLES)
    assert chi_square_pvalue(samples, joint) > ALPHA


def test_the_reference_sees_the_image(world):
    """The exact joint depends on the image tokens' bidirectional attention (else the test is weak)."""
    lm, p = world["lm"], world["prompt"]
    causal = lm(p.input_ids, inputs_embeds=p.inputs_embeds, per_layer_inputs=p.lm_kwargs["per_layer_inputs"]).logits
    assert not mx.allclose(causal[0, -1], world["full_logits"](p.input_ids)[0, -1], atol=1e-4).item()
