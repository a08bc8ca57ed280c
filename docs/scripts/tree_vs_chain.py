"""Tokens per round of the tree acceptor against chain rejection at the same verify width, on the
tiny fixtures (a random float32 llama target and DSpark drafters in the published layout).

For each verify width W (target positions per round: the pending token + W - 1 drafts), the same
prompts are generated with ``--draft-strategy tree`` (a best-first DDTree of W - 1 nodes, acceptor
``tree``) and with ``dspark`` (a chain of W - 1 drafts, acceptor ``rejection``). Two numbers per
run: *computed*, the expected tokens of each round given what was drafted (tree: 1 + sum over
nodes of the product of the target's p along the node's path; chain: 1 + sum_i prod_{j<=i}
min(1, p_j(x_j) / q_j(x_j))), averaged over rounds; *measured*, emitted tokens / rounds.

  PYTHONPATH=$PWD python docs/scripts/tree_vs_chain.py --json docs/bench/tree_vs_chain.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np

import mlx_lm
from mlx_specdec_plugin.testing.drafters import write_dspark
from mlx_lm.generate import generate_step

from mlx_specdec_plugin import SpecStats, load_drafter
from mlx_specdec_plugin import tree
from mlx_specdec_plugin.acceptors import draft_q_rows
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.sampling import make_sampler
from mlx_specdec_plugin.testing.tiny import save_tiny_model

PROMPTS = [
    "def fib(n): return fib(n-1) + fib(n-2) if n > 1 else n\ndef fib",
    "the cat sat on the mat. the cat sat on the",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
    "once upon a time there was a",
]


def expected_tokens(draft, scores) -> float:
    """1 + the expected number of kept drafts, given this round's draft and target rows."""
    p = np.array(scores.probs(), dtype=np.float64)
    tokens = draft.tokens.tolist()
    if draft.parents is not None and draft.deterministic:  # point masses: prod of p along the path
        mass = []
        for i, par in enumerate(draft.parents):
            mass.append((1.0 if par < 0 else mass[par]) * p[par + 1, tokens[i]])
        return 1.0 + float(sum(mass))
    if draft.parents is not None:  # siblings drawn without replacement: the acceptor's walk, in probabilities
        return 1.0 + float(sum(reach_without_replacement(draft.parents, tokens, p, np.array(draft.q, np.float64))))
    q = np.array(draft_q_rows(draft, p.shape[-1]), dtype=np.float64)
    run, total = 1.0, 1.0
    for i, t in enumerate(tokens):
        run *= min(1.0, p[i, t] / q[i, t]) if q[i, t] > 0 else 0.0
        total += run
    return total


def reach_without_replacement(parents, tokens, p, q):
    """Each node's chance to be kept by the ``tree`` acceptor given the drawn tree (siblings drawn
    without replacement, ``q[i]`` node i's group row) and the target rows ``p`` (round numbering)."""
    kids = tree.children(parents)
    reach = [0.0] * len(parents)
    for node in [-1] + list(range(len(parents))):
        group = kids.get(node, [])
        if not group:
            continue
        here = 1.0 if node < 0 else reach[node]
        r, qq, left = p[node + 1].copy(), q[group[0]].copy(), 1.0
        for c in group:
            t = tokens[c]
            a = min(1.0, r[t] / qq[t]) if qq[t] > 0 else 0.0
            reach[c] = here * left * a
            left *= 1.0 - a
            res = np.maximum(r - qq, 0.0)
            r = res / res.sum() if res.sum() > 1e-12 else r
            qq[t] = 0.0
            qq = qq / qq.sum() if qq.sum() > 1e-12 else qq
    return reach


def run(model, tok, drafter_path, strategy, width, temp, seeds, max_tokens):
    computed, stats = [], SpecStats()

    def recording(accept):
        def wrapped(draft, scores):
            if len(draft):
                computed.append(expected_tokens(draft, scores))
            return accept(draft, scores)

        return wrapped

    for seed in range(seeds):
        for prompt in PROMPTS:
            mx.random.seed(seed)
            target, proposer, spec, sampling, _, _ = prepare(
                model, load_drafter(drafter_path, model), draft_strategy=strategy,
                sampler=make_sampler(temp=temp), num_draft_tokens=width - 1,
            )
            gen = speculative_generate_step(
                mx.array(tok.encode(prompt)), target, proposer, recording(spec.accept),
                num_draft_tokens=width - 1, max_tokens=max_tokens, sampling=sampling, stats=stats,
            )
            for _ in gen:
                pass
    rounds = [r for r in stats.rounds if r.proposed > 0]
    measured = sum(r.accepted + 1 for r in rounds) / max(len(rounds), 1)
    return {"computed": float(np.mean(computed)), "measured": measured, "rounds": len(rounds), "acceptor": spec.name}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", default="4,8,16")
    ap.add_argument("--temps", default="1.0,0.0")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp())
    save_tiny_model(root / "t", "llama", seed=1, sharpness=6, num_hidden_layers=4)
    model, tok = mlx_lm.load(str(root / "t"))
    V, H = model.args.vocab_size, model.args.hidden_size
    # a 'good' DSpark: its Markov head holds the bigrams of the target's own greedy continuations
    w2 = np.zeros((V, V), np.float32)
    for prompt in PROMPTS:
        seq = [t for t, _ in generate_step(mx.array(tok.encode(prompt)), model, max_tokens=64)]
        for a, b in zip(seq, seq[1:]):
            w2[b, a] += 3.0
    good = {"norm.weight": mx.zeros((H,)), "markov_head.markov_w1.weight": mx.eye(V),
            "markov_head.markov_w2.weight": mx.array(w2)}
    drafters = {
        "dspark-bigram": write_dspark(root / "good", root / "t", target_layer_ids=(0, 2), markov_rank=V,
                                      confidence=False, block_size=15, weight_overrides=good),
        "dspark-random": write_dspark(root / "rand", root / "t", target_layer_ids=(0, 2), block_size=15,
                                      confidence=False, seed=11),
    }
    rows = []
    for name, path in drafters.items():
        for temp in [float(t) for t in args.temps.split(",")]:
            for width in [int(w) for w in args.widths.split(",")]:
                tree_r = run(model, tok, path, "tree", width, temp, args.seeds, args.max_tokens)
                chain_r = run(model, tok, path, "dspark", width, temp, args.seeds, args.max_tokens)
                row = {"drafter": name, "temp": temp, "width": width, "tree": tree_r, "chain": chain_r}
                rows.append(row)
                print(f"{name:14s} T={temp:.1f} W={width:2d}  tree {tree_r['computed']:.3f} computed, "
                      f"{tree_r['measured']:.3f} measured ({tree_r['rounds']} rounds)   chain "
                      f"{chain_r['computed']:.3f} computed, {chain_r['measured']:.3f} measured "
                      f"({chain_r['rounds']} rounds, {chain_r['acceptor']})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
