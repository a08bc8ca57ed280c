"""Plain decoding references that the drafter tests compare speculative output against."""

import mlx.core as mx
import numpy as np
from mlx_lm.generate import generate_step

from mlx_specdec_plugin import SpecStats
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step


def greedy_tokens(model, tok, prompt: str, max_tokens: int) -> list:
    """mlx-lm's own greedy ``generate_step`` on ``prompt``: the token ids, cut before the first EOS."""
    out = [t for t, _ in generate_step(mx.array(tok.encode(prompt)), model, max_tokens=max_tokens)]
    eos = set(tok.eos_token_ids)
    return out[: next((i for i, t in enumerate(out) if t in eos), len(out))]


def close(a, b, tol: float = 1e-4) -> bool:
    """``max |a - b| / (1 + max |b|) < tol`` in float64: logits of two forwards that must agree."""
    a, b = np.array(a, np.float64), np.array(b, np.float64)
    return np.max(np.abs(a - b)) / (1 + np.max(np.abs(b))) < tol


def feed_prefix(model, cache, tokens) -> None:
    """Feed a prefix as a long prompt is fed: chunks of 4, then single tokens (both ring update paths)."""
    for start in range(0, len(tokens) - 2, 4):
        model(mx.array([tokens[start : min(start + 4, len(tokens) - 2)]]), cache=cache)
    for t in tokens[-2:]:
        model(mx.array([[t]]), cache=cache)


def tree_tokens(target, draft, prompt, k: int, max_tokens: int = 40):
    """``(tokens, stats)`` of greedy ``tree`` decoding after ``prompt`` (ids) with ``k`` nodes a round."""
    t, proposer, spec, sampling, _, _ = prepare(target, draft, draft_strategy="tree", num_draft_tokens=k)
    stats = SpecStats()
    out = [x for x, _, _ in speculative_generate_step(mx.array(prompt), t, proposer, spec.accept, num_draft_tokens=k,
                                                     max_tokens=max_tokens, sampling=sampling, stats=stats)]
    return out, stats
