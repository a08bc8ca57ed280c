"""Mean accepted length tau per prompt set, drafter and temperature (real decoding, no timing).

    python docs/scripts/tau_by_set.py --model M --drafters dspark=D1 dflash=D2 --sets chat code \
        --num-prompts 4 --max-tokens 48 --temps 0 1 --num-draft-tokens 3 --json out.json

Each prompt of ``mlx_specdec_plugin/prompts/<set>.jsonl`` (chat template applied) is decoded with
``stream_generate`` (T=0: greedy acceptor; T>0: rejection sampling, seed 0); tau pools the rounds
of a set (target's own token included), as ``SpecStats`` reports it.
"""

from __future__ import annotations

import argparse
import json

import mlx.core as mx
from mlx_lm import load
from mlx_lm.sample_utils import make_sampler

from mlx_specdec_plugin import load_drafter, stream_generate
from mlx_specdec_plugin.bench.runner import encode, load_prompts
from mlx_specdec_plugin.stats import SpecStats


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--drafters", nargs="+", required=True, help="name=path")
    p.add_argument("--sets", nargs="+", default=["chat", "code"])
    p.add_argument("--num-prompts", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--temps", nargs="+", type=float, default=[0.0, 1.0])
    p.add_argument("--num-draft-tokens", type=int, default=3)
    p.add_argument("--json")
    a = p.parse_args()
    model, tok = load(a.model)
    rows = []
    for spec in a.drafters:
        name, path = spec.split("=", 1)
        drafter = load_drafter(path, model)
        for temp in a.temps:
            for s in a.sets:
                stats = SpecStats()
                for _, prompt in load_prompts([s], a.num_prompts):
                    ids = encode(tok, prompt, chat=True)
                    mx.random.seed(0)
                    for _ in stream_generate(model, tok, ids, max_tokens=a.max_tokens, draft_model=drafter,
                                             num_draft_tokens=a.num_draft_tokens, sampler=make_sampler(temp),
                                             stats=stats):
                        pass
                row = {"drafter": name, "temp": temp, "set": s, "prompts": a.num_prompts, "rounds": stats.num_rounds,
                       "tau": round(stats.mean_accepted_length, 3),
                       "acceptance_by_position": [round(x, 3) for x in stats.acceptance_by_position()]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "num_draft_tokens": a.num_draft_tokens, "max_tokens": a.max_tokens,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
