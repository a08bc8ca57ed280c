"""``draft-model``: classic speculative decoding with a small mlx-lm model of the same tokenizer.

The draft model runs autoregressively for ``n`` steps; each step's logits go through the user's
sampling chain (logits processors with the draft prefix, then temperature / top-p / min-p /
top-k), the token is drawn from that q, and q is reported to the acceptor. At temperature 0 the
draft is the argmax (a deterministic proposal). The proposer owns the draft cache: tokens it
fed speculatively are trimmed back to the committed prefix in :meth:`extend`. With trim-only caches
the committed tokens of the last round go through the draft model in the same forward as the pending
token, so a round of ``n`` drafts costs ``n`` draft-model forwards.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.cache import make_prompt_cache

from .. import caches
from ..contract import Draft, DraftContext, StrategyOptions, draw
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
        self.fed = 0  # speculative tokens fed during the last propose (pending + drafts but the last)
        self.prefix = 0  # committed tokens fed in the same forward as the round's first speculative one
        self.fuse = caches.trimmable(self.cache)  # trim-only caches: committed + pending in one forward
        self.last: Optional[tuple] = None  # (pending, drafted tokens array) of the last propose
        self.round: Optional[caches.Round] = None  # rollback record of the speculative feeds
        self.committed = 0  # committed tokens handed to extend (in the draft cache or in unfed)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in caches.leaves(self.cache))

    def rewind(self, n: int) -> bool:
        """Keep the state of the first ``n`` committed tokens only (``False``: the draft cache cannot
        be trimmed, or a round is open; the proposer is then unusable for reuse)."""
        if self.fed or n > self.committed:
            return False
        in_cache = self.committed - len(self.unfed)
        if n >= in_cache:
            self.unfed = self.unfed[: n - in_cache]
        elif caches.trimmable(self.cache):
            for c in caches.leaves(self.cache):
                c.trim(in_cache - n)
            self.unfed = []
        else:
            return False
        self.committed, self.last = n, None
        return True

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        tokens = list(tokens)
        self.committed += len(tokens)
        if self.fed:
            pending, drafted = self.last
            speculative = ([pending] + drafted.tolist())[: self.fed]
            k = 0
            while k < min(len(tokens), len(speculative)) and tokens[k] == speculative[k]:
                k += 1
            caches.end_round(self.cache, self.round, appended=self.prefix + self.fed, keep=self.prefix + k)
            tokens, self.fed, self.prefix = tokens[k:], 0, 0
        self.unfed.extend(tokens)

    def _step(self, token: mx.array, committed: Sequence[int] = ()) -> mx.array:
        """Feed one speculative token (uint32 ``(1,)``, possibly still lazy), after ``committed``
        tokens in the same forward (the round's first step only); its logits ``(1, V)``."""
        if self.fed == 0:
            self.round = caches.begin_round(self.cache, replay=self._replay)
            self.prefix = len(committed)
        if committed:
            token = mx.concatenate([mx.array(list(committed), dtype=mx.uint32), token])
        logits = self.model(token[None], cache=self.cache)[0, -1:]
        self.fed += 1
        caches.checkpoint(self.round, self.cache, self.fed)
        return logits

    def _replay(self, n: int) -> None:
        pending, drafted = self.last
        tokens = [pending] + drafted.tolist()
        self.model(mx.array([tokens[:n]], dtype=mx.uint32), cache=self.cache)

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        """Draft lazily: each step feeds the previous step's token array without a host sync
        (ints are materialised only when logits processors need the history)."""
        sampling = ctx.sampling
        committed, self.unfed = self.unfed, []
        fused = committed if self.fuse and len(committed) < self.step_size else []
        if not fused:  # committed tokens first (a long prefill in chunks, or a cache that must replay)
            for start in range(0, len(committed), self.step_size):
                self.model(mx.array([committed[start : start + self.step_size]], dtype=mx.uint32), cache=self.cache)
        history = list(ctx.history)
        # one forward over the committed tokens and the pending one: the round's first draft costs
        # one draft-model step, not two
        logits = self._step(mx.array([ctx.pending], dtype=mx.uint32), fused)
        parts = []
        for i in range(max_tokens):
            parts.append(draw(sampling, logits, history))
            if i + 1 < max_tokens:
                if sampling.processors:
                    history.append(int(parts[-1].tokens.item()))
                logits = self._step(parts[-1].tokens)
        draft = Draft.concat(parts)
        self.last = (ctx.pending, draft.tokens)
        return draft


def build(target: TargetAdapter, draft, options: StrategyOptions) -> DraftModelProposer:
    return DraftModelProposer(target, draft, options)
