"""A ``KVCache`` whose attention sees a bucketed key length, for backends that plan kernels per shape.

mlx-lm's ``KVCache`` hands attention exactly ``offset`` keys, so every speculative round (a
multi-token forward after a different number of accepted tokens) presents a new key length. On
mlx-cuda 0.32.4 a multi-query attention call with an unseen key length costs ~40 ms of one-off
planning (docs/h200.md). :class:`BucketedKVCache` always returns its whole buffer (a multiple of
``step`` rows) and masks the rows past ``offset`` through mlx-lm's own ``make_mask`` hook, so
shapes repeat within a bucket. Exact: masked rows get no attention weight. Everything else
(``trim``, ``state``, rollback) is the inherited ``KVCache`` behaviour.
"""

from __future__ import annotations

from typing import Any, List, Optional

import os

import mlx.core as mx
from mlx_lm.models.cache import KVCache


def bucketing_default() -> bool:
    """On for mlx-cuda (measured there: docs/h200.md), off elsewhere; ``MLX_SPECDEC_BUCKETED_CACHE=0/1``
    overrides. Metal has not been measured, so it keeps mlx-lm's own cache."""
    env = os.environ.get("MLX_SPECDEC_BUCKETED_CACHE")
    if env is not None:
        return env not in ("0", "", "false", "False")
    cuda = getattr(mx, "cuda", None)
    return bool(cuda is not None and cuda.is_available() and mx.default_device().type == mx.gpu)


class BucketedKVCache(KVCache):
    step = 256

    def _size_for(self, n: int) -> int:
        need = self.offset + n
        if self.keys is not None and need <= self.keys.shape[2]:
            return self.keys.shape[2]
        return -(-need // self.step) * self.step

    def update_and_fetch(self, keys: mx.array, values: mx.array):
        prev, n = self.offset, keys.shape[2]
        size = self._size_for(n)
        if self.keys is None or size > self.keys.shape[2]:
            B, H, _, D = keys.shape
            new_k = mx.zeros((B, H, size, D), keys.dtype)
            new_v = mx.zeros((B, H, size, values.shape[3]), values.dtype)
            if self.keys is not None and prev:
                new_k[..., :prev, :] = self.keys[..., :prev, :]
                new_v[..., :prev, :] = self.values[..., :prev, :]
            self.keys, self.values = new_k, new_v
        self.offset = prev + n
        self.keys[..., prev : self.offset, :] = keys
        self.values[..., prev : self.offset, :] = values
        if n == 1:  # single-query kernels take any key length: no padding, no mask
            return self.keys[..., : self.offset, :], self.values[..., : self.offset, :]
        return self.keys, self.values

    def make_mask(self, N: int, return_array: bool = False, window_size: Optional[int] = None):
        """Boolean ``(N, size)`` mask for the coming ``N`` queries (called before the update);
        one query gets mlx-lm's own mask (none, or its window), over the unpadded keys."""
        if N == 1:
            return super().make_mask(N, return_array=return_array, window_size=window_size)
        q = self.offset + mx.arange(N)[:, None]
        k = mx.arange(self._size_for(N))[None]
        mask = k <= q
        if window_size is not None:
            mask = mask & (k > q - window_size)
        return mask


def bucketed(cache: List[Any]) -> List[Any]:
    """Replace every plain, empty ``KVCache`` of a fresh prompt cache by a :class:`BucketedKVCache`."""
    return [BucketedKVCache() if type(c) is KVCache and c.keys is None else c for c in cache]
