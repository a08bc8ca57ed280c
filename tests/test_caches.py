"""Spec: a round's rollback leaves every cache kind exactly as if only the kept tokens had been fed.

The harness runs random rounds like the loop does (verify ``[pending, *drafts]`` in one forward,
keep a random prefix, roll back) and compares every kept position's logits with plain decoding
(the same model and cache types, fed the committed tokens one at a time). Rounds keep everything,
nothing, or something in between, and generations cross the sliding window several times.
"""

from __future__ import annotations

import random
from typing import Callable, List

import mlx.core as mx
import pytest
from mlx_lm.models.cache import (
    ArraysCache,
    CacheList,
    ChunkedKVCache,
    ConcatenateKVCache,
    KVCache,
    QuantizedKVCache,
    RotatingKVCache,
    make_prompt_cache,
)

from mlx_specdec_plugin import caches
from mlx_specdec_plugin.recurrent import CAPTURES
from mlx_specdec_plugin.target import TargetAdapter, lm_head
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config

VOCAB = 11
GDN = dict(  # a tiny Gated DeltaNet hybrid: layers alternate linear attention / full attention
    linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=8, linear_value_head_dim=8,
    linear_conv_kernel_dim=4, head_dim=8, full_attention_interval=2, partial_rotary_factor=0.5,
    num_experts=0, num_experts_per_tok=0, decoder_sparse_step=1, shared_expert_intermediate_size=0,
    mlp_only_layers=[], moe_intermediate_size=0,
)
FALCON_H1 = dict(  # Mamba-2 + attention in every layer: CacheList(ArraysCache, KVCache)
    head_dim=8, mamba_d_ssm=32, mamba_n_heads=4, mamba_d_head=8, mamba_d_state=8, mamba_chunk_size=8,
    mamba_d_conv=4, mamba_n_groups=1, tie_word_embeddings=True,
)

# name -> (config, cache factory or None for the model's own, capture forward or None (replay))
MODELS = {
    "kv": (tiny_config("llama", vocab_size=VOCAB), None, None),
    "quantized-kv": (
        tiny_config("llama", vocab_size=VOCAB, hidden_size=128),
        lambda m: [QuantizedKVCache(group_size=32, bits=8) for _ in m.layers],
        None,
    ),
    "concatenate-kv": (tiny_config("llama", vocab_size=VOCAB), lambda m: [ConcatenateKVCache() for _ in m.layers], None),
    "rotating-window8": (tiny_config("gemma3_text", vocab_size=VOCAB, num_hidden_layers=4, sliding_window=8), None, None),
    "arrays-replay-qwen3_5": (tiny_config("qwen3_5", vocab_size=VOCAB, num_hidden_layers=4, **GDN), None, None),
    "arrays-capture-qwen3_5": (tiny_config("qwen3_5", vocab_size=VOCAB, num_hidden_layers=4, **GDN), None, "qwen3_5"),
    "arrays-capture-qwen3_next": (tiny_config("qwen3_next", vocab_size=VOCAB, num_hidden_layers=4, **GDN), None, "qwen3_next"),
    "cachelist-mamba2-falcon_h1": (tiny_config("falcon_h1", vocab_size=VOCAB, **FALCON_H1), None, None),
}


def plain_logits(model, cache: List, tokens: List[int]) -> mx.array:
    """Plain decoding: one token per forward. Returns (len(tokens), V)."""
    return mx.concatenate([model(mx.array([[t]]), cache=cache)[0] for t in tokens])


def speculative_logits(model, cache, forward: Callable, tokens: List[int], rounds: List[tuple]):
    """Feed ``tokens`` through rounds of (drafts, keep); logits of the kept positions, in order."""
    model(mx.array([tokens[:3]]), cache=cache)  # a prefill chunk
    kept_logits, pos = [], 3
    for junk, keep in rounds:
        inputs = tokens[pos : pos + keep] + junk  # the kept prefix, then rejected drafts
        inputs_arr = mx.array([inputs])
        rnd = caches.begin_round(cache, replay=lambda n: model(inputs_arr[:, :n], cache=cache))
        logits = forward(inputs_arr, cache, rnd.captured)
        mx.eval(logits)
        caches.end_round(cache, rnd, appended=len(inputs), keep=keep)
        mx.eval([c.state for c in caches.leaves(cache)])
        kept_logits.append(logits[0, :keep])
        pos += keep
    return mx.concatenate(kept_logits), pos


def random_rounds(rng: random.Random, n: int) -> List[tuple]:
    rounds = []
    for i in range(n):
        g = rng.choice([1, 2, 3, 5]) if i % 5 else 0  # every fifth round verifies only the pending token
        keep = [1, g + 1, rng.randint(1, g + 1)][i % 3]  # all rejected / all accepted / partial
        junk = [rng.randrange(VOCAB) for _ in range(g + 1 - keep)]
        rounds.append((junk, keep))
    return rounds


@pytest.fixture(scope="module", params=list(MODELS))
def kind(request):
    config, make_cache, capture = MODELS[request.param]
    model = make_tiny_model(config, seed=3, sharpness=2)
    return request.param, model, (lambda: make_cache(model)) if make_cache else (lambda: make_prompt_cache(model)), capture


def test_rounds_reproduce_plain_decoding(kind):
    name, model, make_cache, capture = kind
    rng = random.Random(7)
    rounds = random_rounds(rng, 30)
    tokens = [rng.randrange(VOCAB) for _ in range(3 + sum(k for _, k in rounds))]
    if capture:
        fwd = CAPTURES[capture]
        forward = lambda x, c, rec: lm_head(model, fwd(model, x, c, (), rec)[0])  # the capture stops at the norm
    else:
        forward = lambda x, c, rec: model(x, cache=c)
    spec, n = speculative_logits(model, make_cache(), forward, tokens, rounds)
    assert n > 2 * 8 + 8, "the generation must cross the sliding window several times"
    ref_cache = make_cache()
    ref = plain_logits(model, ref_cache, tokens[:n])[3:]
    scale = 1.0 + float(mx.abs(ref).max())
    assert float(mx.abs(spec - ref).max()) / scale < 1e-4, name


def test_capture_states_are_selected_not_replayed():
    config, _, capture = MODELS["arrays-capture-qwen3_5"]
    model = make_tiny_model(config, seed=3)
    cache = make_prompt_cache(model)
    model(mx.array([[1, 2, 3]]), cache=cache)
    replayed = []
    rnd = caches.begin_round(cache, replay=replayed.append)
    CAPTURES[capture](model, mx.array([[4, 5, 6, 7]]), cache, (), rnd.captured)
    caches.end_round(cache, rnd, appended=4, keep=2)
    assert replayed == []
    ref = make_prompt_cache(model)
    model(mx.array([[1, 2, 3, 4, 5]]), cache=ref)
    for ours, theirs in zip(cache, ref):
        if isinstance(theirs, ArraysCache):
            assert all(mx.allclose(a, b, atol=1e-5) for a, b in zip(ours.cache, theirs.cache))
        else:
            assert ours.offset == theirs.offset == 5


def test_uncaptured_recurrent_layers_replay_the_kept_tokens():
    config, _, _ = MODELS["arrays-replay-qwen3_5"]
    model = make_tiny_model(config, seed=3)
    cache = make_prompt_cache(model)
    replayed = []
    rnd = caches.begin_round(cache, replay=replayed.append)
    model(mx.array([[4, 5, 6, 7]]), cache=cache)
    caches.end_round(cache, rnd, appended=4, keep=3)
    assert replayed == [3]
    undone = [c.empty() if isinstance(c, ArraysCache) else c.offset == 0 for c in cache]
    assert all(undone), "everything is undone before the replay"


def test_all_accepted_costs_nothing():
    config, _, _ = MODELS["arrays-replay-qwen3_5"]
    model = make_tiny_model(config, seed=3)
    cache = make_prompt_cache(model)
    rnd = caches.begin_round(cache, replay=lambda n: pytest.fail("no replay when all are kept"))
    model(mx.array([[4, 5, 6]]), cache=cache)
    after = [list(c.cache) if isinstance(c, ArraysCache) else c.offset for c in cache]
    caches.end_round(cache, rnd, appended=3, keep=3)
    assert [list(c.cache) if isinstance(c, ArraysCache) else c.offset for c in cache] == after


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_rotating_cache_written_in_place_restores_the_overwritten_window(keep):
    """Width-1 speculative feeds (a draft model) overwrite the oldest ring rows; rolling them back
    needs the saved window, and a later width-1 forward needs a full ring."""
    c, ref = RotatingKVCache(max_size=4), RotatingKVCache(max_size=4)
    row = lambda t: mx.full((1, 1, 1, 2), float(t))
    for t in range(6):
        c.update_and_fetch(row(t), row(t))
        ref.update_and_fetch(row(t), row(t))
    rnd = caches.begin_round([c])
    for t in (100, 101, 102):
        c.update_and_fetch(row(t), row(t))
    caches.end_round([c], rnd, appended=3, keep=keep)
    for t in (100, 101, 102)[:keep]:
        ref.update_and_fetch(row(t), row(t))
    for t in (6, 7, 8):  # continue both with width-1 and a multi-token forward
        c.update_and_fetch(row(t), row(t))
        ref.update_and_fetch(row(t), row(t))
    k, _ = c.update_and_fetch(mx.concatenate([row(9), row(10)], axis=2), mx.concatenate([row(9), row(10)], axis=2))
    k_ref, _ = ref.update_and_fetch(mx.concatenate([row(9), row(10)], axis=2), mx.concatenate([row(9), row(10)], axis=2))
    assert k[0, 0, :, 0].tolist() == k_ref[0, 0, :, 0].tolist() and c.offset == ref.offset


def test_cachelist_and_chunked_leaves_are_rolled_back():
    row = lambda t: mx.full((1, 1, 1, 2), float(t))
    nested = CacheList(KVCache(), CacheList(ChunkedKVCache(chunk_size=16), ArraysCache(size=1)))
    leaves = caches.leaves([nested])
    assert [type(c) for c in leaves] == [KVCache, ChunkedKVCache, ArraysCache]
    leaves[2][0] = mx.array([1.0])
    rnd = caches.begin_round([nested])
    three = mx.concatenate([row(1), row(2), row(3)], axis=2)
    for c in leaves[:2]:
        c.update_and_fetch(three, three)
    leaves[2][0] = mx.array([4.0])
    rnd.captured[id(leaves[2])] = lambda keep: [mx.array([float(keep)])]
    caches.end_round([nested], rnd, appended=3, keep=2)
    assert [c.offset for c in leaves[:2]] == [2, 2] and leaves[2][0].item() == 2.0


class MysteryCache:
    """A cache type from some future model: we cannot know how to undo its updates."""

    state = []


def test_unknown_cache_type_is_one_clear_error():
    with pytest.raises(caches.UnsupportedCacheError, match="MysteryCache") as err:
        caches.check_rollback([KVCache(), CacheList(MysteryCache(), ArraysCache(size=2)), RotatingKVCache(8)])
    assert "KVCache" in str(err.value)  # it lists what is supported
    assert str(err.value).count("MysteryCache") == 1


def test_unknown_cache_type_is_refused_before_generating():
    from mlx_specdec_plugin.loop import speculative_generate_step
    from mlx_specdec_plugin.strategies.lookup import LookupProposer
    from mlx_specdec_plugin.acceptors.greedy import accept

    model = make_tiny_model(MODELS["kv"][0], seed=3)
    gen = speculative_generate_step(
        mx.array([1, 2, 3]), TargetAdapter(model), LookupProposer(), accept,
        prompt_cache=[MysteryCache() for _ in model.layers], max_tokens=4,
    )
    with pytest.raises(caches.UnsupportedCacheError, match="MysteryCache"):
        next(gen)


def test_capture_is_proven_at_load_time_or_replay_is_used():
    from mlx_specdec_plugin import recurrent

    hybrid = make_tiny_model(MODELS["arrays-capture-qwen3_5"][0], seed=3)
    assert recurrent.capture_forward(TargetAdapter(hybrid)) is recurrent.CAPTURES["qwen3_5"]
    mamba = make_tiny_model(MODELS["cachelist-mamba2-falcon_h1"][0], seed=3)
    assert recurrent.capture_forward(TargetAdapter(mamba)) is None  # no capture: replay

    saved = recurrent.CAPTURES["qwen3_5"]

    def off_by_one(model, tokens, cache, taps, record):  # selects the wrong position
        logits, tapped = saved(model, tokens, cache, taps, record)
        for key, select in list(record.items()):
            record[key] = lambda keep, select=select: select(max(1, keep - 1))
        return logits, tapped

    recurrent.CAPTURES["qwen3_5"] = off_by_one
    try:
        with pytest.warns(UserWarning, match="rolling back by replay"):
            assert recurrent.capture_forward(TargetAdapter(hybrid)) is None
    finally:
        recurrent.CAPTURES["qwen3_5"] = saved
