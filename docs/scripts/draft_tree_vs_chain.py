"""Tokens per round of a classic draft model's TREES (``--draft-strategy tree``, acceptor ``tree``:
the top-k tree, ``mode=topk``, and at T > 0 the sampled tree, ``mode=sampled``) against its CHAIN
(``--draft-strategy draft-model``, acceptor ``rejection`` at T > 0, ``greedy`` at T = 0) at the same
verify width W (the pending token + W - 1 drafts), with real weights or (``--tiny``) the tiny
float32 fixtures of ``mlx_specdec_plugin.testing.tiny``.

``--expectation``: before generating, the expected tokens per round of the three at each width on
fixed (p, q) rows (the target's and the drafter's rows at contexts along the target's own
continuations, the same pair assumed at every node): the chain ``sum_{i<=N} alpha^i`` with
``alpha = sum min(p, q)``; the top-k tree ``1 + sum over its nodes of prod p`` (best-first under q);
the sampled tree ``1 + sum over its nodes of prod s_rank``, where ``s_j`` (the chance that the
rank-j sibling drawn without replacement from q is the one kept) comes from a Monte Carlo of
``--mc`` ordered draws, each averaged exactly over the acceptor's coins, and the shape is the
best-first one under those ``s`` (what ``mode=sampled`` converges to as it learns the rates).
"pooled" is the same with every node's rows an independent draw from the pairs (so the chain is
``sum alpha_bar^i``, the sampled tree uses the mean ``s_j``, and the top-k tree, generously, the
best shape under the mean ``p`` of q's rank-j token): the same pair at every node overstates long
paths (``E[alpha^i] >= E[alpha]^i``), the pooled figure is closer to what generation measures.

Target: an mlx-lm folder (``--target``). Draft: another folder with the same tokenizer
(``--draft``), or the target's own first ``--draft-layers`` decoder layers with its final norm and
head (an early-exit drafter sharing the target's weights, no extra memory). Prompts: the package's
``prompts/code.jsonl`` through the chat template. Per run: tokens per round (measured: emitted /
rounds; computed: the expectation given each round's draft and target rows, as
``tree_vs_chain.py``), acceptance by position (depth, for the tree), draft-model forwards per round,
and the seconds per generated token of the two side by side (noisy on a shared machine).

  PYTHONPATH=$PWD python docs/scripts/draft_tree_vs_chain.py --target DIR --draft-layers 12 \\
      --json docs/bench/draft_tree_vs_chain.json
  PYTHONPATH=$PWD python docs/scripts/draft_tree_vs_chain.py --tiny --temps 1.0 --expectation \\
      --json docs/bench/draft_tree_vs_chain_tiny.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import mlx_specdec_plugin  # noqa: F401  (the fast BLAS before mlx-lm)
import mlx.core as mx
import mlx_lm
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tree_vs_chain import expected_tokens  # noqa: E402

from mlx_specdec_plugin import SpecStats  # noqa: E402
from mlx_specdec_plugin.generate import prepare  # noqa: E402
from mlx_specdec_plugin.loop import speculative_generate_step  # noqa: E402
from mlx_specdec_plugin.sampling import Sampling, make_sampler  # noqa: E402
from mlx_specdec_plugin.strategies.sampled_tree import draw_groups, shape  # noqa: E402
from mlx_specdec_plugin.strategies.tree import best_first, top_children  # noqa: E402
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config  # noqa: E402

PROMPTS = Path(__file__).resolve().parents[2] / "mlx_specdec_plugin" / "prompts" / "code.jsonl"


def early_exit(model, n_layers: int):
    """The target's first ``n_layers`` decoder layers, then its own final norm and head (shared arrays)."""
    draft = copy.copy(model)
    draft.model = copy.copy(model.model)
    draft.model.layers = model.model.layers[:n_layers]
    return draft


def tiny_pair(vocab: int, layers: int, draft_layers: int, sharpness: float):
    """A tiny float32 qwen3 target (random weights, head scaled by ``sharpness``) and its early exit."""
    config = tiny_config("qwen3", vocab_size=vocab, num_hidden_layers=layers)
    model = make_tiny_model(config, seed=1, sharpness=sharpness)
    return model, early_exit(model, draft_layers)


def context_rows(target_model, draft_model, prompts, temp, positions, seed=0):
    """(p, q) rows, float64 ``(V,)`` each, at ``positions`` contexts along the target's own sampled
    continuation of every prompt (the user's sampling chain, no processors)."""
    sampling = Sampling.create(make_sampler(temp=temp))
    mx.random.seed(seed)
    pairs = []
    for prompt in prompts:
        seq = list(prompt)
        for _ in range(positions):
            x = mx.array([seq])
            p = sampling.distribution(target_model(x)[0, -1:].astype(mx.float32))
            q = sampling.distribution(draft_model(x)[0, -1:].astype(mx.float32))
            pairs.append((np.array(p[0], np.float64), np.array(q[0], np.float64)))
            seq.append(int(mx.random.categorical(mx.log(p))[0].item()))
    return pairs


def rank_keep_rates(p, q, k, draws):
    """``s_j``, j < k: the chance that the rank-j sibling of a group of k drawn without replacement
    from q is the one the acceptor keeps (Monte Carlo over ``draws`` ordered draws, each averaged
    exactly over the coins)."""
    row, groups = mx.array(q.astype(np.float32)), []
    for start in range(0, draws, 128):  # (128, V) at a time: a large vocabulary stays small in memory
        n = min(128, draws - start)
        groups += draw_groups(mx.broadcast_to(row, (n, row.shape[0])), [k] * n)
    s = np.zeros(k)
    for group in groups:
        r, qq, left = p.copy(), q.copy(), 1.0
        for j, t in enumerate(group):
            a = min(1.0, r[t] / qq[t]) if qq[t] > 0 else 0.0
            s[j] += left * a
            left *= 1.0 - a
            res = np.maximum(r - qq, 0.0)
            r = res / res.sum() if res.sum() > 1e-12 else r
            qq[t] = 0.0
            qq = qq / qq.sum() if qq.sum() > 1e-12 else qq
    return s / draws


def _tree_value(rates, n):
    """1 + the sum over the best-first tree of n nodes under ``rates`` of the product of the rates
    of the ranks on each node's path."""
    par = shape(rates, n, n)
    seen, reach = {}, []
    for pa in par:
        rank = seen.get(pa, 0)
        seen[pa] = rank + 1
        reach.append((1.0 if pa < 0 else reach[pa]) * rates[rank])
    return 1.0 + float(sum(reach))


def expectation(pairs, widths, draws):
    """Expected tokens per round on each fixed (p, q) pair, averaged over the pairs."""
    out = []
    for width in widths:
        n = width - 1
        chain, topk, sampled, rates = [], [], [], []
        for p, q in pairs:
            alpha = float(np.minimum(p, q).sum())
            chain.append(sum(alpha ** i for i in range(n + 1)))
            lq = mx.array(np.log(np.maximum(q, 1e-300)).astype(np.float32))
            kids = top_children(lq, n)
            tokens, parents = best_first(lambda node, path: kids, n, n)
            mass = []
            for t, par in zip(tokens, parents):
                mass.append((1.0 if par < 0 else mass[par]) * p[t])
            topk.append(1.0 + sum(mass))
            s = rank_keep_rates(p, q, min(n, int((q > 0).sum())), draws)
            rates.append(s)
            sampled.append(_tree_value(list(s), n))
        mean_s = np.mean(np.stack([np.pad(r, (0, n - len(r))) for r in rates]), axis=0)
        # pooled: every node's rows an independent draw from the pairs, so the expectations multiply
        m = np.mean(np.stack([p[np.argsort(-q, kind="stable")[:n]] for p, q in pairs]), axis=0)
        alpha = float(np.mean([np.minimum(p, q).sum() for p, q in pairs]))
        row = {"width": width, "pairs": len(pairs), "chain": float(np.mean(chain)), "tree_topk": float(np.mean(topk)),
               "tree_sampled": float(np.mean(sampled)),
               "pooled": {"chain": sum(alpha ** i for i in range(n + 1)), "tree_topk": _tree_value(list(m), n),
                          "tree_sampled": _tree_value(list(mean_s), n)},
               "rank_keep_rates": [round(float(v), 4) for v in mean_s],
               "topk_rank_p": [round(float(v), 4) for v in m]}
        out.append(row)
        pooled = row["pooled"]
        print(f"expected tokens/round W={width:2d}: same pair at every node: chain {row['chain']:.3f}, top-k tree "
              f"{row['tree_topk']:.3f}, sampled tree {row['tree_sampled']:.3f}; pooled: chain {pooled['chain']:.3f}, "
              f"top-k {pooled['tree_topk']:.3f}, sampled {pooled['tree_sampled']:.3f} (s_j {row['rank_keep_rates'][:4]}, "
              f"{len(pairs)} (p, q) pairs)", flush=True)
    return out


def run(target_model, draft_model, tok, prompts, strategy, width, temp, max_tokens, max_children, mode=None,
        sibling_rate=None):
    computed, stats, forwards = [], SpecStats(), []
    state = {}

    def recording(accept):
        def wrapped(draft, scores):
            if len(draft):
                computed.append(expected_tokens(draft, scores))
                if hasattr(state["proposer"], "forwards"):
                    forwards.append(state["proposer"].forwards)
                else:
                    forwards.append(len(draft))  # a chain of g drafts: g draft-model forwards
            return accept(draft, scores)

        return wrapped

    target, seconds, emitted = None, 0.0, 0
    options = {"max_children": max_children} if strategy == "tree" and max_children else {}
    if strategy == "tree" and mode:
        options["mode"] = mode
    if strategy == "tree" and mode == "sampled" and sibling_rate is not None:
        options["sibling_rate"] = sibling_rate
    for i, prompt in enumerate(prompts):
        mx.random.seed(i)
        target, proposer, spec, sampling, _, _ = prepare(
            target_model, draft_model, draft_strategy=strategy, sampler=make_sampler(temp=temp),
            num_draft_tokens=width - 1, target=target, strategy_options=options,
        )
        state["proposer"] = proposer
        t0 = time.perf_counter()
        out = list(speculative_generate_step(
            mx.array(prompt), target, proposer, recording(spec.accept), num_draft_tokens=width - 1,
            max_tokens=max_tokens, sampling=sampling, stats=stats,
        ))
        seconds += time.perf_counter() - t0
        emitted += len(out)
    rounds = [r for r in stats.rounds if r.proposed > 0]
    return {
        "acceptor": spec.name,
        "mode": mode,
        "rounds": len(rounds),
        "measured": sum(r.accepted + 1 for r in rounds) / max(len(rounds), 1),
        "computed": sum(computed) / max(len(computed), 1),
        "acceptance_by_position": [round(a, 3) for a in stats.acceptance_by_position()],
        "draft_forwards_per_round": sum(forwards) / max(len(forwards), 1),
        "s_per_token": seconds / max(emitted, 1),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", help="an mlx-lm folder (or --tiny)")
    ap.add_argument("--tiny", action="store_true", help="the tiny float32 fixture pair instead of real weights")
    ap.add_argument("--tiny-vocab", type=int, default=64)
    ap.add_argument("--tiny-sharpness", type=float, default=4.0)
    ap.add_argument("--draft", help="a draft model folder (default: the target's early exit)")
    ap.add_argument("--draft-layers", type=int, default=12)
    ap.add_argument("--widths", default="4,8")
    ap.add_argument("--temps", default="0.0,1.0")
    ap.add_argument("--modes", default="topk,sampled", help="tree modes to run at T > 0 (T = 0: top-k only)")
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-children", type=int, default=None)
    ap.add_argument("--sibling-rate", type=float, default=None, help="sampled trees: a fixed h (1: the sampled chain)")
    ap.add_argument("--expectation", action="store_true", help="expected tokens/round on fixed (p, q) rows first")
    ap.add_argument("--positions", type=int, default=8, help="--expectation: contexts per prompt")
    ap.add_argument("--mc", type=int, default=4000, help="--expectation: ordered draws per (p, q) pair")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.tiny:
        layers = 4
        args.draft_layers = min(args.draft_layers, layers - 1)
        model, draft = tiny_pair(args.tiny_vocab, layers, args.draft_layers, args.tiny_sharpness)
        tok = None
        target_name = (f"tiny qwen3 (testing.tiny, seed 1, V={args.tiny_vocab}, {layers} layers, "
                       f"sharpness {args.tiny_sharpness}, float32)")
        draft_name = f"its first {args.draft_layers} of {layers} layers (early exit)"
        rng = np.random.default_rng(0)
        prompts = [[int(t) for t in rng.integers(0, args.tiny_vocab, size=12)] for _ in range(args.prompts)]
    else:
        if not args.target:
            ap.error("give --target DIR or --tiny")
        model, tok = mlx_lm.load(args.target)
        target_name = args.target
        if args.draft:
            draft, _ = mlx_lm.load(args.draft)
            draft_name = args.draft
        else:
            draft = early_exit(model, args.draft_layers)
            draft_name = f"{args.target} (first {args.draft_layers} of {len(model.layers)} layers)"
        lines = [json.loads(l)["prompt"] for l in PROMPTS.read_text().splitlines() if l.strip()][: args.prompts]
        prompts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True) for p in lines]
    widths = [int(w) for w in args.widths.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    result = {"target": target_name, "draft": draft_name, "max_tokens": args.max_tokens, "prompts": args.prompts}
    temps = [float(t) for t in args.temps.split(",")]
    if args.expectation:
        result["expectation"] = {}
        for temp in [t for t in temps if t > 0]:
            pairs = context_rows(model, draft, prompts, temp, args.positions)
            result["expectation"][str(temp)] = expectation(pairs, widths, args.mc)
    rows = []
    for temp in temps:
        for width in widths:
            row = {"temp": temp, "width": width}
            for mode in (modes if temp > 0 else ["topk"]):
                row[f"tree_{mode}"] = run(model, draft, tok, prompts, "tree", width, temp, args.max_tokens,
                                          args.max_children, mode, args.sibling_rate)
            row["chain"] = chain_r = run(model, draft, tok, prompts, "draft-model", width, temp, args.max_tokens, None)
            rows.append(row)
            for key in [k for k in row if k.startswith("tree_")]:
                r = row[key]
                print(f"T={temp:.1f} W={width:2d}  {key:12s} {r['measured']:.3f} measured / {r['computed']:.3f} "
                      f"computed ({r['rounds']} rounds), {r['draft_forwards_per_round']:.2f} draft fwd/round, by depth "
                      f"{r['acceptance_by_position']}, {r['s_per_token']:.3f} s/tok", flush=True)
            print(f"T={temp:.1f} W={width:2d}  chain        {chain_r['measured']:.3f} measured / "
                  f"{chain_r['computed']:.3f} computed ({chain_r['rounds']} rounds), "
                  f"{chain_r['draft_forwards_per_round']:.2f} fwd/round, by position "
                  f"{chain_r['acceptance_by_position']}, {chain_r['s_per_token']:.3f} s/tok ({chain_r['acceptor']})",
                  flush=True)
    result["rows"] = rows
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
