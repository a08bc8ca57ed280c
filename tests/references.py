"""Plain decoding references that the drafter tests compare speculative output against."""

import mlx.core as mx
from mlx_lm.generate import generate_step


def greedy_tokens(model, tok, prompt: str, max_tokens: int) -> list:
    """mlx-lm's own greedy ``generate_step`` on ``prompt``: the token ids, cut before the first EOS."""
    out = [t for t, _ in generate_step(mx.array(tok.encode(prompt)), model, max_tokens=max_tokens)]
    eos = set(tok.eos_token_ids)
    return out[: next((i for i, t in enumerate(out) if t in eos), len(out))]
