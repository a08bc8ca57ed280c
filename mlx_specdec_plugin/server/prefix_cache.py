"""A prefix cache across generations: the target's KV cache and the drafter's state, reused.

A chat client resends the whole conversation every turn. :class:`PrefixCache` keeps, per finished
generation, a :class:`CachedContext`: the tokens whose state it holds, the target's prompt cache
and the proposer (a DSpark/DFlash drafter's context K/V from the tapped features, a draft model's
own cache, lookup's n-gram index). :meth:`PrefixCache.take` hands out the entry sharing the longest
token prefix with a new prompt, rewound to that prefix, so only the new tokens are prefilled::

    ctx = cache.take(key, prompt)            # None on a miss
    stream_generate(..., prompt_cache=ctx.cache, proposer=ctx.proposer, cached_tokens=ctx.reused)
    cache.put(key, CachedContext(tokens, ctx.cache, ctx.proposer))

Exactness: a reused entry holds exactly the state a fresh prefill of its tokens would build (the
target cache and the proposer are rewound, not approximated), so greedy output is the same token
for token and every acceptor stays exact. ``key`` names what built the proposer (strategy and its
options); entries are only reused under the same key. Only caches whose every leaf ``trim`` rolls
back exactly are kept (:func:`~mlx_specdec_plugin.caches.trimmable`: full-attention KV caches);
sliding-window and recurrent caches are not cached (``put`` declines them). A proposer is reusable
when it has ``committed`` (tokens it has been handed) and ``rewind(n) -> bool``; our strategies do.

An entry is owned by whoever took it (it is mutated in place by the next generation) until it is
put back. Entries are evicted least recently used first, over ``max_entries`` or ``max_bytes``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Hashable, List, Optional, Sequence

from .. import caches


@dataclass
class CachedContext:
    """``tokens``: the tokens whose state ``cache`` (the target's) and ``proposer`` (``None`` for
    plain decoding) hold, in order. ``reused``: after :meth:`PrefixCache.take`, how many leading
    tokens of the new prompt that state covers."""

    tokens: List[int]
    cache: List[Any]
    proposer: Any = None
    reused: int = 0

    @property
    def nbytes(self) -> int:
        return sum(int(c.nbytes) for c in caches.leaves(self.cache)) + int(getattr(self.proposer, "nbytes", 0) or 0)


def cache_offset(cache: List[Any]) -> int:
    """Positions held by a trimmable prompt cache (every leaf holds the same number)."""
    leaves = caches.leaves(cache)
    return min(int(c.offset) for c in leaves) if leaves else 0


def rewind(ctx: CachedContext, n: int) -> bool:
    """Cut ``ctx`` back to its first ``n`` tokens (target cache and proposer); ``False`` if the
    proposer cannot, and the entry is then unusable."""
    held = cache_offset(ctx.cache)
    if n > held:
        return False
    for c in caches.leaves(ctx.cache):
        c.trim(int(c.offset) - n)
    if ctx.proposer is not None and not ctx.proposer.rewind(n):
        return False
    del ctx.tokens[n:]
    return True


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def reusable(cache: List[Any], proposer: Any) -> bool:
    """Whether this state can be cached: a trimmable target cache, and a proposer (if any) that
    can rewind."""
    if not cache or not caches.trimmable(cache):
        return False
    return proposer is None or (callable(getattr(proposer, "rewind", None)) and hasattr(proposer, "committed"))


class PrefixCache:
    """LRU of :class:`CachedContext` under ``max_entries`` and ``max_bytes`` (target + drafter state)."""

    def __init__(self, max_entries: int = 4, max_bytes: int = 8 << 30):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.entries: "OrderedDict[int, tuple]" = OrderedDict()  # id -> (key, CachedContext)
        self._next = 0
        self.counters = {"hits": 0, "misses": 0, "reused_tokens": 0, "evicted": 0}

    @property
    def nbytes(self) -> int:
        return sum(ctx.nbytes for _, ctx in self.entries.values())

    def take(self, key: Hashable, prompt: Sequence[int], min_reuse: int = 1) -> Optional[CachedContext]:
        """Remove and return the entry under ``key`` sharing the longest prefix with ``prompt``,
        rewound to ``min(prefix, len(prompt) - 1)`` tokens (the last prompt token is always run,
        it is the pending one), or ``None`` when no entry shares ``min_reuse`` tokens."""
        best, best_n = None, 0
        for eid, (k, ctx) in self.entries.items():
            if k == key:
                n = min(common_prefix(ctx.tokens, prompt), len(prompt) - 1)
                if n > best_n:
                    best, best_n = eid, n
        if best is None or best_n < min_reuse:
            self.counters["misses"] += 1
            return None
        _, ctx = self.entries.pop(best)
        if not rewind(ctx, best_n):
            self.counters["misses"] += 1
            return None
        ctx.reused = best_n
        self.counters["hits"] += 1
        self.counters["reused_tokens"] += best_n
        return ctx

    def put(self, key: Hashable, ctx: CachedContext) -> bool:
        """Keep ``ctx`` (cut to the state its target cache and proposer both hold); ``False`` if it
        cannot be cached. Evicts the least recently used entries over the budgets."""
        if not reusable(ctx.cache, ctx.proposer):
            return False
        n = min(len(ctx.tokens), cache_offset(ctx.cache))
        if ctx.proposer is not None:
            n = min(n, int(ctx.proposer.committed))
        if n < 1 or not rewind(ctx, n):
            return False
        ctx.reused = 0
        self.entries[self._next] = (key, ctx)
        self._next += 1
        while len(self.entries) > self.max_entries or (len(self.entries) > 1 and self.nbytes > self.max_bytes):
            self.entries.popitem(last=False)
            self.counters["evicted"] += 1
        if self.entries and self.nbytes > self.max_bytes:  # a single entry over the whole budget
            self.entries.clear()
            self.counters["evicted"] += 1
            return False
        return True

    def clear(self) -> None:
        self.entries.clear()
