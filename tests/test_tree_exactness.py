"""Spec: the ``tree`` acceptor emits tokens distributed exactly as the target samples them, at T=1
with a repetition penalty (each node's processors see its own path), for deterministic trees
(siblings = a function of the context, as ``tree``'s best-first DDTree) and for trees whose
siblings are drawn without replacement from q; a planted wrong tree rule must fail.

One round is verified on a synthetic target (a table of random logits per prefix, vocabulary 4),
then the sequence is completed to 3 tokens by exact draws from the target; the joint of the 3
tokens over 6,000 seeded rounds is compared with the exact joint (tests/exactness.py) by a
chi-square test. No model forwards: the acceptor is the only thing under test here (the tree
forward and compaction are checked against chain forwards in tests/test_tree.py).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.sample_utils import make_logits_processors
from mlx_specdec_plugin.sampling import make_sampler  # mlx-lm's arguments and draws, with a known distribution

from exactness import CONFIGS, chi_square_pvalue, exact_joint, next_token_probs
from mlx_specdec_plugin import tree
from mlx_specdec_plugin.acceptors import TargetScores
from mlx_specdec_plugin.acceptors import tree as tree_acceptor
from mlx_specdec_plugin.contract import Draft, Verdict
from mlx_specdec_plugin.sampling import Sampling

VOCAB = 4
PROMPT = [1, 2]
K = 3
SAMPLES = 6_000
ALPHA = 1e-3  # seeded: the verdict is deterministic
PARENTS = (-1, -1, 0, 0, 1, 2)  # depth 3 on the first branch; the round emits up to 4 tokens
CONFIG = "repetition_penalty1.3"


class TableLM:
    """``model(x)[0, j]`` = logits of the next token after ``x[:j + 1]``: fixed random rows per prefix."""

    def __init__(self, seed: int, scale: float):
        self.seed, self.scale, self.rows = seed, scale, {}

    def row(self, prefix) -> np.ndarray:
        key = tuple(int(t) for t in prefix)
        if key not in self.rows:
            rng = np.random.default_rng([self.seed, len(key)] + list(key))
            self.rows[key] = (rng.standard_normal(VOCAB) * self.scale).astype(np.float32)
        return self.rows[key]

    def __call__(self, x):
        seq = x.tolist()[0]
        return mx.array(np.stack([self.row(seq[: j + 1]) for j in range(len(seq))]))[None]


TARGET = TableLM(seed=1, scale=1.5)
DRAFT = TableLM(seed=2, scale=1.5)  # q: a different table
SAMPLER_KW, PROC_KW = CONFIGS[CONFIG]
_P, _Q = {}, {}


def p_of(prefix) -> np.ndarray:
    """The target's exact next-token distribution (tests/exactness.py, independent of our code)."""
    key = tuple(prefix)
    if key not in _P:
        row = next_token_probs(mx.array(TARGET.row(key)), list(key), SAMPLER_KW, PROC_KW)
        _P[key] = row / row.sum()
    return _P[key]


def q_of(prefix) -> np.ndarray:
    key = tuple(prefix)
    if key not in _Q:
        row = next_token_probs(mx.array(DRAFT.row(key)), list(key), SAMPLER_KW, PROC_KW)
        _Q[key] = row / row.sum()
    return _Q[key]


def _node_prefix(history, tokens, node):
    return history + [tokens[i] for i in tree.path_to(PARENTS, node)]


def draft_tree(history, rng, mode) -> Draft:
    """A tree of shape PARENTS continuing ``history``: each sibling group is q's top tokens
    (deterministic) or drawn from q without replacement, in sibling order (q reported per node)."""
    tokens, q_rows, kids = [], [], tree.children(PARENTS)
    for node in range(-1, len(PARENTS)):
        group = kids.get(node, [])
        if not group:
            continue
        q = q_of(_node_prefix(history, tokens, node))
        if mode == "deterministic":
            picked = list(np.argsort(-q, kind="stable")[: len(group)])
        else:
            picked, left = [], q.copy()
            for _ in group:
                picked.append(int(rng.choice(VOCAB, p=left / left.sum())))
                left[picked[-1]] = 0.0
        for c, t in zip(group, picked):
            assert len(tokens) == c
            tokens.append(int(t))
            q_rows.append(q)
    q = None if mode == "deterministic" else mx.array(np.stack(q_rows).astype(np.float32))
    return Draft(mx.array(tokens, dtype=mx.uint32), q, mode == "deterministic", PARENTS)


def scores_from_table(history, draft) -> TargetScores:
    nodes = draft.tokens.tolist()
    p = np.stack([p_of(history)] + [p_of(_node_prefix(history, nodes, j)) for j in range(len(nodes))])
    return TargetScores(mx.log(mx.array(p.astype(np.float32))), SAMPLING, mx.array(p.astype(np.float32)))


SAMPLING = Sampling.create(make_sampler(**SAMPLER_KW), make_logits_processors(**PROC_KW))


def rounds(accept, mode, n=SAMPLES):
    """``n`` rounds after PROMPT, each completed to K tokens by exact target draws."""
    mx.random.seed(7)
    rng = np.random.default_rng(7)
    history = list(PROMPT)
    fixed = draft_tree(history, rng, "deterministic")
    samples = []
    for _ in range(n):
        draft = fixed if mode == "deterministic" else draft_tree(history, rng, mode)
        scores = scores_from_table(history, draft)
        verdict = accept(draft, scores)
        nodes = draft.tokens.tolist()
        out = [nodes[i] for i in verdict.nodes] + [verdict.next_token]
        while len(out) < K:
            out.append(int(rng.choice(VOCAB, p=p_of(history + out))))
        samples.append(tuple(out[:K]))
    return samples


def test_per_node_rows_see_their_own_path():
    """The verify rows of a tree (from raw logits, logits processors per path) are each node's
    exact distribution."""
    history = list(PROMPT)
    draft = draft_tree(history, None, "deterministic")
    nodes = draft.tokens.tolist()
    logits = mx.array(np.stack([TARGET.row(history)] + [TARGET.row(_node_prefix(history, nodes, j))
                                                         for j in range(len(nodes))]))
    ours = TargetScores.from_logits(logits, history + nodes, SAMPLING, PARENTS).probs()
    assert np.allclose(np.array(ours), np.array(scores_from_table(history, draft).probs()), atol=1e-5)


def joint():
    return exact_joint(TARGET, PROMPT, K, VOCAB, SAMPLER_KW, PROC_KW)


@pytest.mark.parametrize("mode", ["deterministic", "without_replacement"])
def test_tree_acceptor_is_exact(mode):
    samples = rounds(tree_acceptor.accept, mode)
    assert chi_square_pvalue(samples, joint()) > ALPHA


def residual_is_p(draft, scores):
    """Planted wrong rule: siblings tried as the point-mass rule does, but after they are all
    rejected the next token is drawn from p itself, not from p without the rejected siblings."""
    p = np.array(scores.probs(), dtype=np.float64)
    nodes = draft.tokens.tolist()
    kids = tree.children(draft.parents)
    node, path = -1, []
    while True:
        removed, chosen = 0.0, None
        for c in kids.get(node, ()):
            pc = p[node + 1, nodes[c]]
            if np.random.uniform() * (1.0 - removed) < pc:
                chosen = c
                break
            removed += pc
        if chosen is None:
            row = p[node + 1]
            return Verdict(len(path), int(np.random.choice(VOCAB, p=row / row.sum())), tuple(path))
        node = chosen
        path.append(node)


def test_the_test_catches_a_wrong_tree_rule():
    np.random.seed(3)
    samples = rounds(residual_is_p, "deterministic")
    assert chi_square_pvalue(samples, joint()) < 1e-6
