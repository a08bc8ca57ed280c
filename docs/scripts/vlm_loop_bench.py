#!/usr/bin/env python3
"""mlx-vlm's own DFlash loop and ours side by side on a Gemma-4-shaped mlx-vlm target, with the same
drafter file: loop overhead at equal acceptance (issue 12, item 5).

mlx-vlm 0.7.10 runs its speculative loop only on its own language models (``capture_layer_ids``,
``rollback_speculative_cache``), so no mlx-lm target can show it; a random-weight Gemma-4 VLM in
mlx-vlm's format can (``mlx_specdec_plugin.testing.tiny_vlm``, sized by ``--hidden`` / ``--layers``). The
drafter is a z-lab-layout DFlash checkpoint written for that target (:mod:`mlx_specdec_plugin.testing.drafters`),
loaded by each side with its own loader. Greedy, text-only prompt; rows in one process, passes
interleaved, medians reported:

* ``plain``: ``mlx_vlm.generate`` with no drafter;
* ``mlx-vlm dflash``: ``mlx_vlm.generate(draft_model=..., draft_kind="dflash", draft_block_size=W)``;
* ``ours dflash``: ``mlx_specdec_plugin.vlm.generate(draft_model=<the same folder, loaded once>,
  num_draft_tokens=W - 1)``.

``W`` (``--width``, default 4) is the verify width. mlx-vlm's loop adapts its block to the recent
acceptance and never goes below 4 (``dflash_min_block_size``): a drafter that is always rejected
runs at width 4 whatever its block, so only ``W = 4`` compares equal widths with this drafter. The
mean width each side used is measured (mlx-vlm's ``draft_lens``, our ``SpecStats``) and printed;
unequal widths are flagged. Both sides must emit the plain tokens (checked), and at the same width
with the same drafter they accept the same drafts, so the speed ratio between them is loop overhead.
Each row also gives the process CPU time per token (all threads: on a shared machine it moves
far less with the load than the wall clock does) and the main thread's share of it (``host``:
Python building the graphs, ``time.thread_time``).

    python docs/scripts/vlm_loop_bench.py --json docs/bench/vlm/gemma4_dflash.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mlx_specdec_plugin  # noqa: F401  first: the fast CPU BLAS before mlx.core
from mlx_vlm import generate as vlm_generate
from mlx_vlm import load as vlm_load
from mlx_vlm.prompt_utils import apply_chat_template
from mlx_vlm.speculative.drafters import load_drafter as vlm_load_drafter

from mlx_specdec_plugin import SpecStats, blas, load_drafter, vlm
from mlx_specdec_plugin.testing.tiny_vlm import save_tiny_gemma4_vlm
from mlx_specdec_plugin.vlm.generation import VLMTargetAdapter

from mlx_specdec_plugin.testing.drafters import GEMMA_DRAFT, flat_target_dir, write_dflash

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--block-size", type=int, default=8, help="the drafter checkpoint's block (anchor included)")
    p.add_argument("--width", type=int, default=4, help="verify width of both loops (mlx-vlm's draft_block_size; "
                   "ours: num_draft_tokens = width - 1); default 4, the narrowest mlx-vlm's own policy runs")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vlm_loop_bench_"))
    shape = dict(hidden_size=a.hidden, num_hidden_layers=a.layers, intermediate_size=4 * a.hidden,
                 num_attention_heads=8, num_key_value_heads=2, head_dim=a.hidden // 8,
                 global_head_dim=a.hidden // 4)
    try:
        save_tiny_gemma4_vlm(root / "g4", seed=1, sharpness=4.0, **shape)
    except TypeError as e:  # the tiny writer's knobs are named after the config keys
        print(f"cannot build the target with {shape}: {e}", file=sys.stderr)
        return 2
    model, processor = vlm_load(str(root / "g4"))
    taps = tuple(sorted({1, a.layers // 2, a.layers - 2})) if a.layers >= 6 else (0, a.layers - 2)
    drafter_dir = write_dflash(root / "dflash", flat_target_dir(root / "g4", root / "flat", model),
                               target_layer_ids=taps, seed=7, block_size=a.block_size, config_overrides=GEMMA_DRAFT)
    theirs, kind = vlm_load_drafter(str(drafter_dir))
    mine = load_drafter(drafter_dir, VLMTargetAdapter(model).model)  # loaded once, as theirs
    prompt = apply_chat_template(processor, model.config, "Count: 1 2 3 4 5 6 7 8 9 10 11 12", num_images=0)
    common = dict(max_tokens=a.max_tokens, temperature=0.0)

    def plain():
        return vlm_generate(model, processor, prompt, **common).token_ids, None

    def mlx_vlm_loop():
        for lens in (getattr(theirs, "accept_lens", None), getattr(theirs, "draft_lens", None)):
            if lens is not None:
                lens.clear()  # mlx-vlm keeps them across generations; its width policy reads them
        r = vlm_generate(model, processor, prompt, draft_model=theirs, draft_kind=kind, draft_block_size=a.width,
                         **common)
        drafted = list(getattr(theirs, "draft_lens", None) or [])
        return r.token_ids, (1 + sum(drafted) / len(drafted)) if drafted else None

    def ours():
        stats = SpecStats()
        r = vlm.generate(model, processor, prompt, draft_model=mine, num_draft_tokens=a.width - 1,
                         stats=stats, **common)
        rounds = [x for x in stats.rounds if x.proposed]
        return r.token_ids, ((1 + sum(x.proposed for x in rounds) / len(rounds)) if rounds else None,
                             stats.mean_accepted_length)

    rows = {"plain": plain, "mlx-vlm dflash": mlx_vlm_loop, "ours dflash": ours}
    times = {n: [] for n in rows}
    cpu = {n: [] for n in rows}
    host = {n: [] for n in rows}
    outputs, taus, widths, status = {}, {}, {}, {}
    for n, fn in rows.items():  # warm-up (compilation, caches) and the identity check
        try:
            outputs[n], st = fn()
            widths[n], taus[n] = st if isinstance(st, tuple) else (st, None)
            status[n] = "ok"
        except Exception as e:  # mlx-vlm's loop may refuse a target/drafter pair: say which and why
            status[n] = f"failed: {type(e).__name__}: {str(e)[:200]}"
    for _ in range(a.passes):
        for n, fn in rows.items():
            if status[n] != "ok":
                continue
            t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
            toks, _ = fn()
            times[n].append(len(toks) / (time.perf_counter() - t0))
            cpu[n].append(1000 * (time.process_time() - c0) / len(toks))
            host[n].append(1000 * (time.thread_time() - h0) / len(toks))
    ref = outputs.get("plain")
    result = {"target": {"kind": "gemma4 VLM, random weights", **shape}, "drafter": {"kind": "dflash", "taps": taps,
              "block_size": a.block_size}, "width": a.width, "max_tokens": a.max_tokens, "passes": a.passes,
              "blas": blas.status().kind, "rows": []}
    base = statistics.median(times["plain"]) if times["plain"] else None
    print(f"{'method':<16} {'tok/s':>7} {'min':>7} {'max':>7} {'vs plain':>8} {'cpu ms/tok':>10} {'host':>5} {'width':>5}  "
          f"same tokens  status")
    for n in rows:
        ts = times[n]
        med = statistics.median(ts) if ts else None
        row = {"method": n, "status": status[n], "tok_s_median": med, "tok_s_min": min(ts) if ts else None,
               "tok_s_max": max(ts) if ts else None, "speedup": med / base if med and base else None,
               "same_tokens_as_plain": outputs.get(n) == ref if n in outputs else None, "tau": taus.get(n),
               "cpu_ms_per_token_median": statistics.median(cpu[n]) if cpu[n] else None,
               "host_cpu_ms_per_token_median": statistics.median(host[n]) if host[n] else None,
               "mean_verify_width": widths.get(n) or 1.0}
        result["rows"].append(row)
        if med:
            print(f"{n:<16} {med:7.1f} {min(ts):7.1f} {max(ts):7.1f} {row['speedup']:8.2f} "
                  f"{row['cpu_ms_per_token_median']:10.1f} {row['host_cpu_ms_per_token_median']:5.1f} "
                  f"{row['mean_verify_width']:5.2f}  "
                  f"{str(row['same_tokens_as_plain']):<11}  {status[n]}" + (f"  tau {row['tau']:.2f}" if row["tau"] else ""))
        else:
            print(f"{n:<16} {'-':>7} {'-':>7} {'-':>7} {'-':>8} {'-':>10} {'-':>5} {'-':>5}  {'-':<11}  {status[n]}")
    ours_row, theirs_row = result["rows"][2], result["rows"][1]
    if ours_row["tok_s_median"] and theirs_row["tok_s_median"]:
        result["ours_vs_mlx_vlm"] = ours_row["tok_s_median"] / theirs_row["tok_s_median"]
        result["ours_vs_mlx_vlm_cpu"] = theirs_row["cpu_ms_per_token_median"] / ours_row["cpu_ms_per_token_median"]
        same = abs(ours_row["mean_verify_width"] - theirs_row["mean_verify_width"]) < 0.25
        result["equal_width"] = same
        print(f"ours / mlx-vlm: {result['ours_vs_mlx_vlm']:.2f}x by wall clock, {result['ours_vs_mlx_vlm_cpu']:.2f}x by "
              f"CPU time, at equal acceptance" + ("" if same else " (UNEQUAL verify widths: not loop overhead alone)"))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
