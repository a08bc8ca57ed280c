"""Spec: draft trees on sliding-window caches (``RotatingKVCache``: sliding-window layers, or every
layer with ``max_kv_size``). One tree forward gives each node the logits of a chain forward over its
own path from the same cache state, and compaction to the accepted path leaves the cache a chain
over that path would, for a window with room for the round, one that wraps during it, and one
that wrapped long before; greedy tree decoding of a llama with sliding-window layers (window 8, 40
tokens: the window wraps many times) is token-identical to mlx-lm's plain decoding.
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx_lm.generate import generate_step
from references import close, feed_prefix, tree_tokens
from mlx_lm.models.cache import KVCache, RotatingKVCache

from mlx_specdec_plugin import SpecStats, caches, tree
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config

VOCAB = 32
ROOT = 9
NODES = [2, 6, 5, 3, 5, 8, 1]
PARENTS = (-1, -1, 0, 1, 1, 3, 5)  # depths 1 1 2 2 2 3 4
SLIDING = dict(layer_types=["sliding_attention", "full_attention", "sliding_attention"], sliding_window=8,
               num_hidden_layers=3)


CASES = {
    # name: (model config extras, cache factory, prefix length)
    "max_kv_size16-room": ({}, lambda m: [RotatingKVCache(16, keep=4) for _ in m.layers], 5),
    "max_kv_size8-wraps-in-round": ({}, lambda m: [RotatingKVCache(8, keep=4) for _ in m.layers], 6),
    "max_kv_size8-wrapped": ({}, lambda m: [RotatingKVCache(8, keep=4) for _ in m.layers], 21),
    "sliding8-room": (SLIDING, lambda m: m.make_cache(), 3),
    "sliding8-wraps-in-round": (SLIDING, lambda m: m.make_cache(), 6),
    "sliding8-wrapped": (SLIDING, lambda m: m.make_cache(), 23),
    "sliding8-kvcache": (SLIDING, lambda m: [KVCache() for _ in m.layers], 23),  # window from the mask alone
}


@pytest.mark.parametrize("case", list(CASES))
def test_tree_forward_and_compaction_on_sliding_windows(case):
    extra, make, n_prefix = CASES[case]
    model = make_tiny_model(tiny_config("llama", vocab_size=VOCAB, **extra), seed=3, sharpness=2)
    target = TargetAdapter(model)
    prefix = [(7 * i + 3) % VOCAB for i in range(n_prefix)]
    cache = make(model)
    feed_prefix(model, cache, prefix)
    rnd = caches.begin_round(cache)
    logits, _ = target(mx.array([[ROOT] + NODES], dtype=mx.uint32), cache, (), tree=PARENTS)
    for node in range(-1, len(NODES)):  # a chain forward over the node's path, same cache state
        path = [ROOT] + [NODES[i] for i in tree.path_to(PARENTS, node)]
        ref_cache = make(model)
        feed_prefix(model, ref_cache, prefix)
        ref = model(mx.array([path]), cache=ref_cache)[0, -1]
        assert close(logits[0, node + 1], ref), (case, node)
    # keep the root and the path 1 -> 3 -> 5 -> 6 (rows 0, 2, 4, 6, 7: off the first branch)
    path = (1, 3, 5, 6)
    rows = (0,) + tuple(1 + i for i in path)
    caches.end_round(cache, rnd, appended=1 + len(NODES), keep=len(rows), rows=rows)
    chain = make(model)
    feed_prefix(model, chain, prefix)
    model(mx.array([[ROOT] + [NODES[i] for i in path]]), cache=chain)
    assert [c.offset for c in cache] == [c.offset for c in chain]
    for nxt in ([[7, 2, 4]], [[5]], [[1]]):  # a multi-token forward, then width-1 (in-place) steps
        assert close(model(mx.array(nxt), cache=cache), model(mx.array(nxt), cache=chain)), (case, nxt)


@pytest.fixture(scope="module")
def sliding():
    config = tiny_config("llama", vocab_size=VOCAB, **SLIDING)
    return make_tiny_model(config, seed=1, sharpness=4), make_tiny_model(config, seed=2, sharpness=4)


@pytest.mark.parametrize("which", ["self", "random"])
def test_greedy_tree_on_sliding_windows_is_plain_decoding(sliding, which):
    target, other = sliding
    draft = target if which == "self" else other
    for prompt in ([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], [7, 7, 1, 2]):
        ref = [int(t) for t, _ in generate_step(mx.array(prompt), target, max_tokens=40)]
        t, proposer, spec, sampling, _, _ = prepare(target, draft, draft_strategy="tree", num_draft_tokens=6)
        assert any(type(c) is RotatingKVCache for c in t.make_cache())
        stats, verdicts = SpecStats(), []

        def accept(d, s):
            verdicts.append(spec.accept(d, s))
            return verdicts[-1]

        out = [tok for tok, _, _ in speculative_generate_step(mx.array(prompt), t, proposer, accept,
                                                             num_draft_tokens=6, max_tokens=40,
                                                             sampling=sampling, stats=stats)]
        assert out == ref
    if which == "self":  # long accepted paths off the first branch: compaction on the rings
        assert any(list(v.rows) != list(range(len(v.rows))) for v in verdicts)


def test_block_drafter_tree_on_sliding_windows_is_plain_decoding(tmp_path):
    """DSpark's best-first tree (taps through the sliding layers) on the same kind of target."""
    import mlx_lm
    from mlx_specdec_plugin.testing.drafters import write_dspark

    from mlx_specdec_plugin import load_drafter
    from mlx_specdec_plugin.testing.tiny import save_tiny_model

    save_tiny_model(tmp_path / "t", "llama", seed=1, sharpness=6, **SLIDING)
    model, tok = mlx_lm.load(str(tmp_path / "t"))
    ds = write_dspark(tmp_path / "ds", tmp_path / "t", target_layer_ids=(0, 2), seed=11)
    prompt = tok.encode("the cat sat on the mat. the cat sat on the")
    ref = [int(t) for t, _ in generate_step(mx.array(prompt), model, max_tokens=40)]
    out, stats = tree_tokens(model, load_drafter(ds, model), prompt, 8)
    assert out == ref and stats.proposed > 0
