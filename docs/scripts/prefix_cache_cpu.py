"""Time to first token of turn 2 of a resent conversation, in process: a fresh prefill against the
prefix cache (the server's code path: PrefixCache.take, then stream_generate with cached_tokens).
CPU time (process_time) and wall time, side by side in one run, so a loaded machine hurts both alike.

    python docs/scripts/prefix_cache_cpu.py --model ~/.cache/mlx-specdec/models/smollm2-135m-instruct \
        --draft-model mlx_specdec_plugin/assets/smollm2-135m-instruct-dspark-4bit
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mlx_specdec_plugin import load_drafter  # before mlx_lm: the fast BLAS
import mlx.core as mx
import mlx_lm

from mlx_specdec_plugin import stream_generate
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.server.prefix_cache import CachedContext, PrefixCache
from mlx_specdec_plugin.target import TargetAdapter

ROOT = Path(__file__).resolve().parents[2]


def first_token(model, tok, target, drafter, prompt, ctx):
    """(cpu s, wall s, first token, cache, proposer, generated tokens) up to the first token."""
    c0, w0 = time.process_time(), time.perf_counter()
    if ctx is None:
        cache, proposer, n = target.make_cache(), prepare(model, drafter, target=target)[1], 0
    else:
        cache, proposer, n = ctx.cache, ctx.proposer, ctx.reused
    gen = stream_generate(model, tok, mx.array(prompt), max_tokens=16, draft_model=drafter, target=target,
                          proposer=proposer, prompt_cache=cache, cached_tokens=n)
    first = next(gen)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    rest = [first.token] + [r.token for r in gen]
    return cpu, wall, first.token, cache, proposer, rest


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--draft-model", required=True)
    p.add_argument("--prompt-tokens", type=int, default=2000)
    args = p.parse_args()
    model, tok = mlx_lm.load(args.model)
    drafter = load_drafter(args.draft_model, model)
    target = TargetAdapter(model)
    text = (ROOT / "README.md").read_text() * 4
    ids = tok.encode(text)[: args.prompt_tokens]
    doc = tok.decode(ids)
    turn1 = tok.apply_chat_template([{"role": "user", "content": "Summarise:\n\n" + doc}], add_generation_prompt=True)
    first_token(model, tok, target, drafter, turn1[:64], None)  # warm up
    pc = PrefixCache()
    cpu1, wall1, _, cache, proposer, out = first_token(model, tok, target, drafter, turn1, None)
    pc.put(("dspark",), CachedContext(list(turn1) + out, cache, proposer))
    answer = tok.decode(out)
    turn2 = tok.apply_chat_template([{"role": "user", "content": "Summarise:\n\n" + doc},
                                     {"role": "assistant", "content": answer},
                                     {"role": "user", "content": "Shorter, please."}], add_generation_prompt=True)
    fresh = first_token(model, tok, target, drafter, turn2, None)
    ctx = pc.take(("dspark",), turn2)
    cached = first_token(model, tok, target, drafter, turn2, ctx)
    print(json.dumps({"turn1_tokens": len(turn1), "turn2_tokens": len(turn2), "turn2_cached_tokens": ctx.reused,
                      "turn1_ttft_cpu_s": round(cpu1, 3), "turn1_ttft_wall_s": round(wall1, 3),
                      "turn2_fresh_ttft_cpu_s": round(fresh[0], 3), "turn2_fresh_ttft_wall_s": round(fresh[1], 3),
                      "turn2_cached_ttft_cpu_s": round(cached[0], 3), "turn2_cached_ttft_wall_s": round(cached[1], 3),
                      "ratio_cpu": round(cached[0] / fresh[0], 3), "ratio_wall": round(cached[1] / fresh[1], 3),
                      "same_tokens": fresh[5] == cached[5]}))


if __name__ == "__main__":
    main()
