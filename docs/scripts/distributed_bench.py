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

Real weights, drafts that are accepted (``--model``): e.g. SmolLM2-135M with the shipped DSpark drafter,

  PYTHONPATH=$PWD python docs/scripts/distributed_bench.py --model smollm2 --dspark smollm2-dspark \
      --ranks 3 --json docs/bench/distributed_smollm2.json

runs plain decoding, lookup (on a code-editing prompt that repeats its input) and DSpark (chat
template) with ``--num-draft-tokens`` drafts, both as one process and as ``--ranks`` ranks. A round's
communication is estimated from the replay: ``T_comm(g + 1)`` (the verify forward's all-reduces at its
width) plus the round's two small broadcasts (draft, verdict), over the measured time of a round.

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
# code editing: the answer repeats most of its input (lookup's case)
CODE_PROMPT = ("Rename the variable `total` to `subtotal` in this function and return the whole function:\n\n"
               "def order_total(items, tax_rate):\n    total = 0\n    for item in items:\n"
               "        total += item.price * item.quantity\n    if total > 100:\n        total = total * 0.95\n"
               "    total = total * (1 + tax_rate)\n    return round(total, 2)\n")
CHAT_PROMPT = "Give me three tips for staying focused while studying, with one sentence on each."
WIDTHS = list(range(1, 17))


def measure(folder: Path, draft_folder: Path, reps: int, tokens: int, real: bool = False,
            dspark: str = "", k: int = 4) -> dict:
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
    draft = None if real else mlx_lm.load(str(draft_folder))[0]
    H, L = model.args.hidden_size, len(model.layers)
    vocab = model.args.vocab_size

    def barrier():
        if group.size() > 1:
            mx.eval(mx.distributed.all_sum(mx.array(1.0), stream=mx.cpu))

    cache = make_prompt_cache(model)
    mx.eval(model(mx.array([list(range(64))], dtype=mx.uint32), cache=cache))
    verify, comm = {}, {}
    for w in WIDTHS:
        x = mx.array([[(7 * i + 11) % min(vocab, 250) for i in range(w)]], dtype=mx.uint32)
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

    small = []  # one small broadcast (a draft or a verdict), alone
    if group.size() > 1:
        for _ in range(4 * reps):
            barrier()
            t0 = time.perf_counter()
            mx.eval(mx.distributed.all_sum(mx.zeros((2 + 2 * k,), dtype=mx.int32), group=group, stream=mx.cpu))
            small.append(time.perf_counter() - t0)
    if real:
        def chat(text):
            return tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)

        runs = (("plain", CODE_PROMPT, dict(draft_strategy="none")), ("lookup", CODE_PROMPT, dict(draft_strategy="lookup")),
                ("plain-chat", CHAT_PROMPT, dict(draft_strategy="none")))
        if dspark:
            runs += (("dspark", CHAT_PROMPT, dict(draft_model=dspark, draft_strategy="dspark")),)
    else:
        runs = (("plain", PROMPT, dict(draft_strategy="none")), ("lookup", PROMPT, dict(draft_strategy="lookup")),
                ("draft-model", PROMPT, dict(draft_model=draft)))
    gen = {}
    for name, prompt, base in runs:
        ids = chat(prompt) if real else prompt

        def kwargs(stats):
            return base if name.startswith("plain") else dict(base, num_draft_tokens=k, stats=stats)

        list(stream_generate(model, tok, ids, max_tokens=4, **kwargs(SpecStats())))  # warm-up
        stats = SpecStats()
        barrier()
        n, t0 = 0, time.perf_counter()
        for r in stream_generate(model, tok, ids, max_tokens=tokens, **kwargs(stats)):
            n = r.generation_tokens
        dt = time.perf_counter() - t0
        rounds = list(stats.rounds)
        tau = (sum(x.emitted for x in rounds) / len(rounds)) if rounds else None
        entry = {"tokens": n, "seconds": dt, "tokens_per_s": n / dt, "tau": tau}
        if rounds and comm:
            per_round = statistics.mean(comm[min(16, x.proposed + 1)] for x in rounds) + 2 * statistics.median(small)
            entry["rounds"] = len(rounds)
            entry["comm_share_of_round"] = per_round / (dt / len(rounds))
        gen[name] = entry
    out = {"ranks": group.size(), "hidden": H, "layers": L,
           "T_verify": verify, "T_verify_over_T_step": {w: verify[w] / verify[1] for w in WIDTHS},
           "generation": gen}
    if small:
        out["T_small_broadcast"] = statistics.median(small)
    if comm:
        out["T_comm"] = comm
        out["comm_share"] = {w: comm[w] / verify[w] for w in WIDTHS}
    return out


def drive(args) -> None:
    from mlx_specdec_plugin.loading import resolve
    from mlx_specdec_plugin.testing.tiny import save_tiny_model

    root = Path(tempfile.mkdtemp(prefix="dist_bench_"))
    if args.model:
        from mlx_specdec_plugin.commands.fetch import main as fetch

        if args.model == "smollm2":  # the offline fetch (prints the folder)
            fetch(["smollm2"])
            args.model = str(Path.home() / ".cache" / "mlx-specdec" / "models" / "smollm2-135m-instruct")
        target, draft = Path(resolve(args.model, "--model")), Path(args.model)
        dspark = resolve(args.dspark, "--draft-model") if args.dspark else ""
        blas = os.environ.get("MLX_SPECDEC_BLAS", "auto")
    else:
        target = save_tiny_model(root / "t", "llama", seed=1, sharpness=6, hidden_size=args.hidden,
                                 num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4)
        draft = save_tiny_model(root / "d", "llama", seed=2, sharpness=6, hidden_size=64)
        dspark, blas = "", os.environ.get("MLX_SPECDEC_BLAS", "bundled")
    env = {**os.environ, "MLX_SPECDEC_BLAS": blas}
    if args.threads:  # one BLAS thread per rank: N ranks are N processes on the machine's cores
        env.update(MKL_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    me = [sys.executable, __file__, "--worker", str(target), str(draft), str(args.reps), str(args.tokens),
          "1" if args.model else "0", dspark or "-", str(args.k)]
    launch = str(Path(sys.executable).parent / "mlx.launch")
    results = {"command": " ".join(sys.argv), "blas": blas, "threads_per_rank": args.threads}
    n = args.ranks
    for ranks, cmd in ((1, me), (n, [launch, "-n", str(n), "--backend", "ring", "--", *me])):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
        if p.returncode != 0:
            sys.exit(f"{ranks} rank(s) failed:\n{p.stderr[-3000:]}")
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")][0]
        results[ranks] = json.loads(line)
    results["load_average"] = os.getloadavg()
    results["cpu_count"] = os.cpu_count()
    print(f"load average {results['load_average'][0]:.1f} on {results['cpu_count']} cores; BLAS {blas}")
    print(f"{'w':>3} {'T_verify 1r ms':>15} {'ratio 1r':>9} {'T_verify %dr ms' % n:>15} {'ratio %dr' % n:>9} "
          f"{'comm share %dr' % n:>14}")
    one, two = results[1], results[n]
    for w in WIDTHS:
        k = str(w)
        print(f"{w:>3} {1e3 * one['T_verify'][k]:>15.2f} {one['T_verify_over_T_step'][k]:>9.2f} "
              f"{1e3 * two['T_verify'][k]:>15.2f} {two['T_verify_over_T_step'][k]:>9.2f} {two['comm_share'][k]:>14.2f}")
    for ranks in (1, n):
        gen = results[ranks]["generation"]
        for name, g in gen.items():
            base = gen["plain-chat" if name == "dspark" else "plain"]["tokens_per_s"]
            tau = f" tau {g['tau']:.2f}" if g["tau"] else ""
            share = f" comm {g['comm_share_of_round']:.2f} of a round" if "comm_share_of_round" in g else ""
            print(f"{ranks} rank(s) {name:<12} {g['tokens_per_s']:8.1f} tok/s  x{g['tokens_per_s'] / base:.2f}{tau}{share}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        import mlx_specdec_plugin  # noqa: F401  first: the CPU BLAS is chosen before mlx.core binds one
        import mlx.core as mx

        target, draft, reps, tokens, real, dspark, k = sys.argv[2:9]
        result = measure(Path(target), Path(draft), int(reps), int(tokens), real == "1",
                         "" if dspark == "-" else dspark, int(k))
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
    parser.add_argument("--model", default=None, help="a real mlx-lm model folder (or 'smollm2') instead of the tiny one")
    parser.add_argument("--dspark", default=None, help="a DSpark drafter for --model (e.g. smollm2-dspark)")
    parser.add_argument("--ranks", type=int, default=2, help="ranks of the sharded run (they must divide the heads)")
    parser.add_argument("--k", type=int, default=4, help="drafts per round")
    parser.add_argument("--threads", type=int, default=0, help="BLAS threads per process (0: the library's default)")
    drive(parser.parse_args())


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
