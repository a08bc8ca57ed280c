"""Mean accepted tokens per round for rejection / block / match on one draft pair at T=1.

    python examples/compare_acceptors.py                       # tiny random pair (self-contained)
    python examples/compare_acceptors.py TARGET DRAFT [--temp 1.0] [--k 4] [--tokens 64]

The default pair is a tiny random llama and a noisy copy of it (so acceptance is neither 0 nor 1).
"""

import argparse
import tempfile

import mlx.core as mx
from mlx.utils import tree_map
from mlx_lm import load

from mlx_specdec_plugin import SpecStats, make_sampler, stream_generate

PROMPTS = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "The three primary colours are red, yellow and",
    "import numpy as np\nx = np.arange(10)\ny =",
]


def tiny_pair():
    from mlx_specdec_plugin.testing.tiny import save_tiny_model

    root = tempfile.mkdtemp()
    target_path = save_tiny_model(root + "/t", "llama", seed=1, sharpness=3)
    target, tok = load(str(target_path))
    draft, _ = load(str(target_path))
    mx.random.seed(5)
    draft.update(tree_map(lambda p: p + 0.03 * mx.random.normal(p.shape), draft.parameters()))
    return target, draft, tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target", nargs="?")
    ap.add_argument("draft", nargs="?")
    ap.add_argument("--temp", type=float, default=1.0)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    if args.target:
        target, tok = load(args.target)
        draft, _ = load(args.draft)
    else:
        target, draft, tok = tiny_pair()
    print(f"T={args.temp} k={args.k}, {len(PROMPTS)} prompts x {args.seeds} seeds x {args.tokens} tokens")
    print(f"{'acceptor':<10} {'rounds':>7} {'tau':>6} {'accept':>7}  by position")
    for acceptor in ("match", "rejection", "block"):
        stats = SpecStats()
        for seed in range(args.seeds):
            for prompt in PROMPTS:
                mx.random.seed(seed)
                for _ in stream_generate(target, tok, prompt, max_tokens=args.tokens, draft_model=draft,
                                         sampler=make_sampler(args.temp), num_draft_tokens=args.k,
                                         acceptor=acceptor, stats=stats):
                    pass
        pos = " ".join(f"{a:.2f}" for a in stats.acceptance_by_position())
        print(f"{acceptor:<10} {stats.num_rounds:>7} {stats.mean_accepted_length:>6.3f} "
              f"{stats.acceptance_rate:>7.1%}  {pos}")


if __name__ == "__main__":
    main()
