"""Spec: a draft tree is verified in ONE target forward (tree attention mask, positions by depth),
the cache is compacted to the accepted path for every cache kind that can hold a tree, and the
outcome is plain decoding at temperature 0 (the longest greedy-matching path) and exact under
sampling (tests/test_tree_exactness.py).

Tree of the probes below (draft numbering, -1 = the pending token)::

    -1 -> 0 -> 2
    -1 -> 1 -> 3 -> 5
               1 -> 4
"""

from __future__ import annotations

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import (
    ArraysCache,
    ChunkedKVCache,
    ConcatenateKVCache,
    KVCache,
    QuantizedKVCache,
)
from mlx_lm.sample_utils import make_logits_processors

from mlx_specdec_plugin.testing.drafters import write_dflash, write_dspark
from test_drafter_generation import PROMPTS, TAPS, _bigram_markov, _constant_dflash, reference
from mlx_specdec_plugin import SpecStats, load_drafter, stream_generate
from mlx_specdec_plugin import caches, tree
from mlx_specdec_plugin.acceptors import tree as tree_acceptor
from mlx_specdec_plugin.bucketed import BucketedKVCache
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_tiny_model, tiny_config

PREFIX = [3, 1, 4, 1, 5]
ROOT = 9
NODES = [2, 6, 5, 3, 5, 8]
PARENTS = (-1, -1, 0, 1, 1, 3)
MAX_TOKENS = 32

CACHE_KINDS = {
    "KVCache": lambda n: [KVCache() for _ in range(n)],
    "BucketedKVCache": lambda n: [BucketedKVCache() for _ in range(n)],
    "ConcatenateKVCache": lambda n: [ConcatenateKVCache() for _ in range(n)],
    "ChunkedKVCache": lambda n: [ChunkedKVCache(64) for _ in range(n)],
    "QuantizedKVCache": lambda n: [QuantizedKVCache(group_size=32, bits=8) for _ in range(n)],
}


def _model(family: str, quantized: bool = False):
    size = dict(hidden_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=32) if quantized else {}
    return make_tiny_model(tiny_config(family, vocab_size=16, **size), seed=3, sharpness=2)


def _close(a, b, tol=1e-4):
    a, b = np.array(a, np.float64), np.array(b, np.float64)
    return np.max(np.abs(a - b)) / (1 + np.max(np.abs(b))) < tol


@pytest.mark.parametrize("kind", list(CACHE_KINDS))
@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_one_tree_forward_then_compaction_equals_the_chain_of_the_accepted_path(family, kind):
    quantized = kind == "QuantizedKVCache"
    model = _model(family, quantized)
    target = TargetAdapter(model)
    n = len(model.layers)
    cache = CACHE_KINDS[kind](n)
    model(mx.array([PREFIX]), cache=cache)
    logits, _ = target(mx.array([[ROOT] + NODES], dtype=mx.uint32), cache, (), tree=PARENTS)
    # every node's logits are those of a chain over its own root-to-node path, with the same cache kind
    for node in range(-1, len(NODES)):
        path = [ROOT] + [NODES[i] for i in tree.path_to(PARENTS, node)]
        ref_cache = CACHE_KINDS[kind](n)
        ref = model(mx.array([PREFIX + path]), cache=ref_cache)[0, -1]
        assert _close(logits[0, node + 1], ref), (family, kind, node)
    # keep the root and the path 1 -> 3 -> 5 (rows 0, 2, 4, 6: not a prefix of the verify rows)
    path = (1, 3, 5)
    rows = (0,) + tuple(1 + i for i in path)
    caches.end_round(cache, caches.begin_round(cache), appended=1 + len(NODES), keep=len(rows), rows=rows)
    chain = CACHE_KINDS[kind](n)
    model(mx.array([PREFIX + [ROOT] + [NODES[i] for i in path]]), cache=chain)
    assert [c.offset for c in cache] == [c.offset for c in chain]
    nxt = mx.array([[7, 2]])
    assert _close(model(nxt, cache=cache), model(nxt, cache=chain))


def test_a_chain_shaped_tree_is_the_plain_verify():
    model = _model("llama")
    target = TargetAdapter(model)
    a, b = target.make_cache(), target.make_cache()
    model(mx.array([PREFIX]), cache=a)
    model(mx.array([PREFIX]), cache=b)
    tokens = mx.array([[ROOT, 2, 6, 5]], dtype=mx.uint32)
    ours, _ = target(tokens, a, (), tree=(-1, 0, 1))
    assert _close(ours, model(tokens, cache=b))


@pytest.mark.parametrize("cache, name", [([ArraysCache(2)], "ArraysCache")])
def test_caches_that_cannot_hold_a_tree_are_refused_before_generation(cache, name):
    """(Sliding windows can: tests/test_tree_rotating.py.)"""
    with pytest.raises(caches.UnsupportedCacheError) as err:
        caches.check_rollback(cache, trees=True)
    msg = str(err.value)
    assert "\n" not in msg and name in msg and "tree" in msg
    caches.check_rollback(cache)  # chains still roll them back


# -- generation


@pytest.fixture(scope="module", params=["qwen3", "llama"])
def world(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("tree_" + request.param)
    save_tiny_model(root / "t", request.param, seed=1, sharpness=6, num_hidden_layers=4)
    model, tok = mlx_lm.load(str(root / "t"))
    refs = {p: reference(model, tok, p)[:MAX_TOKENS] for p in PROMPTS}
    V, H = model.args.vocab_size, model.args.hidden_size
    counts = np.bincount(np.concatenate([np.array(r) for r in refs.values()]), minlength=V)
    frequent, never = int(counts.argmax()), np.flatnonzero(counts == 0)[:3].tolist()
    zero_base = {"norm.weight": mx.zeros((H,))}
    w2_never = np.zeros((V, 8), np.float32)
    w2_never[never] = 1.0  # three tokens no reference contains lead every row by 8
    ck = {
        "dspark/good": write_dspark(
            root / "ds_good", root / "t", target_layer_ids=TAPS, markov_rank=V, confidence=False,
            weight_overrides={**zero_base, **_bigram_markov(refs.values(), V, scale=3.0)},
        ),
        "dspark/random": write_dspark(root / "ds_rand", root / "t", target_layer_ids=TAPS, seed=11),
        "dspark/rejected": write_dspark(
            root / "ds_rej", root / "t", target_layer_ids=TAPS, confidence=False,
            weight_overrides={**zero_base, "markov_head.markov_w1.weight": mx.ones((V, 8)),
                             "markov_head.markov_w2.weight": mx.array(w2_never)},
        ),
        "dflash/good": write_dflash(
            root / "df_good", root / "t", target_layer_ids=TAPS, weight_overrides=_constant_dflash(H, V, frequent)
        ),
        "dflash/random": write_dflash(root / "df_rand", root / "t", target_layer_ids=TAPS, seed=12),
    }
    return model, tok, refs, ck, never


def _recording(accept, verdicts):
    def wrapped(draft, scores):
        verdicts.append((draft.parents, accept(draft, scores)))
        return verdicts[-1][1]

    return wrapped


@pytest.mark.parametrize("drafter", ["dspark/good", "dspark/random", "dspark/rejected", "dflash/good", "dflash/random"])
def test_greedy_tree_decoding_is_plain_decoding(world, drafter):
    model, tok, refs, ck, _ = world
    # the always-rejected drafter's three top tokens never occur: every node of its trees is wrong
    options = {"max_children": 3} if drafter.endswith("rejected") else {}
    kw = dict(draft_strategy="tree", num_draft_tokens=10, strategy_options=options)
    target, proposer, spec, sampling, strategy, _ = prepare(model, load_drafter(ck[drafter], model), **kw)
    assert spec.name == "tree" and strategy.name == "tree"
    verdicts, stats = [], SpecStats()
    for prompt in PROMPTS:
        _, proposer, _, _, _, _ = prepare(model, load_drafter(ck[drafter], model), target=target, **kw)
        out = [t for t, _, _ in speculative_generate_step(
            mx.array(tok.encode(prompt)), target, proposer, _recording(spec.accept, verdicts),
            num_draft_tokens=10, max_tokens=MAX_TOKENS, sampling=sampling, stats=stats)]
        assert out[: len(refs[prompt])] == refs[prompt], prompt
    assert stats.proposed > 0
    branching = [p for p, _ in verdicts if p is not None and not tree.is_chain(p)]
    assert branching  # real trees were verified
    if drafter.endswith("rejected"):
        assert stats.accepted == 0
    if drafter.endswith("good"):
        assert stats.accepted > 0
    if drafter == "dspark/good":  # accepted paths off the first branch: compaction exercised
        assert any(v.path and list(v.rows) != list(range(len(v.rows))) for _, v in verdicts)
        assert max(v.accepted for _, v in verdicts) >= 2


def test_greedy_tree_with_logits_processors(world):
    """Each node's processors see its own path (a repetition penalty)."""
    model, tok, _, ck, _ = world
    procs = make_logits_processors(repetition_penalty=1.3)
    prompt = PROMPTS[0]
    out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, draft_model=str(ck["dspark/good"]),
                                            draft_strategy="tree", num_draft_tokens=8, logits_processors=procs)]
    ref = reference(model, tok, prompt, logits_processors=procs)[:MAX_TOKENS]
    assert out[: len(ref)] == ref


def test_stream_generate_reports_the_tree_acceptor(world):
    model, tok, refs, ck, _ = world
    stats = SpecStats()
    out = [r.token for r in stream_generate(model, tok, PROMPTS[1], max_tokens=24, draft_model=str(ck["dflash/good"]),
                                            draft_strategy="tree", num_draft_tokens=6, stats=stats,
                                            strategy_options={"max_children": 2})]
    assert out == refs[PROMPTS[1]][: len(out)]
    assert stats.strategy == "tree" and stats.acceptor == "tree"


def test_bad_combinations_are_one_line_before_generation(world, tmp_path):
    model, tok, _, ck, _ = world
    cases = [
        (dict(draft_model=str(ck["dspark/good"]), acceptor="rejection"), "verifies chains only"),
        (dict(draft_model=model.layers[0]), "needs a DSpark or DFlash drafter"),
        (dict(draft_model=str(ck["dspark/good"]), strategy_options={"max_children": 0}), "max_children"),
        (dict(draft_model=str(ck["dspark/good"]), prompt_cache=[ArraysCache(2) for _ in model.layers]),
         "ArraysCache"),
    ]
    for kw, needle in cases:
        with pytest.raises(ValueError) as err:
            list(stream_generate(model, tok, PROMPTS[0], max_tokens=4, draft_strategy="tree", **kw))
        assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_family_without_a_tree_forward_is_refused(tmp_path):
    save_tiny_model(tmp_path / "g", "gemma3_text", seed=1)
    model, _ = mlx_lm.load(str(tmp_path / "g"))
    with pytest.raises(ValueError, match="tree verification is not implemented for model_type 'gemma3_text'"):
        TargetAdapter(model).check_tree()


def test_greedy_acceptor_walks_the_longest_matching_path():
    """Unit: at T = 0 the walk follows the target's argmax through any branch."""
    from mlx_specdec_plugin.acceptors import TargetScores
    from mlx_specdec_plugin.contract import Draft
    from mlx_specdec_plugin.sampling import Sampling

    V = 10
    best = [6, 0, 3, 4, 8, 7, 1]  # argmax of the rows: the root's, then node 0's .. node 5's
    logits = mx.array(np.eye(V, dtype=np.float32)[best] * 5)
    draft = Draft(mx.array(NODES, dtype=mx.uint32), None, True, PARENTS)
    verdict = tree_acceptor.accept(draft, TargetScores.from_logits(logits, [ROOT] + NODES, Sampling.create(), PARENTS))
    # root argmax 6 -> node 1 (token 6); its argmax 3 -> node 3; its argmax 8 -> node 5; then argmax 1
    assert verdict.path == (1, 3, 5) and verdict.accepted == 3 and verdict.next_token == 1
