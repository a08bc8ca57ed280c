"""Rolling back a model's cache after a verify pass, for every cache type mlx-lm's models use.

A round is a small transaction::

    rnd = begin_round(cache, replay)          # before the verify forward
    target(tokens, cache, record=rnd.captured)  # the verify forward appends ``appended`` positions
    end_round(cache, rnd, appended, keep)     # keep the first ``keep`` of them, drop the rest

How each cache leaf (``CacheList`` is flattened) drops the rejected tail:

* ``KVCache``, ``QuantizedKVCache``, ``ChunkedKVCache`` (append-only): ``trim``.
* ``ConcatenateKVCache``: slice the rows off (its ``trim`` leaves them in the array).
* ``RotatingKVCache`` (sliding window): put the ring in temporal order, slice the rejected rows
  off and reset the write index. mlx-lm's ``trim`` is a no-op once the ring wrapped, and an
  in-place trim breaks a later width-1 forward. A multi-token forward (the verify) never
  overwrites rows a rollback needs: it concatenates, keeping ``max_size - 1`` older rows. Width-1
  forwards (a draft model's own cache) write in place; for them :func:`begin_round` keeps the
  window copy-on-write and the rollback appends the kept rows to it.
* ``ArraysCache`` (conv / SSM / delta-rule states: Qwen3.5, Qwen3-Next, Mamba, LFM2, ...):
  if the verify forward *captured* per-position states (``rnd.captured[id(leaf)]``, filled by
  :mod:`~mlx_specdec_plugin.recurrent` for families it knows) the state after the last kept
  position is selected; otherwise the states saved at :func:`begin_round` are restored, every
  other leaf is rolled back to the start of the round too, and ``replay(keep)`` re-runs the
  model on the kept tokens (exact for any recurrent layer; costs one more forward).

:func:`check_rollback` runs before generation and names any cache type we cannot roll back, so
an unsupported model fails with one clear error instead of a silently wrong answer.

Tree rounds (:mod:`~mlx_specdec_plugin.tree`): the verify forward appends every tree node, and
``end_round(..., rows=...)`` keeps the round's rows ``rows`` (the root and the accepted path, in
order): their keys/values are gathered into place right after the prefix, then the rest is
dropped as above (``TREE_TYPES``). A ring (``RotatingKVCache``) qualifies because the verify is
one multi-token update, which puts the ring in temporal order, keeps at most ``max_size - 1``
older rows and appends every node: the kept rows are gathered over the node rows, and the
ordinary ring drop slices the rest off, whether the window had room or wrapped. Recurrent state
(``ArraysCache``: one state per sequence, a tree would need one per branch) is refused by
``check_rollback(cache, trees=True)`` before generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import mlx.core as mx
from mlx_lm.models.cache import (
    ArraysCache,
    ChunkedKVCache,
    ConcatenateKVCache,
    KVCache,
    QuantizedKVCache,
    RotatingKVCache,
)

from .bucketed import BucketedKVCache

# Types whose rejected tail is dropped exactly by ``trim`` (append-only storage).
TRIMMABLE_TYPES = (KVCache, QuantizedKVCache, ChunkedKVCache, BucketedKVCache)
# Every leaf type end_round handles (exact type match: a subclass may change the update rule).
SUPPORTED_TYPES = TRIMMABLE_TYPES + (ConcatenateKVCache, RotatingKVCache, ArraysCache)
# Types a tree round can compact to its accepted path (key/value rows; a ring's multi-token
# update concatenates, so its new rows are appended too).
TREE_TYPES = TRIMMABLE_TYPES + (ConcatenateKVCache, RotatingKVCache)

# replay(n): run the model on the first n tokens of the round, updating the cache in place.
Replay = Callable[[int], Any]
# captured[id(leaf)](keep) -> the leaf's ``cache`` list after the round's first ``keep`` positions.
Selector = Callable[[int], List[Optional[mx.array]]]


class UnsupportedCacheError(ValueError):
    """The model uses a cache type whose speculative rollback we do not implement."""


class RollbackError(RuntimeError):
    """A rollback was asked for that the saved round cannot undo exactly (a bug, not user error)."""


def leaves(cache: List[Any]) -> List[Any]:
    """The cache's leaf caches, ``CacheList`` entries flattened, in layer order."""
    out = []
    for c in cache:
        inner = getattr(c, "caches", None)  # mlx-lm CacheList
        out.extend(leaves(list(inner)) if inner is not None else [c])
    return out


def check_rollback(cache: List[Any], trees: bool = False) -> None:
    """Raise :class:`UnsupportedCacheError` naming every cache type we cannot roll back (with
    ``trees``: cannot compact to a tree's accepted path)."""
    supported = TREE_TYPES if trees else SUPPORTED_TYPES
    bad = sorted({type(c).__name__ for c in leaves(cache) if type(c) not in supported})
    if bad:
        what = "tree verification cannot compact" if trees else "speculative decoding cannot roll back"
        raise UnsupportedCacheError(
            f"{what} cache type(s) {', '.join(bad)} "
            f"(supported: {', '.join(t.__name__ for t in supported)})"
        )


def offset_of(c: Any) -> int:
    """The position of the next token a leaf will store."""
    return int(c.offset)


def stored_rows(c: Any) -> int:
    """Key/value rows in use in a leaf's storage (a chunked cache drops its front)."""
    return int(c.offset) - int(getattr(c, "start_position", 0) or 0)


def ring_rows_kept(c: RotatingKVCache) -> int:
    """Rows of a ring that its next multi-token update keeps before the new ones: its rows in
    temporal order, at most ``max_size - 1`` (``RotatingKVCache._update_concat``)."""
    if c.keys is None:
        return 0
    rows = c.keys.shape[2] if (c._idx == c.keys.shape[2] or c._idx < c.offset) else c._idx
    return min(rows, c.max_size - 1)


def fetched_rows(c: Any, n: int) -> int:
    """The key length ``update_and_fetch`` returns for ``n`` new rows (a bucketed cache hands a
    multi-token forward its whole buffer; a ring, the rows it keeps and the new ones)."""
    if type(c) is BucketedKVCache and n > 1:
        return c._size_for(n)
    if type(c) is RotatingKVCache and n > 1:
        return ring_rows_kept(c) + n
    return stored_rows(c) + n


def committed_kv(c: Any, last: Optional[int] = None) -> Any:
    """The keys and values a leaf holds for the tokens in it, oldest first: ``(keys, values)``, each
    ``(B, n_kv_heads, n, head_dim)``; ``last``: only the newest ``last`` rows. A ``KVCache`` (bucketed
    too) holds every committed row; a ring (``RotatingKVCache``) the newest ones, in temporal order
    (at least ``max_size - 1`` of them once the context is that long). Read-only: the leaf's owner
    (the loop, for the target's cache) keeps it. ``ValueError`` for a leaf whose rows are not plain
    keys and values (a quantized or recurrent cache)."""
    if type(c) is RotatingKVCache:
        if c.keys is None:
            raise ValueError("committed_kv: the ring is empty")
        rows = [_temporal(v, c._idx, c.offset, c.keep) for v in (c.keys, c.values)]
        rows = [v[..., : min(v.shape[2], stored_rows(c)), :] for v in rows]
    elif type(c) in (KVCache, BucketedKVCache, ConcatenateKVCache):
        if c.keys is None:
            raise ValueError("committed_kv: the cache is empty")
        rows = [v[..., : stored_rows(c), :] for v in (c.keys, c.values)]
    else:
        raise ValueError(f"committed_kv: a {type(c).__name__} holds no plain keys and values")
    if last is not None:
        rows = [v[..., -min(last, v.shape[2]):, :] for v in rows]
    return rows[0], rows[1]


def _gather_rows(x: Any, start: int, rows: List[int]) -> Any:
    """Write rows ``start + rows`` of ``x`` (array or tuple of arrays, rows on axis 2) to
    ``start .. start + len(rows) - 1``."""
    if isinstance(x, (tuple, list)):
        return type(x)(_gather_rows(a, start, rows) for a in x)
    picked = mx.take(x, mx.array([start + r for r in rows], dtype=mx.int32), axis=2)
    x[..., start : start + len(rows), :] = picked
    return x


def compact(cache: List[Any], appended: int, rows: List[int]) -> None:
    """Move the kept ``rows`` (indices into the last ``appended`` rows of every leaf) into place
    right after the prefix; the rows after them are then dropped by :func:`end_round`."""
    for c in leaves(cache):
        if type(c) not in TREE_TYPES:
            check_rollback([c], trees=True)
        if type(c) is RotatingKVCache:  # after a multi-token update: temporal order, new rows last
            if c._idx != c.keys.shape[2]:
                raise RollbackError("RotatingKVCache: a tree round must be one multi-token update")
            start = c.keys.shape[2] - appended
        else:
            start = stored_rows(c) - appended
        c.keys = _gather_rows(c.keys, start, rows)
        c.values = _gather_rows(c.values, start, rows)


def trimmable(cache: List[Any]) -> bool:
    """True when every leaf is append-only storage whose rejected tail ``trim`` drops exactly, so a
    round may also append committed positions before the speculative ones."""
    return all(type(c) in TRIMMABLE_TYPES for c in leaves(cache))


@dataclass
class Round:
    """What :func:`end_round` needs to undo one round: saved recurrent / ring states, the replay
    callback, and per-position states recorded by a capturing forward or :func:`checkpoint`."""

    saved: Dict[int, Any]
    replay: Optional[Replay]
    captured: Dict[int, Selector] = field(default_factory=dict)
    checkpoints: Dict[int, Dict[int, List[Optional[mx.array]]]] = field(default_factory=dict)


def _save(c: Any) -> Any:
    # References suffice for recurrent slots: mlx-lm's layers assign new arrays to them. Ring
    # arrays may be written in place (width-1 forwards); ``mx.array(x)`` shares x's buffer and
    # keeps its current value, so the write copies only if it happens while the round is open.
    if type(c) is ArraysCache:
        return list(c.cache), c.left_padding, c.lengths
    if type(c) is RotatingKVCache:
        if c.keys is None:
            return None, None, c.offset, c._idx
        return mx.array(c.keys), mx.array(c.values), c.offset, c._idx
    return None


def begin_round(cache: List[Any], replay: Optional[Replay] = None) -> Round:
    """Start a round: save what :func:`end_round` needs to undo the coming forward.

    ``replay(n)`` must run the model on the round's first ``n`` tokens with this cache; it is
    called only for recurrent leaves whose per-position states were not captured.
    """
    return Round({id(c): _save(c) for c in leaves(cache)}, replay)


def checkpoint(rnd: Round, cache: List[Any], position: int) -> None:
    """Record the recurrent leaves' current states as those after the round's first ``position``
    tokens. For forwards fed a token at a time (a draft model): rollback then selects, no replay."""
    for c in leaves(cache):
        if type(c) is ArraysCache:
            states = rnd.checkpoints.setdefault(id(c), {})
            states[position] = list(c.cache)
            rnd.captured[id(c)] = states.__getitem__


def _temporal(v: mx.array, idx: int, offset: int, keep: int) -> mx.array:
    """A ring's rows in temporal order (as ``RotatingKVCache._temporal_order``, for any state)."""
    if idx == v.shape[2]:
        return v
    if idx < offset:
        return mx.concatenate([v[..., :keep, :], v[..., idx:, :], v[..., keep:idx, :]], axis=2)
    return v[..., :idx, :]


def _rotating_drop(c: RotatingKVCache, saved: Any, drop: int) -> None:
    """Temporal order, rejected rows off, write index reset. After a multi-token forward (which
    concatenates, keeping ``max_size - 1`` older rows) slicing suffices; after width-1 forwards
    overwrote rows (a full ring of ``max_size`` rows is needed afterwards), the saved ring gets
    the kept new rows appended instead."""
    keys = _temporal(c.keys, c._idx, c.offset, c.keep)
    values = _temporal(c.values, c._idx, c.offset, c.keep)
    rows, offset = keys.shape[2] - drop, c.offset - drop
    if rows >= min(offset, c.max_size):  # fewer rows would break a later width-1 update
        c.keys, c.values = keys[..., :rows, :], values[..., :rows, :]
        c.offset, c._idx = offset, rows
        return
    if saved is None:
        raise RollbackError("RotatingKVCache rollback after in-place writes needs the Round")
    old_keys, old_values, old_offset, old_idx = saved
    appended, kept = c.offset - old_offset, offset - old_offset
    if keys.shape[2] < appended:
        raise RollbackError(
            f"RotatingKVCache (window {c.max_size}) lost rows of its own round ({appended} appended)"
        )
    new = slice(keys.shape[2] - appended, keys.shape[2] - appended + kept)
    parts_k, parts_v = [keys[..., new, :]], [values[..., new, :]]
    if old_keys is not None:
        parts_k.insert(0, _temporal(old_keys, old_idx, old_offset, c.keep))
        parts_v.insert(0, _temporal(old_values, old_idx, old_offset, c.keep))
    c.keys, c.values = mx.concatenate(parts_k, axis=2), mx.concatenate(parts_v, axis=2)
    c.offset, c._idx = offset, c.keys.shape[2]


def _restore(c: Any, saved: Any) -> None:
    if type(c) is ArraysCache:
        cache, c.left_padding, c.lengths = saved
        c.cache = list(cache)
    else:  # RotatingKVCache
        c.keys, c.values, c.offset, c._idx = saved


def _drop(c: Any, saved: Any, drop: int) -> None:
    if type(c) is RotatingKVCache:
        _rotating_drop(c, saved, drop)
    elif type(c) is ConcatenateKVCache:
        c.offset -= drop
        c.keys, c.values = c.keys[..., : c.offset, :], c.values[..., : c.offset, :]
    elif type(c) in TRIMMABLE_TYPES:
        c.trim(drop)
    else:
        check_rollback([c])


def end_round(
    cache: List[Any], snapshot: Optional[Round], appended: int, keep: int, rows: Optional[Sequence[int]] = None
) -> None:
    """Keep the first ``keep`` of the ``appended`` positions written since :func:`begin_round`;
    with ``rows`` (a tree round: ``keep`` of them, increasing), keep those positions instead.

    ``snapshot`` may be ``None`` only for caches without recurrent leaves.
    """
    if rows is not None:
        rows = list(rows)
        if len(rows) != keep:
            raise RollbackError(f"end_round: keep={keep} but {len(rows)} rows")
        if rows != list(range(keep)):
            compact(cache, appended, rows)
    drop = appended - keep
    if drop <= 0:
        return
    flat = leaves(cache)
    recurrent = [c for c in flat if type(c) is ArraysCache]
    if recurrent and snapshot is None:
        raise RollbackError("recurrent (ArraysCache) layers need the Round from begin_round")
    captured = snapshot.captured if snapshot is not None else {}
    saved = snapshot.saved if snapshot is not None else {}
    if not recurrent or (keep > 0 and all(id(c) in captured for c in recurrent)):
        for c in flat:
            if type(c) is ArraysCache:
                c.cache = list(captured[id(c)](keep))
            else:
                _drop(c, saved.get(id(c)), drop)
        return
    # Replay: undo the whole round everywhere, then run the kept tokens again.
    for c in flat:
        if type(c) in (ArraysCache, RotatingKVCache):
            _restore(c, snapshot.saved[id(c)])
        else:
            _drop(c, None, appended)
    if keep > 0:
        if snapshot.replay is None:
            raise RollbackError("recurrent layers were not captured and no replay was given")
        snapshot.replay(keep)
