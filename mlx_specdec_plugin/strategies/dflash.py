"""``dflash``: z-lab's block-diffusion drafter (one parallel pass over [anchor + masks]).

The drafter reads the target's hidden states at ``target_layer_ids`` as cached context and drafts
a whole block in one forward: ``[anchor, mask x g]`` -> hidden -> the target's LM head -> g rows
of logits (the anchor slot is dropped). Each row then goes through the user's sampling chain
(logits processors see the history including the earlier drafted tokens), and the token is drawn
from exactly the q that is reported, so every acceptor stays exact.

Block length: ``g = min(n, cap)`` with ``cap = options.block_size - 1`` (``block_size`` = verify
width including the anchor, as mlx-vlm's ``--draft-block-size``) or, by default, the
checkpoint's trained proposals (15 for a ``b16`` drafter); the cap never exceeds the trained
size. The loop's ``n`` is ``num_draft_tokens``: short blocks for chat, 16-wide for code/math.

:class:`BlockProposer` (shared with ``dspark``) owns the per-generation context cache: context
K/V of committed tokens only, never rolled back. :meth:`extend` only queues the tapped features;
they are projected into the cache in one batched forward when a block is next drafted (or once
``FLUSH_ROWS`` are waiting), so a stretch of rounds that draft nothing (``auto`` choosing plain
decoding) costs no drafter forwards, and the cache is the same when drafting resumes.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import mlx.core as mx

from .. import caches
from ..drafters import Drafter, as_drafter, claims as _claims
from ..contract import Draft, DraftContext, StrategyOptions, draw
from ..sampling import Sampling
from ..target import TargetAdapter

KIND = "dflash"
FLUSH_ROWS = 64  # queued context rows that trigger a projection even without a draft


def proposal_cap(drafter: Drafter, options: StrategyOptions) -> int:
    """Most proposals per round: the ``block_size`` knob (anchor included) or the checkpoint's."""
    trained = drafter.config.proposal_length
    if options.block_size is None:
        return drafter.config.default_proposals
    if int(options.block_size) < 2:
        raise ValueError(f"block_size (verify width, anchor included) must be >= 2, got {options.block_size}")
    return min(int(options.block_size) - 1, trained)


class BlockProposer:
    """Proposer for block drafters. ``tap_layers`` = the checkpoint's ``target_layer_ids``."""

    def __init__(self, drafter: Drafter, options: StrategyOptions):
        self.drafter = drafter
        self.config = drafter.config
        self.tap_layers: Tuple[int, ...] = tuple(drafter.config.target_layer_ids)
        self.cap = proposal_cap(drafter, options)
        self.cache = drafter.make_cache()
        self._queued: List[mx.array] = []  # tapped features (1, L, n_t*H) not yet in the cache
        self._queued_rows = 0

    @property
    def committed(self) -> int:
        """Committed tokens whose context rows are in the cache or queued for it."""
        return (self.cache[0].offset if self.cache else 0) + self._queued_rows

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in caches.leaves(self.cache))

    def rewind(self, n: int) -> bool:
        """Keep the context rows of the first ``n`` committed tokens only (``False`` if the drafter's
        cache cannot be trimmed)."""
        if n > self.committed:
            return False
        self.flush_context()
        drop = self.committed - n
        if drop and not caches.trimmable(self.cache):
            return False
        for c in caches.leaves(self.cache):
            c.trim(drop)
        return True

    # -- context

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        if hidden is None:
            raise ValueError(f"strategy '{self.config.kind}' needs the target's hidden states")
        if hidden.shape[1] != len(tokens):
            raise ValueError(f"extend: {len(tokens)} tokens but {hidden.shape[1]} hidden rows")
        if len(tokens) == 0:
            return
        self._queued.append(hidden)
        self._queued_rows += len(tokens)
        if self._queued_rows >= FLUSH_ROWS:
            self.flush_context()

    def flush_context(self) -> None:
        """Project every queued context row into the cache (one forward; queued, not waited for)."""
        if not self._queued:
            return
        hidden = self._queued[0] if len(self._queued) == 1 else mx.concatenate(self._queued, axis=1)
        self._queued, self._queued_rows = [], 0
        self.drafter.module.extend_context(self.cache, hidden)
        mx.async_eval([c.keys for c in self.cache], [c.values for c in self.cache])

    # -- block forward

    def block_inputs(self, anchor: int, g: int) -> List[int]:
        masks = g - 1 if self.config.sample_from_anchor else g
        return [anchor] + [self.config.mask_token_id] * masks

    def block_hidden(self, anchor: int, g: int) -> mx.array:
        """Draft hidden states ``(g, H)``, row i predicting proposal i (one forward, not cached)."""
        self.flush_context()
        tokens = mx.array([self.block_inputs(anchor, g)], dtype=mx.uint32)
        h = self.drafter.module.block(self.drafter.embed(tokens), self.cache)[0]
        return h if self.config.sample_from_anchor else h[1:]

    def base_logits(self, anchor: int, g: int) -> Tuple[mx.array, mx.array]:
        """``(logits (g, V), hidden (g, H))`` of one block forward after ``anchor``."""
        h = self.block_hidden(anchor, g)
        return self.drafter.head(h), h

    # -- sampling

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        g = min(max_tokens, self.cap)
        if g < 1:
            return Draft.empty()
        logits, _ = self.base_logits(ctx.pending, g)
        return sample_rows(logits, ctx)


def sample_rows(logits: mx.array, ctx: DraftContext) -> Draft:
    """Draw one token per independent row of ``logits (g, V)`` through the user's sampling chain."""
    sampling: Sampling = ctx.sampling
    g = logits.shape[0]
    if sampling.processors:  # each row's processors see the earlier drafted tokens
        return sample_sequential(lambda i, prev: logits[i], g, ctx)
    return draw(sampling, logits, ctx.history)


def sample_sequential(row_fn, g: int, ctx: DraftContext, stop_fn=None) -> Draft:
    """Left-to-right drafting: ``row_fn(i, prev) -> logits (V,)`` with ``prev`` the token drawn at
    ``i - 1`` (the anchor at ``i = 0``, an mx scalar). ``stop_fn(i, prev) -> bool``, if given, is asked
    *before* row i is drawn (from information that does not depend on token i) and ends the block."""
    sampling: Sampling = ctx.sampling
    history = list(ctx.history)
    need_ints = bool(sampling.processors)
    prev = mx.array(ctx.pending, dtype=mx.uint32)
    parts = []
    for i in range(g):
        if stop_fn is not None and stop_fn(i, prev):
            break
        parts.append(draw(sampling, row_fn(i, prev)[None], history))
        prev = parts[-1].tokens[0]
        if need_ints:
            history.append(int(prev.item()))
    return Draft.concat(parts)


def build(target: TargetAdapter, draft, options: StrategyOptions) -> BlockProposer:
    return BlockProposer(as_drafter(draft, target.model, KIND), options)


def claims(draft) -> bool:
    return _claims(draft, KIND)
