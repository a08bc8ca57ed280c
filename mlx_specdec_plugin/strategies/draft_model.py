"""``draft-model``: classic speculative decoding with a small mlx-lm model of the same tokenizer.

The draft model runs autoregressively for ``n`` steps; each step's logits go through the user's
sampling chain (logits processors with the draft prefix, then temperature / top-p / min-p /
top-k), the token is drawn from that q, and q is reported to the acceptor. At temperature 0 the
draft is the argmax (a deterministic proposal). The proposer owns the draft cache: tokens it
fed speculatively are trimmed back to the committed prefix in :meth:`extend`.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.cache import make_prompt_cache

from .. import caches
from ..drafting import Draft, DraftContext, StrategyOptions, draw
from ..target import TargetAdapter, vocab_size_of


def is_mlx_lm_model(obj) -> bool:
    return isinstance(obj, nn.Module) and hasattr(obj, "layers") and callable(obj)


class DraftModelProposer:
    tap_layers = ()

    def __init__(self, target: TargetAdapter, draft_model: nn.Module, options: StrategyOptions):
        if not is_mlx_lm_model(draft_model):
            raise ValueError("strategy 'draft-model' needs draft_model= an mlx-lm model")
        draft_vocab = vocab_size_of(draft_model)
        if draft_vocab != target.vocab_size:
            raise ValueError(
                f"draft model vocabulary ({draft_vocab}) differs from the target's "
                f"({target.vocab_size}); the draft must share the target's tokenizer"
            )
        self.model = draft_model
        self.cache = make_prompt_cache(draft_model)
        caches.check_rollback(self.cache)
        self.step_size = options.prefill_step_size
        self.unfed: List[int] = []  # committed tokens not yet in the draft cache
        self.speculative: List[int] = []  # pending + drafts fed during the last propose
        self.round: Optional[caches.Round] = None  # rollback record of the speculative feeds

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        tokens = list(tokens)
        if self.speculative:
            k = 0
            while k < min(len(tokens), len(self.speculative)) and tokens[k] == self.speculative[k]:
                k += 1
            caches.end_round(self.cache, self.round, appended=len(self.speculative), keep=k)
            tokens, self.speculative = tokens[k:], []
        self.unfed.extend(tokens)

    def _logits(self, tokens: List[int]) -> mx.array:
        for start in range(0, len(tokens) - 1, self.step_size):
            chunk = tokens[start : min(start + self.step_size, len(tokens) - 1)]
            self.model(mx.array([chunk], dtype=mx.uint32), cache=self.cache)
        if not self.speculative:  # tokens[-1] is the first speculative feed of this round
            self.round = caches.begin_round(self.cache, replay=self._replay)
        logits = self.model(mx.array([tokens[-1:]], dtype=mx.uint32), cache=self.cache)[0, -1:]
        caches.checkpoint(self.round, self.cache, len(self.speculative) + 1)
        return logits

    def _replay(self, n: int) -> None:
        self.model(mx.array([self.speculative[:n]], dtype=mx.uint32), cache=self.cache)

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        sampling = ctx.sampling
        feed = self.unfed + [ctx.pending]
        self.unfed = []
        history = list(ctx.history)
        parts = []
        for i in range(max_tokens):
            logits = self._logits(feed)
            self.speculative.append(feed[-1])
            parts.append(draw(sampling, sampling.logprobs(logits, history)))
            if i + 1 < max_tokens:
                t = int(parts[-1].tokens.item())
                history.append(t)
                feed = [t]
        return Draft.concat(parts)


def build(target: TargetAdapter, draft, options: StrategyOptions) -> DraftModelProposer:
    return DraftModelProposer(target, draft, options)
