"""Spec: draft trees on Gemma-4 text targets (mlx-lm's ``gemma4_text``: sliding and full layers, the
last layers reading earlier layers' keys/values, per-layer inputs, K=V full layers). One tree forward
gives each node the logits of a chain forward over its own path, with the sliding window roomy,
wrapping during the round, or wrapped long before; compaction to the accepted path leaves the cache
a chain would; greedy tree decoding (a draft model's top-k tree, and the Gemma-4 DSpark tree) is
token-identical to mlx-lm's plain decoding.
"""

from __future__ import annotations

import mlx.core as mx
import mlx_lm
import pytest
from mlx_lm.generate import generate_step
from references import close, feed_prefix, tree_tokens

from mlx_specdec_plugin import caches, load_drafter, tree
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.drafters import write_gemma4_dspark
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_tiny_model, tiny_config

ROOT = 9
NODES = [2, 6, 5, 3, 5, 8, 1]
PARENTS = (-1, -1, 0, 1, 1, 3, 5)  # depths 1 1 2 2 2 3 4
GEMMA4 = dict(num_hidden_layers=4, head_dim=8, global_head_dim=16, num_kv_shared_layers=1,
              hidden_size_per_layer_input=8, vocab_size_per_layer_input=258, sliding_window=8,
              sliding_window_pattern=2, final_logit_softcapping=30.0, tie_word_embeddings=True)
VARIANTS = {"kv-shared": {}, "k_eq_v": dict(attention_k_eq_v=True, num_global_key_value_heads=1),
            "no-sharing": dict(num_kv_shared_layers=0, hidden_size_per_layer_input=0)}


@pytest.fixture(scope="module", params=list(VARIANTS))
def gemma(request):
    config = tiny_config("gemma4_text", **{**GEMMA4, **VARIANTS[request.param]})
    return make_tiny_model(config, seed=3, sharpness=2)


@pytest.mark.parametrize("n_prefix", [3, 6, 23])  # window 8: room, wraps in the round, wrapped
def test_tree_forward_and_compaction(gemma, n_prefix):
    model = gemma
    target = TargetAdapter(model)
    target.check_tree()
    prefix = [(7 * i + 3) % 250 for i in range(n_prefix)]
    cache = target.make_cache()
    feed_prefix(model, cache, prefix)
    rnd = caches.begin_round(cache)
    logits, _ = target(mx.array([[ROOT] + NODES], dtype=mx.uint32), cache, (), tree=PARENTS)
    for node in range(-1, len(NODES)):
        path = [ROOT] + [NODES[i] for i in tree.path_to(PARENTS, node)]
        ref_cache = target.make_cache()
        feed_prefix(model, ref_cache, prefix)
        assert close(logits[0, node + 1], model(mx.array([path]), cache=ref_cache)[0, -1]), node
    path = (1, 3, 5, 6)  # off the first branch
    rows = (0,) + tuple(1 + i for i in path)
    caches.end_round(cache, rnd, appended=1 + len(NODES), keep=len(rows), rows=rows)
    chain = target.make_cache()
    feed_prefix(model, chain, prefix)
    model(mx.array([[ROOT] + [NODES[i] for i in path]]), cache=chain)
    for nxt in ([[7, 2, 4]], [[5]], [[1]]):
        assert close(model(mx.array(nxt), cache=cache), model(mx.array(nxt), cache=chain)), nxt


def test_greedy_draft_model_tree_is_plain_decoding(gemma):
    target = gemma
    draft = make_tiny_model(tiny_config("llama", vocab_size=258), seed=2, sharpness=3)
    for prompt in ([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], [7, 7, 1, 2]):
        ref = [int(t) for t, _ in generate_step(mx.array(prompt), target, max_tokens=40)]
        out, stats = tree_tokens(target, draft, prompt, 6)
        assert out == ref and stats.proposed > 0


def test_gemma4_dspark_tree_is_plain_decoding(tmp_path):
    """The Gemma-4 DSpark checkpoint's best-first tree, its taps through the tree forward."""
    save_tiny_model(tmp_path / "g4", "gemma4_text", seed=1, sharpness=4, **GEMMA4)
    model, tok = mlx_lm.load(str(tmp_path / "g4"))
    ds = write_gemma4_dspark(tmp_path / "ds", tmp_path / "g4", target_layer_ids=(0, 2), seed=5)
    prompt = tok.encode("the cat sat on the mat. the cat sat on the")
    ref = [int(t) for t, _ in generate_step(mx.array(prompt), model, max_tokens=40)]
    out, stats = tree_tokens(model, load_drafter(ds, model), prompt, 8)
    assert out == ref and stats.proposed > 0


@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
def test_the_tree_probe_accepts_half_precision_and_still_refuses_a_wrong_forward(dtype, monkeypatch):
    """Half precision gets the wider tolerance (on the H200, mlx-cuda's bf16 kernels put our tree
    forward 7e-3 from the Qwen2.5-1.5B's own, and the 1e-4 bound refused it; the CPU's bf16 stays
    closer), and a forward with its positions off by one is still refused with it."""
    for model_type, extra in (("llama", {}), ("gemma4_text", GEMMA4)):
        model = make_tiny_model(tiny_config(model_type, **extra), seed=3, sharpness=2)
        model.set_dtype(dtype)
        tree.check_tree_forward(TargetAdapter(model))
        shifted = tree._positions

        def off_by_one(cache0, rparents, first, L):
            anc, rdepth, groups, inverse = shifted(cache0, rparents, first, L)
            return anc, rdepth, [(pos + 1, idx) for pos, idx in groups], inverse

        monkeypatch.setattr(tree, "_positions", off_by_one)
        with pytest.raises(ValueError, match="does not reproduce model"):
            tree.check_tree_forward(TargetAdapter(model))
        monkeypatch.setattr(tree, "_positions", shifted)
