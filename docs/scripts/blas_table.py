"""One table of what each CPU BLAS gives MLX on this machine: GFLOP/s on decode shapes, and for a
real model the plain decoding speed and the verify cost curve T(w)/T(1). Each BLAS runs in its own
interpreter (the choice is made once per process, before mlx.core is imported).

  python docs/scripts/blas_table.py --model "$(mlx-specdec fetch smollm2)" --json docs/bench/blas_smollm2.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, time
import mlx_specdec_plugin
from mlx_specdec_plugin import blas
from mlx_specdec_plugin.commands.doctor import SHAPES, matmul_gflops
import mlx.core as mx
from mlx_lm import load, stream_generate
from mlx_lm.models.cache import make_prompt_cache
model_path, tokens = sys.argv[1], int(sys.argv[2])
st = blas.status()
out = {"kind": st.kind, "path": st.path, "gflops": {f"{m}x{k}x{n}": matmul_gflops(m, k, n) for m, k, n in SHAPES}}
if model_path:
    model, tok = load(model_path)
    tok.eos_token_ids = set()  # a fixed number of tokens, whatever the model says
    prompt = tok.encode("Write a short story about a lighthouse keeper.")
    for r in stream_generate(model, tok, prompt, max_tokens=4):
        pass
    rates = []
    for _ in range(2):
        for r in stream_generate(model, tok, prompt, max_tokens=tokens):
            pass
        rates.append(r.generation_tps)
    out["plain_tok_s"] = statistics.median(rates)
    ctx = mx.array([prompt * 4])
    curve = {}
    for w in (1, 2, 4, 8, 16):
        ts = []
        for _ in range(4):
            cache = make_prompt_cache(model)
            mx.eval(model(ctx, cache=cache))
            x = mx.array([list(range(100, 100 + w))])
            t = time.perf_counter(); mx.eval(model(x, cache=cache)); ts.append(time.perf_counter() - t)
        curve[w] = statistics.median(ts[1:])
    out["verify_ms"] = {str(w): v * 1e3 for w, v in curve.items()}
print(json.dumps(out))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="")
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--blas", nargs="+", default=["bundled", "openblas", "blis", "mkl"])
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    rows = []
    for choice in a.blas:
        env = {**os.environ, "MLX_SPECDEC_BLAS": choice}
        r = subprocess.run([sys.executable, "-c", CHILD, a.model, str(a.tokens)], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{choice}: failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
            continue
        row = json.loads(r.stdout.strip().splitlines()[-1])
        row["choice"] = choice
        if row["kind"] != choice:
            print(f"{choice}: not available here ({row['kind']} instead)")
            continue
        rows.append(row)
        g = " ".join(f"{s}:{v:.1f}" for s, v in row["gflops"].items())
        line = f"{choice:<9} GFLOP/s {g}"
        if "plain_tok_s" in row:
            v = row["verify_ms"]
            line += (f" | plain {row['plain_tok_s']:.1f} tok/s | T(1) {v['1']:.0f} ms, T(w)/T(1) "
                     + " ".join(f"{w}:{t / v['1']:.2f}" for w, t in v.items()))
        print(line, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
