"""Cost of rolling back a verify pass, per cache kind, and replay vs capture for recurrent layers.

``python -m tools.rollback_bench [--rounds N] [--width S] [--keep K]`` builds small
random float32 models (one per cache kind), runs rounds of a width-``S`` verify forward that
keeps ``K`` positions, and prints the median verify time, the median rollback time
(``end_round`` plus evaluating the cache) and the rollback as a share of the verify. For
recurrent layers, *capture* pays in the verify (per-position states recorded) and selects at
rollback; *replay* verifies plainly and re-runs the kept tokens at rollback: compare
``verify + rollback``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import mlx.core as mx
from mlx_lm.models.cache import QuantizedKVCache, make_prompt_cache

from mlx_specdec_plugin import caches
from mlx_specdec_plugin.recurrent import CAPTURES
from mlx_specdec_plugin.target import lm_head
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config

H = 128
GDN = dict(
    linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=32, linear_value_head_dim=32,
    linear_conv_kernel_dim=4, head_dim=32, full_attention_interval=4, partial_rotary_factor=0.25,
    num_experts=0, num_experts_per_tok=0, decoder_sparse_step=1, shared_expert_intermediate_size=0,
    mlp_only_layers=[], moe_intermediate_size=0,
)
FALCON_H1 = dict(
    head_dim=32, mamba_d_ssm=128, mamba_n_heads=4, mamba_d_head=32, mamba_d_state=16,
    mamba_chunk_size=16, mamba_d_conv=4, mamba_n_groups=1, tie_word_embeddings=True,
)

# name -> (config, cache factory or None, capture model_type or None)
KINDS: Dict[str, Tuple[dict, Optional[Callable], Optional[str]]] = {
    "KVCache (llama)": (tiny_config("llama", vocab_size=1024, hidden_size=H, num_hidden_layers=8), None, None),
    "QuantizedKVCache (llama, 8 bit)": (
        tiny_config("llama", vocab_size=1024, hidden_size=H, num_hidden_layers=8),
        lambda m: [QuantizedKVCache(group_size=32, bits=8) for _ in m.layers],
        None,
    ),
    "RotatingKVCache (gemma3, window 32)": (
        tiny_config("gemma3_text", vocab_size=1024, hidden_size=H, num_hidden_layers=8, head_dim=32,
                    query_pre_attn_scalar=32, sliding_window=32, sliding_window_pattern=4),
        None,
        None,
    ),
    "ArraysCache GDN (qwen3_5) replay": (
        tiny_config("qwen3_5", vocab_size=1024, hidden_size=H, num_hidden_layers=8, **GDN), None, None
    ),
    "ArraysCache GDN (qwen3_5) capture": (
        tiny_config("qwen3_5", vocab_size=1024, hidden_size=H, num_hidden_layers=8, **GDN), None, "qwen3_5"
    ),
    "CacheList Mamba2 (falcon_h1) replay": (
        tiny_config("falcon_h1", vocab_size=1024, hidden_size=H, num_hidden_layers=8, **FALCON_H1), None, None
    ),
}


def _eval_cache(cache: List) -> None:
    mx.eval([c.state for c in caches.leaves(cache)])


def rounds_of(config: dict, make_cache: Optional[Callable], capture: Optional[str], width: int,
              keep: int, prompt: int = 48) -> Iterator[Tuple[float, float]]:
    """Endless rounds on one model: yields (verify s, rollback s) per round."""
    model = make_tiny_model(config, seed=0)
    cache = make_cache(model) if make_cache else make_prompt_cache(model)
    vocab = config["vocab_size"]
    rng = random.Random(0)
    model(mx.array([[rng.randrange(vocab) for _ in range(prompt)]]), cache=cache)
    _eval_cache(cache)
    fwd = CAPTURES[capture] if capture else None
    while True:
        inputs = mx.array([[rng.randrange(vocab) for _ in range(width)]])
        t0 = time.perf_counter()
        rnd = caches.begin_round(cache, replay=lambda n: model(inputs[:, :n], cache=cache))
        logits = lm_head(model, fwd(model, inputs, cache, (), rnd.captured)[0]) if fwd else model(inputs, cache=cache)
        mx.eval(logits)
        _eval_cache(cache)
        t1 = time.perf_counter()
        caches.end_round(cache, rnd, appended=width, keep=keep)
        _eval_cache(cache)
        t2 = time.perf_counter()
        yield t1 - t0, t2 - t1


def bench(rounds: int, width: int, keep: int, warmup: int = 3) -> Dict[str, Tuple[float, float]]:
    """Median (verify ms, rollback ms) per kind; kinds take turns round by round, so load from
    other processes on a shared machine hits them alike."""
    runs = {name: rounds_of(cfg, mk, cap, width, keep) for name, (cfg, mk, cap) in KINDS.items()}
    times: Dict[str, List[Tuple[float, float]]] = {name: [] for name in runs}
    for i in range(rounds + warmup):
        for name, run in runs.items():
            t = next(run)
            if i >= warmup:
                times[name].append(t)
    return {
        name: (statistics.median(v for v, _ in ts) * 1e3, statistics.median(r for _, r in ts) * 1e3)
        for name, ts in times.items()
    }


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--width", type=int, default=5, help="verify width (pending + drafts)")
    ap.add_argument("--keep", type=int, default=2, help="positions kept per round (< width)")
    args = ap.parse_args(argv)
    mx.set_default_device(mx.cpu)
    print(f"device: {mx.default_device()}  hidden {H}, 8 layers, float32; verify width {args.width}, "
          f"keep {args.keep}; medians over {args.rounds} rounds")
    print(f"{'cache kind':40s} {'verify ms':>10s} {'rollback ms':>12s} {'% of verify':>12s} {'total ms':>9s}")
    results = bench(args.rounds, args.width, args.keep)
    for name, (v, r) in results.items():
        print(f"{name:40s} {v:10.2f} {r:12.3f} {100 * r / v:11.1f}% {v + r:9.2f}")
    (rv, rr), (cv, cr) = results["ArraysCache GDN (qwen3_5) replay"], results["ArraysCache GDN (qwen3_5) capture"]
    print(f"GDN per round (verify + rollback): replay {rv + rr:.2f} ms, capture {cv + cr:.2f} ms "
          f"(capture's verify overhead {cv - rv:+.2f} ms = {100 * (cv - rv) / rv:+.1f}% of a plain verify)")

if __name__ == "__main__":
    main()
