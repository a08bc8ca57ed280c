"""Rolling back the target's cache after a verify pass, through mlx-lm's own cache API.

A round is a small transaction: :func:`begin_round` before the verify forward returns whatever
is needed to undo it; :func:`end_round` keeps the first ``keep`` of the ``appended`` positions
the verify forward wrote and drops the rest. :func:`check_rollback` runs before generation and
names any cache type we cannot roll back, so an unsupported target fails with one clear error
instead of a silently wrong answer.
"""

from __future__ import annotations

from typing import Any, List

from mlx_lm.models.cache import KVCache, QuantizedKVCache

# Types whose rejected tail is dropped exactly by ``trim`` (append-only storage).
TRIMMABLE_TYPES = (KVCache, QuantizedKVCache)


class UnsupportedCacheError(ValueError):
    """The target uses a cache type whose speculative rollback we do not implement."""


def _leaves(cache: List[Any]) -> List[Any]:
    out = []
    for c in cache:
        inner = getattr(c, "caches", None)  # mlx-lm CacheList
        out.extend(_leaves(list(inner)) if inner is not None else [c])
    return out


def check_rollback(cache: List[Any]) -> None:
    """Raise :class:`UnsupportedCacheError` naming every cache type we cannot roll back."""
    bad = sorted({type(c).__name__ for c in _leaves(cache) if type(c) not in TRIMMABLE_TYPES})
    if bad:
        raise UnsupportedCacheError(
            f"speculative decoding cannot roll back cache type(s) {', '.join(bad)} "
            f"(supported: {', '.join(t.__name__ for t in TRIMMABLE_TYPES)})"
        )


def begin_round(cache: List[Any]) -> Any:
    """Snapshot what :func:`end_round` needs to undo the coming verify forward."""
    return None


def end_round(cache: List[Any], snapshot: Any, appended: int, keep: int) -> None:
    """Keep the first ``keep`` of the ``appended`` positions written since :func:`begin_round`."""
    drop = appended - keep
    if drop <= 0:
        return
    for c in _leaves(cache):
        c.trim(drop)
