"""Spec: sampled draft trees (``tree`` strategy, ``mode=sampled``, T > 0) are exact, and their shape
is the best-first tree under the sibling model.

* the shape is the tree of ``N`` nodes with the largest modelled reach (checked against every tree
  of that size), breadth-first with each sibling group contiguous and in draw order;
* ``draw_groups`` draws without replacement from q in draw order (chi-square on ordered pairs)
  and cuts a group to q's support;
* ``SiblingRates.observe`` counts what the acceptor tried and kept;
* chi-square at T=1, with a repetition penalty, on a synthetic target (the acceptor on trees drawn
  as the strategy draws them), and through the whole loop for the draft-model tree and for the
  DSpark block tree; two planted faults fail the same tests: siblings drawn *with* replacement but
  reported as drawn without, and an acceptor that keeps q unchanged after a rejection (SpecInfer's
  rule for independent draws, applied to draws without replacement).
"""

from __future__ import annotations

from collections import Counter

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.sample_utils import make_logits_processors

import test_tree_exactness as te
from exactness import chi_square_pvalue, exact_joint
from mlx_specdec_plugin import SpecStats, load_drafter, tree
from mlx_specdec_plugin.acceptors import tree as tree_acceptor
from mlx_specdec_plugin.contract import Draft, Verdict
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.sampling import make_sampler
from mlx_specdec_plugin.strategies.sampled_tree import SiblingRates, draw_groups, rank_rates, shape
from mlx_specdec_plugin.strategies import sampled_tree as sampled_tree_module
from mlx_specdec_plugin.testing.drafters import kind_fixtures, write_dspark, write_gemma4_assistant
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_model, tiny_config

# -- the shape


def _reach(parents, ranks, rates):
    out = []
    for p, r in zip(parents, ranks):
        out.append((1.0 if p < 0 else out[p]) * rates[r])
    return sum(out)


def _ranks(parents):
    kids = tree.children(parents)
    ranks = [0] * len(parents)
    for group in kids.values():
        for r, c in enumerate(group):
            ranks[c] = r
    return ranks


def _all_trees(n, k, max_depth):
    """Every tree of n nodes whose sibling groups are prefixes of their draws (as sets of rank paths)."""
    frontier = {frozenset()}
    for _ in range(n):
        grown = set()
        for t in frontier:
            for path in list(t) + [()]:
                if len(path) < max_depth and path + (0,) not in t:
                    grown.add(t | {path + (0,)})
            for path in t:
                if path[-1] + 1 < k and path[:-1] + (path[-1] + 1,) not in t:
                    grown.add(t | {path[:-1] + (path[-1] + 1,)})
        frontier = grown
    return frontier


@pytest.mark.parametrize("h", [0.15, 0.5, 0.8])
@pytest.mark.parametrize("n, k, max_depth", [(5, 3, 5), (6, 6, 3)])
def test_the_shape_is_the_best_tree_under_the_sibling_model(h, n, k, max_depth):
    rates = rank_rates([h] * k)
    parents = shape(rates, n, max_depth)
    assert len(parents) == n and max(tree.depths(parents)) <= max_depth
    kids = tree.children(parents)
    for group in kids.values():  # contiguous groups, breadth-first
        assert group == list(range(group[0], group[0] + len(group))) and len(group) <= k
    assert list(tree.depths(parents)) == sorted(tree.depths(parents))
    ours = _reach(parents, _ranks(parents), rates)
    best = max(sum(np.prod([rates[r] for r in path]) for path in t) for t in _all_trees(n, k, max_depth))
    assert ours == pytest.approx(best, rel=1e-12)


def test_a_sure_sibling_gives_a_chain_and_a_rare_one_a_star():
    assert tree.is_chain(shape(rank_rates([1.0] * 4), 6, 6))
    assert shape(rank_rates([0.05] * 6), 6, 6) == (-1,) * 6


def test_sibling_rates_count_what_the_acceptor_tried():
    parents, tokens = (-1, -1, 0, 0, 1), [5, 6, 7, 8, 9]
    rates = SiblingRates()
    rates.observe(parents, tokens, [6, 9])  # root: rank 0 rejected, rank 1 kept; node 1: rank 0 kept
    rates.observe(parents, tokens, [5])  # root: rank 0 kept; node 0: both children rejected
    assert rates.tried == [4, 2] and rates.kept == [2, 1]
    assert rates.hazards(3) == [3 / 6, 2 / 4, 1 / 2]
    assert SiblingRates(0.3).hazards(2) == [0.3, 0.3]
    with pytest.raises(ValueError, match="sibling_rate"):
        SiblingRates(0.0)


def _ordered_pairs(q):
    V = len(q)
    return {(a, b): q[a] * q[b] / (1 - q[a]) for a in range(V) for b in range(V) if a != b and q[a] < 1}


def test_groups_are_drawn_without_replacement_in_draw_order():
    mx.random.seed(3)
    q = np.array([0.5, 0.3, 0.15, 0.05, 0.0], np.float32)
    rows = mx.array(np.stack([q] * 4000))
    drawn = draw_groups(rows, [2] * 4000)
    assert chi_square_pvalue([tuple(g) for g in drawn], _ordered_pairs(q.astype(np.float64))) > 1e-3
    # a group larger than q's support is cut to it (the cut is decided from q alone)
    cut = draw_groups(mx.array([[0.0, 0.7, 0.3, 0.0]]), [3])[0]
    assert sorted(cut) == [1, 2]


def test_the_test_catches_draws_with_replacement():
    """The same chi-square on independent draws (the planted proposer below) fails."""
    mx.random.seed(3)
    q = np.array([0.5, 0.3, 0.15, 0.05, 0.0], np.float64)
    rng = np.random.default_rng(3)
    drawn = [tuple(rng.choice(5, size=2, p=q)) for _ in range(4000)]
    assert chi_square_pvalue(drawn, _ordered_pairs(q)) < 1e-6


# -- the acceptor on sampled trees (synthetic target, tests/test_tree_exactness.py's world)


def draft_sampled(history, rng, with_replacement=False) -> Draft:
    """te.PARENTS' shape, each group drawn by draw_groups from q at its node (the planted variant:
    independent draws, reported as drawn without replacement)."""
    tokens, q_rows, kids = [], [], tree.children(te.PARENTS)
    for node in range(-1, len(te.PARENTS)):
        group = kids.get(node, [])
        if not group:
            continue
        q = te.q_of(te._node_prefix(history, tokens, node))
        if with_replacement:
            picked = list(rng.choice(te.VOCAB, size=len(group), p=q))
        else:
            picked = draw_groups(mx.array(q[None].astype(np.float32)), [len(group)])[0]
        assert len(picked) == len(group)
        tokens.extend(int(t) for t in picked)
        q_rows.extend([q] * len(group))
    return Draft(mx.array(tokens, dtype=mx.uint32), mx.array(np.stack(q_rows).astype(np.float32)), False, te.PARENTS)


def q_unchanged(draft, scores):
    """Planted wrong rule: recursive rejection whose q stays the group's row after a rejection
    (exact for independent draws, not for draws without replacement)."""
    p = np.array(scores.probs(), dtype=np.float64)
    qs = np.array(draft.q, dtype=np.float64)
    nodes = draft.tokens.tolist()
    kids = tree.children(draft.parents)
    node, path = -1, []
    while True:
        r, chosen = p[node + 1].copy(), None
        for c in kids.get(node, ()):
            q, t = qs[c], nodes[c]
            if np.random.uniform() * q[t] < r[t]:
                chosen = c
                break
            r = np.maximum(r - q, 0.0)
            r = r / r.sum() if r.sum() > 1e-12 else p[node + 1]
        if chosen is None:
            return Verdict(len(path), int(np.random.choice(len(r), p=r / r.sum())), tuple(path))
        node = chosen
        path.append(node)


def synthetic_rounds(accept, with_replacement=False, n=te.SAMPLES):
    mx.random.seed(11)
    np.random.seed(11)
    rng = np.random.default_rng(11)
    history, samples = list(te.PROMPT), []
    for _ in range(n):
        draft = draft_sampled(history, rng, with_replacement)
        verdict = accept(draft, te.scores_from_table(history, draft))
        nodes = draft.tokens.tolist()
        out = [nodes[i] for i in verdict.nodes] + [verdict.next_token]
        while len(out) < te.K:
            out.append(int(rng.choice(te.VOCAB, p=te.p_of(history + out))))
        samples.append(tuple(out[: te.K]))
    return samples


def test_sampled_trees_are_exact_under_the_tree_acceptor():
    assert chi_square_pvalue(synthetic_rounds(tree_acceptor.accept), te.joint()) > te.ALPHA


@pytest.mark.parametrize("fault", ["with_replacement", "q_unchanged"])
def test_the_test_catches_a_planted_sampled_tree_fault(fault):
    if fault == "with_replacement":
        samples = synthetic_rounds(tree_acceptor.accept, with_replacement=True)
    else:
        samples = synthetic_rounds(q_unchanged)
    p = chi_square_pvalue(samples, te.joint())
    print(f"planted {fault}: N={te.SAMPLES} p={p:.3g}")
    assert p < 1e-6


# -- through the loop: the draft-model tree and the DSpark block tree

VOCAB = 8
PROMPT = [1, 2, 3]
SAMPLES = 400
DSPARK_SCALE = 2.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    config = tiny_config("qwen3", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2)
    target = make_tiny_model(config, seed=1, sharpness=1.0)
    # other weights, sharper: q far from p, so that the first siblings are often rejected and the
    # planted faults show (with q close to p they shift the joint too little to see at this N)
    draft = make_tiny_model(config, seed=2, sharpness=2.0)
    root = tmp_path_factory.mktemp("sampled_tree")
    target_dir = save_model(root / "t", target, config, tokenizer=False)
    dspark = load_drafter(write_dspark(root / "ds", target_dir, target_layer_ids=(0, 1), block_size=4,
                                       confidence=False, seed=5, scale=DSPARK_SCALE), target)
    return target, {"draft-model": draft, "dspark": dspark}, exact_joint(target, PROMPT, 3, VOCAB, dict(temp=1.0), {})


def loop_samples(target, draft, n=SAMPLES, accept=None, drafts=None, processors=None, mode="sampled"):
    """The first 3 tokens of ``n`` generations of 5, each from a fresh proposer (the first round
    drafts 4 nodes: sibling_rate 0.3 makes them 4 siblings at the root)."""
    mx.random.seed(1234)
    np.random.seed(1234)
    t, samples, stats = None, [], SpecStats()
    for _ in range(n):
        t, proposer, spec, sampling, _, _ = prepare(
            target, draft, draft_strategy="tree", num_draft_tokens=4, sampler=make_sampler(temp=1.0), target=t,
            strategy_options={"mode": mode, "sibling_rate": 0.3}, logits_processors=processors)

        def recording(d, scores, _accept=accept or spec.accept):
            if drafts is not None:
                drafts.append(d)
            return _accept(d, scores)

        gen = speculative_generate_step(mx.array(PROMPT), t, proposer, recording, num_draft_tokens=4,
                                        max_tokens=5, sampling=sampling, stats=stats)
        samples.append(tuple(tok for tok, _, _ in gen)[:3])
    return samples, stats


def _first_two(joint):
    out = Counter()
    for cell, p in joint.items():
        out[cell[:2]] += p
    return dict(out)


@pytest.mark.parametrize("drafter", ["draft-model", "dspark"])
def test_sampled_trees_are_exact_through_the_loop(world, drafter):
    target, drafters, joint = world
    drafts = []
    samples, stats = loop_samples(target, drafters[drafter], drafts=drafts)
    p = chi_square_pvalue(samples, joint)
    p2 = chi_square_pvalue([s[:2] for s in samples], _first_two(joint))
    print(f"{drafter} sampled tree: N={SAMPLES} p={p:.3g} (first two {p2:.3g}) accepted {stats.accepted}/{stats.proposed}")
    assert p > 1e-3 and p2 > 1e-3
    assert 0 < stats.accepted < stats.proposed
    # sampled trees were verified: four distinct siblings at the root, with q reported
    first = [d for d in drafts if len(d) == 4]
    assert len(first) == SAMPLES
    assert all(d.parents == (-1,) * 4 and not d.deterministic and len(set(d.tokens.tolist())) == 4 for d in first)


@pytest.mark.parametrize("drafter", ["draft-model", "dspark"])
def test_sampled_trees_are_exact_with_a_repetition_penalty(world, drafter):
    """Each node's q is drawn through the user's processors with the node's own path."""
    target, drafters, _ = world
    kw = dict(repetition_penalty=1.3)
    joint = exact_joint(target, PROMPT, 3, VOCAB, dict(temp=1.0), kw)
    samples, stats = loop_samples(target, drafters[drafter], processors=make_logits_processors(**kw))
    p = chi_square_pvalue(samples, joint)
    print(f"{drafter} sampled tree, repetition penalty: N={SAMPLES} p={p:.3g} accepted {stats.accepted}/{stats.proposed}")
    assert p > 1e-3 and 0 < stats.accepted < stats.proposed


def _with_replacement(q, sizes):
    """Planted proposer fault: independent draws from q (duplicates allowed), reported as drawn
    without replacement."""
    return [mx.random.categorical(mx.log(q[i : i + 1]), num_samples=s)[0].tolist() for i, s in enumerate(sizes)]


@pytest.mark.parametrize("drafter", ["draft-model", "dspark"])
def test_the_loop_test_catches_draws_with_replacement(world, drafter, monkeypatch):
    target, drafters, joint = world
    monkeypatch.setattr(sampled_tree_module, "draw_groups", _with_replacement)
    samples, _ = loop_samples(target, drafters[drafter])
    p = chi_square_pvalue([s[:2] for s in samples], _first_two(joint))
    print(f"planted with-replacement draws ({drafter}): N={SAMPLES} p={p:.3g} (first two tokens)")
    assert p < 1e-6


@pytest.mark.parametrize("drafter", ["draft-model", "dspark"])
def test_the_loop_test_catches_an_acceptor_that_keeps_q(world, drafter):
    target, drafters, joint = world
    samples, _ = loop_samples(target, drafters[drafter], accept=q_unchanged)
    p = chi_square_pvalue([s[:2] for s in samples], _first_two(joint))
    print(f"planted q_unchanged ({drafter}): N={SAMPLES} p={p:.3g} (first two tokens)")
    assert p < 1e-6


def test_temperature_zero_keeps_the_top_k_tree(world):
    target, drafts, _ = world
    t, proposer, _, sampling, _, _ = prepare(target, drafts["draft-model"], draft_strategy="tree", num_draft_tokens=4,
                                             strategy_options={"mode": "sampled"})
    from mlx_specdec_plugin.contract import DraftContext

    proposer.extend(PROMPT[:-1], None)
    d = proposer.propose(DraftContext(list(PROMPT), sampling), 4)
    assert d.deterministic and d.q is None


def test_bad_options_are_one_line(world):
    target, drafts, _ = world
    for options, needle in [({"mode": "beam"}, "mode must be one of"), ({"sibling_rate": 1.5}, "sibling_rate")]:
        with pytest.raises(ValueError) as err:
            prepare(target, drafts["draft-model"], draft_strategy="tree", num_draft_tokens=4, strategy_options=options)
        assert needle in str(err.value) and "\n" not in str(err.value)


# -- Gemma-4's assistant: its tree, sampled and top-k, on a gemma4_text target

ASSISTANT_FAULT_SAMPLES = 1400  # the with-replacement fault moves this joint less: p ~ 7e-4 at 400, 6e-7 at 1000


@pytest.fixture(scope="module")
def gemma_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("assistant_tree")
    target, _ = kind_fixtures(root, VOCAB)["assistant"]
    # sharper than the chi-square fixture's: q far from p, so that the planted fault shows
    assistant = load_drafter(write_gemma4_assistant(root / "sharp", root / "gemma4", seed=3, scale=3.0), target)
    return target, assistant, exact_joint(target, PROMPT, 3, VOCAB, dict(temp=1.0), {})


@pytest.mark.parametrize("mode", ["sampled", "topk"])
def test_assistant_trees_are_exact_through_the_loop(gemma_world, mode):
    target, assistant, joint = gemma_world
    drafts = []
    samples, stats = loop_samples(target, assistant, drafts=drafts, mode=mode)
    p = chi_square_pvalue(samples, joint)
    print(f"assistant {mode} tree: N={SAMPLES} p={p:.3g} accepted {stats.accepted}/{stats.proposed}")
    assert p > 1e-3
    assert 0 < stats.accepted < stats.proposed
    first = [d for d in drafts if len(d) == 4]
    assert first and all(d.deterministic == (mode == "topk") for d in first)
    if mode == "sampled":
        assert all(d.parents == (-1,) * 4 and len(set(d.tokens.tolist())) == 4 for d in first)


def test_the_assistant_tree_test_catches_draws_with_replacement(gemma_world, monkeypatch):
    target, assistant, joint = gemma_world
    monkeypatch.setattr(sampled_tree_module, "draw_groups", _with_replacement)
    samples, _ = loop_samples(target, assistant, n=ASSISTANT_FAULT_SAMPLES)
    p = chi_square_pvalue([s[:2] for s in samples], _first_two(joint))
    print(f"planted with-replacement draws (assistant): N={ASSISTANT_FAULT_SAMPLES} p={p:.3g} (first two tokens)")
    assert p < 1e-6

