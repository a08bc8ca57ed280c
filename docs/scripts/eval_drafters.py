#!/usr/bin/env python3
"""Held-out tau of several drafters on the same windows (issue 16: old vs new, DSpark vs DFlash).

    python docs/scripts/eval_drafters.py --target "$(mlx-specdec fetch smollm2)" \
        --data gen_t0.jsonl gen_t1.jsonl --drafters smollm2-dspark NEW_DIR ... --json out.json

The held-out windows are the ones ``mlx-specdec train`` holds out for the same data, ``--seq-len``,
``--eval-fraction`` and ``--seed`` (the training defaults of docs/scripts/h200_drafters.py), so a
drafter trained on that data is scored on text it never saw. Each drafter is scored as trained
(float32, or its 4-bit weights as shipped) with ``Trainer.evaluate``: teacher-forced acceptance per
position at T=0 and T=1.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace

import mlx_specdec_plugin  # noqa: F401  first: the fast CPU BLAS before mlx.core
from mlx_lm import load

from mlx_specdec_plugin.drafters import load_drafter
from mlx_specdec_plugin.fetch import SHIPPED_DRAFTERS, shipped_drafter
from mlx_specdec_plugin.train.trainer import Trainer, TrainConfig, read_records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--drafters", nargs="+", required=True, help="folders or shipped names")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--eval-fraction", type=float, default=0.03)
    p.add_argument("--eval-blocks", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    model, tok = load(a.target)
    records = [r for f in a.data for r in read_records(f)]
    results = {}
    features = tempfile.mkdtemp(prefix="eval_features_")  # the target runs once for drafters sharing taps
    for name in a.drafters:
        drafter = load_drafter(shipped_drafter(name) if name in SHIPPED_DRAFTERS else name, model)
        cfg = TrainConfig(strategy=drafter.config.kind, seq_len=a.seq_len, eval_fraction=a.eval_fraction,
                          seed=a.seed, block_size=drafter.config.proposal_length, eval_blocks=a.eval_blocks)
        with tempfile.TemporaryDirectory() as out:
            t = Trainer(model, tok, replace(cfg, target_layer_ids=drafter.config.target_layer_ids), out,
                        progress=False, resume=False, feature_cache=features)
            t.drafter = drafter  # scored as loaded (a 4-bit drafter as shipped; Trainer would refuse to train it)
            t.add_records(records)
            ev = t.evaluate(a.eval_blocks)
        results[name] = ev
        print(f"{name}: tau T=0 {ev['tau_t0']:.3f}  T=1 {ev['tau_t1']:.3f}  "
              f"accept T=0 {' '.join(f'{x:.2f}' for x in ev['accept_t0_by_position'])}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"data": a.data, "seq_len": a.seq_len, "eval_fraction": a.eval_fraction, "results": results}, f,
                      indent=1)


if __name__ == "__main__":
    main()
