"""τ by position for every drafter kind of issue 15, on the tiny fixtures (vocabulary 8, each kind on a
target of its own family: ``mlx_specdec_plugin.testing.drafters.kind_fixtures``, the same fixtures
the chi-square tests use; random drafters, so the numbers show the machinery, not a trained drafter).

For each kind and temperature (0: greedy acceptor; 1: rejection), ``--samples`` seeded generations
of ``--tokens`` tokens after prompts of 3 tokens, 3 proposals per round. Printed and written per
kind: rounds, τ (accepted drafts per round), tokens per round, and the acceptance rate at each
draft position (``SpecStats.acceptance_by_position``: of the rounds that offered position i, the
share that kept it).

  PYTHONPATH=$PWD python docs/scripts/kinds_by_position.py --json docs/bench/kinds_by_position.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import mlx.core as mx

from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.sampling import make_sampler
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.testing.drafters import kind_fixtures

STRATEGY = {"eagle3": "eagle3", "mtp": "mtp", "mtp-deepseek": "mtp", "dflash2": "dflash2", "assistant": "assistant"}
VOCAB = 8


def run(model, drafter, strategy: str, temp: float, samples: int, tokens: int, k: int) -> dict:
    mx.random.seed(7)
    stats, target = SpecStats(), None
    acceptor = "greedy" if temp == 0 else "rejection"
    for i in range(samples):
        prompt = [1 + i % 7, 1 + (3 * i) % 7, 1 + (5 * i + 2) % 7]
        target, proposer, spec, sampling, _, budget = prepare(
            model, drafter, draft_strategy=strategy, acceptor=acceptor, sampler=make_sampler(temp=temp),
            num_draft_tokens=k, target=target)
        for _ in speculative_generate_step(mx.array(prompt), target, proposer, spec.accept, num_draft_tokens=budget,
                                           max_tokens=tokens, sampling=sampling, stats=stats):
            pass
    return {"rounds": stats.num_rounds, "tau": stats.accepted / max(stats.num_rounds, 1),
            "tokens_per_round": stats.emitted / max(stats.num_rounds, 1),
            "acceptance_by_position": [round(a, 3) for a in stats.acceptance_by_position()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--draft-tokens", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (model, drafter) in kind_fixtures(Path(tmp), VOCAB).items():
            for temp in (0.0, 1.0):
                r = run(model, drafter, STRATEGY[kind], temp, args.samples, args.tokens, args.draft_tokens)
                results[f"{kind}@T={temp:g}"] = r
                print(f"{kind:13s} T={temp:g}: rounds {r['rounds']:4d}  tau {r['tau']:.2f}  tokens/round "
                      f"{r['tokens_per_round']:.2f}  by position {r['acceptance_by_position']}")
    if args.json:
        args.json.write_text(json.dumps({"samples": args.samples, "tokens": args.tokens,
                                         "draft_tokens": args.draft_tokens, "results": results}, indent=1))


if __name__ == "__main__":
    main()
