"""An oracle drafter of controlled acceptance (no drafting cost): the bench's ``oracle:A`` strategy
and ``tools/oracle_bench.py``."""

from __future__ import annotations

import random
from typing import Sequence

import mlx.core as mx

from ..contract import Draft, DraftContext


class OracleProposer:
    """Proposes the reference continuation, each token corrupted with probability 1 - accept."""

    tap_layers = ()

    def __init__(self, reference: Sequence[int], prompt_len: int, accept: float, vocab: int, seed: int = 0):
        self.reference, self.prompt_len, self.accept, self.vocab = list(reference), prompt_len, accept, vocab
        self.rng = random.Random(seed)

    def extend(self, tokens, hidden) -> None:
        pass

    def propose(self, ctx: DraftContext, n: int) -> Draft:
        pos = len(ctx.history) - self.prompt_len  # index of the next token in the reference
        out = []
        for tok in self.reference[pos : pos + n]:
            out.append(tok if self.rng.random() < self.accept else (tok + 1) % self.vocab)
        return Draft(mx.array(out, dtype=mx.uint32), None, deterministic=True)
