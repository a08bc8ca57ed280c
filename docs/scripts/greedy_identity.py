"""Greedy speculative decoding against plain mlx-lm decoding on real weights, token by token.

With an optimised BLAS (as with Metal or CUDA) a 1-row and a w-row product run different kernels,
so a verify forward of w tokens can round a logit differently from the 1-token step plain decoding
takes. Where the target's top two logits are nearly tied, the argmax can then differ and the texts
diverge from there. This script decodes each prompt both ways, finds the first divergence, and
reports the target's top-2 logit gap there (from a plain 1-token forward at that position): a
divergence at a gap far above float rounding would be a bug.

  python docs/scripts/greedy_identity.py --model M --draft-model D --strategy dspark --tokens 2000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import mlx_specdec_plugin  # noqa: F401  (fast BLAS before mlx.core)
import mlx.core as mx
from mlx_lm import load
from mlx_lm.generate import generate_step

from mlx_specdec_plugin import SpecStats, blas, stream_generate
from mlx_specdec_plugin.bench.runner import PROMPT_SETS, encode, load_prompts
from mlx_specdec_plugin.commands.generate import local_path


def top2_gap(model, ids):
    """Top-1 minus top-2 logit of the target's next-token distribution after ``ids`` (plain forward)."""
    logits = model(mx.array([ids]))[0, -1].astype(mx.float32)
    top = mx.topk(logits, 2)
    return float(abs(top[0] - top[1]).item())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--draft-model", default=None)
    p.add_argument("--strategy", default="auto")
    p.add_argument("--num-draft-tokens", type=int, default=3)
    p.add_argument("--tokens", type=int, default=2000, help="tokens to compare in all (default 2000)")
    p.add_argument("--per-prompt", type=int, default=200)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    model, tok = load(a.model)
    draft = local_path(a.draft_model) if a.draft_model else None
    if draft and a.strategy == "draft-model":
        draft, _ = load(draft)
    prompts = [text for _, text in load_prompts(PROMPT_SETS, 8)]
    compared, divergences, rows, t0 = 0, [], [], time.time()
    i = 0
    while compared < a.tokens:
        text = prompts[i % len(prompts)] + ("" if i < len(prompts) else f" (variant {i // len(prompts)})")
        i += 1
        ids = encode(tok, text, chat=True)
        n = min(a.per_prompt, a.tokens - compared)
        plain = [t for t, _ in generate_step(mx.array(ids), model, max_tokens=n)]
        stats = SpecStats()
        ours = [r.token for r in stream_generate(model, tok, ids, max_tokens=n, draft_model=draft,
                                                 draft_strategy=a.strategy, num_draft_tokens=a.num_draft_tokens,
                                                 stats=stats)]
        eos = set(tok.eos_token_ids)
        stop = next((j for j, t in enumerate(plain) if t in eos), len(plain))
        plain, ours = plain[: stop + 1], ours[: stop + 1]
        first = next((j for j, (x, y) in enumerate(zip(plain, ours)) if x != y), None)
        same = first is None
        if not same:
            gap = top2_gap(model, ids + plain[:first])
            divergences.append({"prompt": text[:60], "position": first, "plain": plain[first], "ours": ours[first],
                                "top2_logit_gap": gap})
            print(f"divergence at token {first} of {text[:40]!r}: plain {plain[first]} ours {ours[first]}, "
                  f"top-2 logit gap {gap:.3g}", file=sys.stderr)
        counted = len(plain) if same else first
        compared += max(counted, 1)
        rows.append({"prompt": text[:60], "tokens": len(plain), "identical_prefix": counted, "tau": stats.mean_accepted_length})
        print(f"[{compared}/{a.tokens}] {len(plain)} tokens, identical prefix {counted}, tau {stats.mean_accepted_length:.2f}",
              file=sys.stderr)
        out = report(a, compared, divergences, rows, t0, done=compared >= a.tokens)
    print(json.dumps({k: v for k, v in out.items() if k != "prompts"}, indent=1))
    return 0


def report(a, compared, divergences, rows, t0, done):
    """The result so far, written to ``--json`` after every prompt (``complete`` says whether the
    run reached ``--tokens``), so a long run stopped early still leaves its numbers."""
    out = {"model": a.model, "draft": a.draft_model, "strategy": a.strategy, "k": a.num_draft_tokens,
           "blas": blas.status().kind, "compared_tokens": compared, "target_tokens": a.tokens, "complete": done,
           "divergences": divergences, "prompts": rows, "seconds": time.time() - t0}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    sys.exit(main())
