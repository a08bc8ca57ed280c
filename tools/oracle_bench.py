"""Loop efficiency with an oracle drafter of controlled acceptance, on random weights of real shapes.

    python -m tools.oracle_bench --shape qwen3-4b --accept 0.5 0.8 0.95 --k 2 4 8 15

The target's own greedy continuation is computed once (plain decoding, which also gives T_step);
the oracle proposes the next k tokens of it, each replaced by a wrong token with probability
1 - accept (decided from a seeded stream before the round, independent of the target). It costs
nothing to draft, so the cost model's ideal speedup is tau * T_step / T_verify(k + 1), with
T_verify measured in the same process (the calibration's meter, :func:`mlx_specdec_plugin.costs.measure_verify_curve`);
loop efficiency = measured speedup / ideal.
This is what runs on the GPU (random weights need no download); results go to stdout and JSON.

Each configuration runs twice and the second run is timed ("warm"): on mlx-cuda 0.32.4 a
multi-token attention call with a key length not seen before costs ~40 ms of one-off kernel
planning (measured: a 5-query SDPA with a growing key length takes ~40 ms per call, a repeated
shape ~1 ms), which would swamp the loop; plain decoding (1 query) does not pay it. The cold
(first) run's speed is reported too. In bf16, a multi-token verify can break a near-tie
differently from single-token decoding, so the run may leave the reference; ``same`` reports how
many leading tokens equal plain decoding (tau, and so the ideal, are measured either way).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import List, Optional, Sequence

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import make_prompt_cache

from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.acceptors import greedy
from mlx_specdec_plugin.bench.oracle import OracleProposer
from mlx_specdec_plugin.bucketed import bucketed
from mlx_specdec_plugin.costs import measure_verify_curve
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import SHAPES, random_model


def run(shape: str, accepts: Sequence[float], ks: Sequence[int], prompt_len: int, tokens: int,
        bits: Optional[int], dtype: str, cache_kinds: Sequence[str] = ("plain",)) -> dict:
    model, _ = random_model(shape, dtype, bits)
    vocab = model.args.vocab_size
    mx.random.seed(0)
    prompt = mx.random.randint(0, vocab, (prompt_len,)).astype(mx.uint32)
    # plain decoding: reference continuation and T_step
    list(generate_step(prompt, model, max_tokens=8))  # warm-up
    reference = [t for t, _ in generate_step(prompt, model, max_tokens=tokens + 1)]
    t0 = time.perf_counter()
    list(generate_step(prompt, model, max_tokens=tokens + 1))
    t_step = (time.perf_counter() - t0) / (tokens + 1)  # prefill included, as in the loop's runs
    widths = sorted({1, *[k + 1 for k in ks]})
    measured = measure_verify_curve(model, max(widths), prompt_len, repeats=5, widths=widths)
    curve = {w: measured[w - 1] for w in widths}
    target = TargetAdapter(model)
    rows = []
    for kind, accept, k in itertools.product(cache_kinds, accepts, ks):
            elapsed = []
            for _ in range(2):  # cold, then warm (same shapes: the oracle's stream is seeded)
                stats = SpecStats("oracle", "greedy")
                proposer = OracleProposer(reference, prompt_len, accept, vocab)
                cache = make_prompt_cache(model)  # mlx-lm's own, whatever the backend default
                cache = bucketed(cache) if kind == "bucketed" else cache
                t0 = time.perf_counter()
                out = [t for t, _, _ in speculative_generate_step(
                    prompt, target, proposer, greedy.accept, num_draft_tokens=k, max_tokens=tokens, stats=stats,
                    prompt_cache=cache)]
                elapsed.append(time.perf_counter() - t0)
            same = next((i for i, (a, b) in enumerate(zip(out, reference)) if a != b), len(out))
            speedup = t_step * len(out) / elapsed[1]
            tau = stats.mean_accepted_length
            ideal = tau * t_step / curve[k + 1]
            rows.append(dict(cache=kind, accept=accept, k=k, tau=tau, tokens_per_s=len(out) / elapsed[1], speedup=speedup,
                             cold_speedup=t_step * len(out) / elapsed[0], ideal=ideal,
                             efficiency=speedup / ideal, same=same))
    return dict(shape=shape, dtype=dtype, bits=bits, prompt_len=prompt_len, tokens=tokens,
                device=str(mx.default_device()), mlx=mx.__version__, t_step_ms=t_step * 1e3,
                plain_tokens_per_s=1 / t_step, verify_ms={w: t * 1e3 for w, t in curve.items()}, rows=rows)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("--accept", type=float, nargs="+", default=[0.5, 0.8, 0.95])
    ap.add_argument("--k", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--bits", type=int, default=None)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--cache", nargs="+", default=["plain"], choices=["plain", "bucketed"],
                    help="target KV cache: mlx-lm's (plain) and/or BucketedKVCache (whole buffer + mask)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    res = run(args.shape, args.accept, args.k, args.prompt_len, args.tokens, args.bits, args.dtype, args.cache)
    print(f"{res['shape']} {res['dtype']} bits={res['bits']} on {res['device']} (mlx {res['mlx']}), "
          f"context {res['prompt_len']}: plain {res['plain_tokens_per_s']:.1f} tok/s")
    print("verify ms by width: " + " ".join(f"{w}:{t:.1f}" for w, t in res["verify_ms"].items()))
    print(f"{'cache':>8} {'accept':>6} {'k':>3} {'tau':>5} {'tok/s':>7} {'speedup':>7} {'cold':>5} {'ideal':>6} {'eff':>5} {'same':>4}")
    for r in res["rows"]:
        print(f"{r['cache']:>8} {r['accept']:>6.2f} {r['k']:>3} {r['tau']:>5.2f} {r['tokens_per_s']:>7.1f} "
              f"{r['speedup']:>7.2f} {r['cold_speedup']:>5.2f} {r['ideal']:>6.2f} {r['efficiency']:>5.2f} "
              f"{r['same']:>4}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
