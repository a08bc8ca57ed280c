"""Tokens per round of a classic draft model's top-k TREE (``--draft-strategy tree``, acceptor ``tree``)
against its CHAIN (``--draft-strategy draft-model``, acceptor ``rejection`` at T > 0, ``greedy`` at
T = 0) at the same verify width W (the pending token + W - 1 drafts), with real weights.

Target: an mlx-lm folder (``--target``). Draft: another folder with the same tokenizer
(``--draft``), or the target's own first ``--draft-layers`` decoder layers with its final norm and
head (an early-exit drafter sharing the target's weights, no extra memory). Prompts: the package's
``prompts/code.jsonl`` through the chat template. Per run: tokens per round (measured: emitted /
rounds; computed: the expectation given each round's draft and target rows, as
``tree_vs_chain.py``), acceptance by position (depth, for the tree), draft-model forwards per round,
and the seconds per generated token of the two side by side (noisy on a shared machine).

  PYTHONPATH=$PWD python docs/scripts/draft_tree_vs_chain.py --target DIR --draft-layers 12 \\
      --json docs/bench/draft_tree_vs_chain.json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tree_vs_chain import expected_tokens  # noqa: E402

from mlx_specdec_plugin import SpecStats  # noqa: E402
from mlx_specdec_plugin.generate import prepare  # noqa: E402
from mlx_specdec_plugin.loop import speculative_generate_step  # noqa: E402
from mlx_specdec_plugin.sampling import make_sampler  # noqa: E402

PROMPTS = Path(__file__).resolve().parents[2] / "mlx_specdec_plugin" / "prompts" / "code.jsonl"


def early_exit(model, n_layers: int):
    """The target's first ``n_layers`` decoder layers, then its own final norm and head (shared arrays)."""
    draft = copy.copy(model)
    draft.model = copy.copy(model.model)
    draft.model.layers = model.model.layers[:n_layers]
    return draft


def run(target_model, draft_model, tok, prompts, strategy, width, temp, max_tokens, max_children):
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
        "rounds": len(rounds),
        "measured": sum(r.accepted + 1 for r in rounds) / max(len(rounds), 1),
        "computed": sum(computed) / max(len(computed), 1),
        "acceptance_by_position": [round(a, 3) for a in stats.acceptance_by_position()],
        "draft_forwards_per_round": sum(forwards) / max(len(forwards), 1),
        "s_per_token": seconds / max(emitted, 1),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--draft", help="a draft model folder (default: the target's early exit)")
    ap.add_argument("--draft-layers", type=int, default=12)
    ap.add_argument("--widths", default="4,8")
    ap.add_argument("--temps", default="0.0,1.0")
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-children", type=int, default=None)
    ap.add_argument("--json")
    args = ap.parse_args()
    model, tok = mlx_lm.load(args.target)
    if args.draft:
        draft, _ = mlx_lm.load(args.draft)
        draft_name = args.draft
    else:
        draft = early_exit(model, args.draft_layers)
        draft_name = f"{args.target} (first {args.draft_layers} of {len(model.layers)} layers)"
    lines = [json.loads(l)["prompt"] for l in PROMPTS.read_text().splitlines() if l.strip()][: args.prompts]
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True) for p in lines]
    rows = []
    for temp in [float(t) for t in args.temps.split(",")]:
        for width in [int(w) for w in args.widths.split(",")]:
            tree_r = run(model, draft, tok, prompts, "tree", width, temp, args.max_tokens, args.max_children)
            chain_r = run(model, draft, tok, prompts, "draft-model", width, temp, args.max_tokens, None)
            rows.append({"temp": temp, "width": width, "tree": tree_r, "chain": chain_r})
            print(f"T={temp:.1f} W={width:2d}  tree {tree_r['measured']:.3f} measured / {tree_r['computed']:.3f} "
                  f"computed, {tree_r['draft_forwards_per_round']:.2f} draft fwd/round, by depth "
                  f"{tree_r['acceptance_by_position']}, {tree_r['s_per_token']:.3f} s/tok  |  chain "
                  f"{chain_r['measured']:.3f} / {chain_r['computed']:.3f}, {chain_r['draft_forwards_per_round']:.2f} "
                  f"fwd/round, by position {chain_r['acceptance_by_position']}, {chain_r['s_per_token']:.3f} s/tok "
                  f"({chain_r['acceptor']})", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"target": args.target, "draft": draft_name,
                                               "max_tokens": args.max_tokens, "prompts": args.prompts,
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
