"""Spec: ``--draft-strategy tree`` with a classic draft model grows a top-k draft tree (one draft-model
forward per depth, tree attention mask on the draft model too), verified by the ``tree`` acceptor:
greedy output token-identical to plain decoding with good (the target itself), random and
always-rejected draft models, with and without logits processors; the tree is the best-first tree
of ``N`` nodes under the draft model's q (checked against chain forwards of the draft model on
every path); chi-square exact at T=1, and a planted wrong tree rule fails the same test.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx_lm.generate import generate_step
from mlx_lm.sample_utils import make_logits_processors

from exactness import chi_square_pvalue, exact_joint
from test_tree_exactness import residual_is_p
from mlx_specdec_plugin import SpecStats, tree
from mlx_specdec_plugin.contract import DraftContext, StrategyOptions
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.sampling import Sampling, make_sampler, normalise
from mlx_specdec_plugin.strategies.draft_tree import DraftTreeProposer
from mlx_specdec_plugin.strategies.tree import best_first, top_children
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config

VOCAB = 32
MAX_TOKENS = 40
PROMPTS = [[3, 1, 4, 1, 5, 9, 2, 6], [7, 7, 1, 2, 7, 7, 1]]


def plain(model, prompt, processors=None):
    return [int(t) for t, _ in generate_step(mx.array(prompt), model, max_tokens=MAX_TOKENS,
                                             logits_processors=processors)]


def never_draft(config, refs, k):
    """A draft model whose top-k tokens are k tokens no reference contains (every node rejected)."""
    draft = make_tiny_model(config, seed=5, sharpness=4)
    seen = {t for r in refs for t in r}
    never = [t for t in range(VOCAB) if t not in seen][:k]
    assert len(never) == k
    head = nn.Linear(config["hidden_size"], VOCAB, bias=True)
    head.weight = mx.zeros_like(head.weight)
    head.bias = mx.zeros((VOCAB,)).at[mx.array(never)].add(5.0)
    draft.lm_head = head
    return draft


@pytest.fixture(scope="module", params=["qwen3", "llama"])
def world(request):
    config = tiny_config(request.param, vocab_size=VOCAB, num_hidden_layers=2)
    target = make_tiny_model(config, seed=1, sharpness=4)
    refs = {tuple(p): plain(target, p) for p in PROMPTS}
    drafts = {"self": target, "random": make_tiny_model(config, seed=2, sharpness=4),
              "rejected": never_draft(config, refs.values(), 3)}
    return config, target, refs, drafts


def run(target, draft, prompt, n=6, options=None, processors=None, verdicts=None, stats=None):
    t, proposer, spec, sampling, strategy, _ = prepare(
        target, draft, draft_strategy="tree", num_draft_tokens=n, strategy_options=options or {},
        logits_processors=processors,
    )
    assert strategy.name == "tree" and spec.name == "tree" and isinstance(proposer, DraftTreeProposer)
    accept = spec.accept
    if verdicts is not None:
        def accept(draft, scores, _a=spec.accept):
            verdicts.append((draft, _a(draft, scores)))
            return verdicts[-1][1]
    return [tok for tok, _, _ in speculative_generate_step(
        mx.array(prompt), t, proposer, accept, num_draft_tokens=n, max_tokens=MAX_TOKENS,
        sampling=sampling, stats=stats)]


@pytest.mark.parametrize("which", ["self", "random", "rejected"])
def test_greedy_draft_model_tree_is_plain_decoding(world, which):
    _, target, refs, drafts = world
    options = {"max_children": 3} if which == "rejected" else {}
    verdicts, stats = [], SpecStats()
    for prompt in PROMPTS:
        assert run(target, drafts[which], prompt, options=options, verdicts=verdicts, stats=stats) == refs[tuple(prompt)]
    assert any(not tree.is_chain(d.parents) for d, _ in verdicts)  # real trees were verified
    if which == "self":  # the draft is the target: its greedy path is in every tree
        assert stats.accepted > 0 and all(v.accepted >= 1 for _, v in verdicts)
        # kept rows that are not a prefix of the verify rows: the target cache was compacted
        assert any(v.path and list(v.rows) != list(range(len(v.rows))) for _, v in verdicts)
    if which == "rejected":
        assert stats.accepted == 0


def test_greedy_with_a_repetition_penalty(world):
    """Each node's processors see its own path, on the draft side and the target side."""
    _, target, _, drafts = world
    procs = make_logits_processors(repetition_penalty=1.3)
    for prompt in PROMPTS[:1]:
        assert run(target, drafts["random"], prompt, processors=procs) == plain(target, prompt, procs)


def _chain_children(draft_model, history, k):
    """children_of for best_first from chain forwards of the draft model over each path."""
    def children_of(node, path):
        logits = draft_model(mx.array([history + path]))[0, -1:]
        return top_children(normalise(logits)[0].astype(mx.float32), k)
    return children_of


@pytest.mark.parametrize("budget, k", [(6, 2), (10, 3), (5, 5)])
def test_the_tree_is_best_first_under_q_and_costs_one_forward_per_depth(world, budget, k):
    _, target, _, drafts = world
    draft_model = drafts["random"]
    history = PROMPTS[0]
    proposer = DraftTreeProposer(TargetAdapter(target), draft_model, StrategyOptions(), max_children=k)
    proposer.extend(history[:-1], None)
    d = proposer.propose(DraftContext(list(history), Sampling.create()), budget)
    ref_tokens, ref_parents = best_first(_chain_children(draft_model, list(history), k), budget, budget)

    def paths(tokens, parents):
        return {tuple(tokens[i] for i in tree.path_to(parents, n)) for n in range(len(parents))}

    assert paths(d.tokens.tolist(), d.parents) == paths(ref_tokens, ref_parents)
    assert d.deterministic and d.q is None
    # the root's forward + one per depth expanded: never more than the chain's N
    assert proposer.forwards <= min(budget, max(tree.depths(d.parents)) + 1)


def test_bad_input_is_one_line_before_generation(world, tmp_path):
    config, target, _, _ = world
    from test_caches import GDN

    gemma = make_tiny_model(tiny_config("gemma3_text", vocab_size=VOCAB), seed=1)
    hybrid = make_tiny_model(tiny_config("qwen3_5", vocab_size=VOCAB, num_hidden_layers=4, **GDN), seed=1)
    cases = [
        (dict(draft_model=hybrid), "needs a draft cache that can be trimmed"),  # recurrent state
        (dict(draft_model=gemma), "tree verification is not implemented for model_type 'gemma3_text'"),
        (dict(draft_model=target, strategy_options={"max_depth": 0}), "max_depth"),
        (dict(draft_model=target, acceptor="rejection"), "verifies chains only"),
    ]
    for kw, needle in cases:
        with pytest.raises(ValueError) as err:
            prepare(target, kw.pop("draft_model"), draft_strategy="tree", num_draft_tokens=4, **kw)
        assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


# -- exactness at T = 1

EXACT_VOCAB = 8
EXACT_PROMPT = [1, 2, 3]
SAMPLES = 400


@pytest.fixture(scope="module")
def exact_world():
    config = tiny_config("qwen3", vocab_size=EXACT_VOCAB, hidden_size=16, num_hidden_layers=2)
    target = make_tiny_model(config, seed=1, sharpness=0.3)  # spread over the 8 tokens
    draft = make_tiny_model(config, seed=1, sharpness=0.15)  # the target's weights, flatter: q != p
    return target, draft, exact_joint(target, EXACT_PROMPT, 3, EXACT_VOCAB, dict(temp=1.0), {})


def first_two(joint):
    """The joint of the first two tokens (the first round's tree decides them): 64 cells, so a
    chi-square test over them pools little at this N."""
    out = {}
    for cell, p in joint.items():
        out[cell[:2]] = out.get(cell[:2], 0.0) + p
    return out


def sample(target, draft, accept=None, n=SAMPLES, mode="topk"):
    mx.random.seed(1234)
    np.random.seed(1234)
    t, samples, stats = None, [], SpecStats()
    for _ in range(n):
        t, proposer, spec, sampling, _, _ = prepare(target, draft, draft_strategy="tree", num_draft_tokens=4,
                                                    sampler=make_sampler(temp=1.0), target=t,
                                                    strategy_options={"max_children": 2, "mode": mode})
        gen = speculative_generate_step(mx.array(EXACT_PROMPT), t, proposer, accept or spec.accept,
                                        num_draft_tokens=4, max_tokens=3, sampling=sampling, stats=stats)
        samples.append(tuple(tok for tok, _, _ in gen))
    return samples, stats


@pytest.mark.parametrize("mode", ["topk", "sampled"])
def test_draft_model_tree_is_exact_at_t1(exact_world, mode):
    """Both trees at T=1: the top-k one (point masses) and the sampled one (siblings drawn without
    replacement from q; tests/test_sampled_tree.py has its planted faults)."""
    target, draft, joint = exact_world
    samples, stats = sample(target, draft, mode=mode)
    p = chi_square_pvalue(samples, joint)
    p2 = chi_square_pvalue([s[:2] for s in samples], first_two(joint))
    print(f"draft-model {mode} tree x tree: N={SAMPLES} p={p:.3g} (first two: {p2:.3g}) "
          f"accepted {stats.accepted}/{stats.proposed}")
    assert p > 1e-3 and p2 > 1e-3
    assert 0 < stats.accepted < stats.proposed


def test_the_test_catches_a_wrong_tree_rule(exact_world):
    target, draft, joint = exact_world
    samples, _ = sample(target, draft, accept=residual_is_p_any_vocab, mode="topk")
    p = chi_square_pvalue([s[:2] for s in samples], first_two(joint))
    print(f"planted residual-is-p rule: N={SAMPLES} p={p:.3g} (first two tokens)")
    assert p < 1e-6


def residual_is_p_any_vocab(draft, scores):
    """tests/test_tree_exactness.py's planted rule (after every sibling is rejected, draw from p, not
    from p without them), for this vocabulary."""
    import test_tree_exactness as te

    saved, te.VOCAB = te.VOCAB, EXACT_VOCAB
    try:
        return residual_is_p(draft, scores)
    finally:
        te.VOCAB = saved


# -- acceptance by position (depth) for trees, comparable with chains


def test_acceptance_by_position_reads_depth_for_trees():
    from mlx_specdec_plugin.stats import RoundStats

    chain = SpecStats(rounds=[RoundStats(3, 1, 0, 0, 2), RoundStats(3, 3, 0, 0, 4), RoundStats(2, 0, 0, 0, 1)])
    # chains as before: position 1 offered 3 times, kept twice; position 2 offered twice, kept once
    assert chain.acceptance_by_position() == [2 / 3, 1 / 2, 1.0]
    # trees: 6 nodes, depth 3; kept 1 then stopped at a leaf (position 2 not offered), kept 2 of 3
    # depths with a child below, kept 0
    trees = SpecStats(rounds=[RoundStats(6, 1, 0, 0, 2, depth=3, reach=1), RoundStats(6, 2, 0, 0, 3, depth=3, reach=3),
                              RoundStats(6, 0, 0, 0, 1, depth=3, reach=1)])
    assert trees.acceptance_by_position() == [2 / 3, 1.0, 0.0]


def test_the_loop_records_tree_depth_and_reach(world):
    _, target, _, drafts = world
    stats = SpecStats()
    run(target, drafts["self"], PROMPTS[0], stats=stats)
    spec = [r for r in stats.rounds if r.proposed]
    assert all(r.depth is not None and r.depth <= r.proposed and r.accepted <= r.reach <= r.accepted + 1 for r in spec)
    # the draft is the target: its argmax is the first child of every node, so every offered depth is kept
    assert stats.acceptance_by_position()[0] == 1.0
    assert len(stats.acceptance_by_position()) == max(r.depth for r in spec)
