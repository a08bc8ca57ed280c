"""Verify cost and speculative speedup on a tensor-parallel target: 1 rank against 2 (loopback ring).

  PYTHONPATH=$PWD python docs/scripts/distributed_bench.py --json docs/bench/distributed_cpu.json

The driver writes a random float32 llama (default hidden 256, 4 layers, byte vocabulary) and a small draft
model, runs itself once as a single process and once under ``mlx.launch -n 2 --backend ring``
(the target sharded with ``sharded_load``), and merges the two. Per run:

- ``T_verify(w)`` for w = 1..16: the median wall time of one target forward of w tokens after a
  64-token context (the cache is trimmed back after each), and ``T_verify(w) / T_step`` with
  ``T_step = T_verify(1)``;
- ``T_comm(w)``: the forward's all-reduces replayed alone (2 per layer, ``(1, w, H)`` float32),
  and their share of ``T_verify(w)`` (2 ranks only);
- tokens/s of greedy generation: plain decoding (mlx-lm) against lookup and draft-model (4 drafts),
  with the acceptance ``tau`` (mean tokens per round).

Wall times on a shared 2-core CPU are noisy: read the ratios measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "the cat sat on the mat. the cat sat on the mat. the dog sat on the log. the cat sat on the"
WIDTHS = list(range(1, 17))


def measure(folder: Path, draft_folder: Path, reps: int, tokens: int) -> dict:
    import mlx.core as mx
    import mlx_lm
    from mlx_lm.models.cache import make_prompt_cache, trim_prompt_cache
    from mlx_lm.utils import sharded_load

    from mlx_specdec_plugin import SpecStats, stream_generate

    group = mx.distributed.init()
    if group.size() > 1:
        model, tok = sharded_load(str(folder), tensor_group=group)
    else:
        model, tok = mlx_lm.load(str(folder))
    draft, _ = mlx_lm.load(str(draft_folder))
    H, L = model.args.hidden_size, len(model.layers)

    def barrier():
        if group.size() > 1:
            mx.eval(mx.distributed.all_sum(mx.array(1.0), stream=mx.cpu))

    cache = make_prompt_cache(model)
    mx.eval(model(mx.array([list(range(64))], dtype=mx.uint32), cache=cache))
    verify, comm = {}, {}
    for w in WIDTHS:
        x = mx.array([[(7 * i) % 250 for i in range(w)]], dtype=mx.uint32)
        times = []
        for _ in range(reps + 1):
            barrier()
            t0 = time.perf_counter()
            mx.eval(model(x, cache=cache))
            times.append(time.perf_counter() - t0)
            trim_prompt_cache(cache, w)
        verify[w] = statistics.median(times[1:])
        if group.size() > 1:
            h = mx.ones((1, w, H))
            times = []
            for _ in range(reps + 1):
                barrier()
                t0 = time.perf_counter()
                for _ in range(2 * L):
                    mx.eval(mx.distributed.all_sum(h, group=group))
                times.append(time.perf_counter() - t0)
            comm[w] = statistics.median(times[1:])

    gen = {}
    for name, kw in (("plain", dict(draft_strategy="none")), ("lookup", dict(draft_strategy="lookup")),
                     ("draft-model", dict(draft_model=draft))):
        stats = SpecStats()
        if name != "plain":
            kw = dict(kw, num_draft_tokens=4, stats=stats)
        barrier()
        n, t0 = 0, time.perf_counter()
        for r in stream_generate(model, tok, PROMPT, max_tokens=tokens, **kw):
            n = r.generation_tokens
        dt = time.perf_counter() - t0
        tau = (sum(x.emitted for x in stats.rounds) / max(1, len(stats.rounds))) if stats.rounds else None
        gen[name] = {"tokens": n, "seconds": dt, "tokens_per_s": n / dt, "tau": tau}
    out = {"ranks": group.size(), "hidden": H, "layers": L,
           "T_verify": verify, "T_verify_over_T_step": {w: verify[w] / verify[1] for w in WIDTHS},
           "generation": gen}
    if comm:
        out["T_comm"] = comm
        out["comm_share"] = {w: comm[w] / verify[w] for w in WIDTHS}
    return out


def drive(args) -> None:
    from mlx_specdec_plugin.testing.tiny import save_tiny_model

    root = Path(tempfile.mkdtemp(prefix="dist_bench_"))
    target = save_tiny_model(root / "t", "llama", seed=1, sharpness=6, hidden_size=args.hidden,
                             num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4)
    draft = save_tiny_model(root / "d", "llama", seed=2, sharpness=6, hidden_size=64)
    env = {**os.environ, "MLX_SPECDEC_BLAS": os.environ.get("MLX_SPECDEC_BLAS", "bundled")}
    me = [sys.executable, __file__, "--worker", str(target), str(draft), str(args.reps), str(args.tokens)]
    launch = str(Path(sys.executable).parent / "mlx.launch")
    results = {}
    for ranks, cmd in ((1, me), (2, [launch, "-n", "2", "--backend", "ring", "--", *me])):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
        if p.returncode != 0:
            sys.exit(f"{ranks} rank(s) failed:\n{p.stderr[-3000:]}")
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")][0]
        results[ranks] = json.loads(line)
    results["load_average"] = os.getloadavg()
    results["cpu_count"] = os.cpu_count()
    print(f"load average {results['load_average'][0]:.1f} on {results['cpu_count']} cores")
    print(f"{'w':>3} {'T_verify 1r ms':>15} {'ratio 1r':>9} {'T_verify 2r ms':>15} {'ratio 2r':>9} {'comm share 2r':>14}")
    one, two = results[1], results[2]
    for w in WIDTHS:
        k = str(w)
        print(f"{w:>3} {1e3 * one['T_verify'][k]:>15.2f} {one['T_verify_over_T_step'][k]:>9.2f} "
              f"{1e3 * two['T_verify'][k]:>15.2f} {two['T_verify_over_T_step'][k]:>9.2f} {two['comm_share'][k]:>14.2f}")
    for ranks in (1, 2):
        gen = results[ranks]["generation"]
        base = gen["plain"]["tokens_per_s"]
        for name, g in gen.items():
            tau = f" tau {g['tau']:.2f}" if g["tau"] else ""
            print(f"{ranks} rank(s) {name:<12} {g['tokens_per_s']:8.1f} tok/s  x{g['tokens_per_s'] / base:.2f}{tau}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        import mlx_specdec_plugin  # noqa: F401  first: the CPU BLAS is chosen before mlx.core binds one
        import mlx.core as mx

        target, draft, reps, tokens = sys.argv[2:6]
        result = measure(Path(target), Path(draft), int(reps), int(tokens))
        if mx.distributed.init().rank() == 0:
            print(json.dumps(result), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    drive(parser.parse_args())


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
