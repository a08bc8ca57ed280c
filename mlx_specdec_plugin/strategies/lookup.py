"""``lookup``: prompt-lookup (n-gram) drafting, no weights.

Finds the most recent earlier occurrence of the longest suffix of the history (``max_ngram``
tokens down to ``min_ngram``) and proposes the tokens that followed it. The proposal is a
function of the context, i.e. a point mass, so every acceptor handles it exactly.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import mlx.core as mx

from ..contract import Draft, DraftContext, StrategyOption, StrategyOptions

OPTIONS = (
    StrategyOption("max_ngram", int, 3, "longest suffix n-gram to match"),
    StrategyOption("min_ngram", int, 1, "shortest suffix n-gram to match"),
)


class LookupProposer:
    tap_layers = ()

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1):
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"lookup needs 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.last_end: Dict[Tuple[int, ...], int] = {}  # n-gram -> end index of its latest occurrence
        self.indexed = 0  # n-grams ending before this index are in last_end
        self.undo: List[List[Tuple[Tuple[int, ...], Optional[int]]]] = []  # per position: (n-gram, previous end)
        self.committed = 0

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        self.committed += len(tokens)  # the history in the DraftContext is the source of truth

    def rewind(self, n: int) -> bool:
        """Forget everything after the first ``n`` committed tokens: the index becomes exactly the
        one built from them (the entries of later positions undone, newest first)."""
        while self.indexed > n:
            for key, prev in reversed(self.undo.pop()):
                if prev is None:
                    del self.last_end[key]
                else:
                    self.last_end[key] = prev
            self.indexed -= 1
        self.committed = min(self.committed, n)
        return True

    def _index(self, history: List[int], upto: int) -> None:
        for end in range(self.indexed, upto):
            changes = []
            for n in range(self.min_ngram, min(self.max_ngram, end + 1) + 1):
                key = tuple(history[end - n + 1 : end + 1])
                changes.append((key, self.last_end.get(key)))
                self.last_end[key] = end
            self.undo.append(changes)
        self.indexed = max(self.indexed, upto)

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        history = ctx.history
        self._index(history, len(history) - 1)  # every occurrence except the suffix itself
        for n in range(min(self.max_ngram, len(history)), self.min_ngram - 1, -1):
            end = self.last_end.get(tuple(history[-n:]))
            if end is not None:
                follow = history[end + 1 : end + 1 + max_tokens]
                if follow:
                    return Draft(mx.array(follow, dtype=mx.uint32), None, deterministic=True)
        return Draft.empty()


def build(target, draft, options: StrategyOptions) -> LookupProposer:
    """``options.extra``: ``max_ngram`` / ``min_ngram`` (:data:`OPTIONS`; ``None`` = the default)."""
    extra = options.extra
    get = lambda o: int(o.default if extra.get(o.name) is None else extra[o.name])  # noqa: E731
    return LookupProposer(*(get(o) for o in OPTIONS))
