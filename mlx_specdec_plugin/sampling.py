"""The processed distributions p (target) and q (draft), computed exactly as mlx-lm samples.

mlx-lm's ``make_sampler`` filters the *untempered* log-probabilities with top-p, then min-p,
then top-k, and draws from ``softmax(filtered / temp)``; logits processors (repetition penalty,
logit bias, ...) run first, on the token history. :class:`Sampling` reproduces that chain as a
distribution, so an acceptor can compute min(1, p/q) and residuals, and a drafter can draw from
the very q it reports.

A sampler is *known* when its parameters can be read: a :class:`ParamSampler` from our
:func:`make_sampler`, mlx-lm's ``greedy_sampler``, or a sampler built by mlx-lm's own
``make_sampler`` (its closure is read, nothing is patched). Any other callable is *opaque*: it is
still used to draw target tokens (acceptor ``match`` is exact for any sampler), but acceptors that
need p refuse it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import mlx.core as mx
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, greedy_sampler

Sampler = Callable[[mx.array], mx.array]
LogitsProcessor = Callable[[mx.array, mx.array], mx.array]


@dataclass(frozen=True)
class SamplingParams:
    """The parameters of mlx-lm's ``make_sampler`` that shape the distribution (XTC excluded)."""

    temp: float = 0.0
    top_p: float = 0.0
    min_p: float = 0.0
    min_tokens_to_keep: int = 1
    top_k: int = 0

    def __post_init__(self):
        if self.temp < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temp}")

    @property
    def greedy(self) -> bool:
        return self.temp == 0

    def filter(self, logprobs: mx.array) -> mx.array:
        """Apply top-p, min-p, top-k (mlx-lm's order) to log-probabilities ``(..., V)``."""
        if 0 < self.top_p < 1.0:
            logprobs = apply_top_p(logprobs, self.top_p)
        if self.min_p != 0.0:
            logprobs = apply_min_p(logprobs, self.min_p, self.min_tokens_to_keep)
        if self.top_k > 0:
            logprobs = apply_top_k(logprobs, self.top_k)
        return logprobs


@dataclass
class ParamSampler:
    """A sampler that is also a description of its distribution (drop-in for mlx-lm's)."""

    params: SamplingParams

    def __call__(self, logprobs: mx.array) -> mx.array:
        if self.params.greedy:
            return mx.argmax(logprobs, axis=-1)
        filtered = self.params.filter(logprobs)
        return mx.random.categorical(filtered * (1.0 / self.params.temp))


def make_sampler(
    temp: float = 0.0,
    top_p: float = 0.0,
    min_p: float = 0.0,
    min_tokens_to_keep: int = 1,
    top_k: int = 0,
) -> ParamSampler:
    """Like ``mlx_lm.sample_utils.make_sampler`` (same arguments, same draws), but introspectable."""
    return ParamSampler(SamplingParams(temp, top_p, min_p, min_tokens_to_keep, top_k))


def _closure_vars(fn) -> dict:
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None) or ()
    if code is None:
        return {}
    out = {}
    for name, cell in zip(code.co_freevars, cells):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # empty cell
            pass
    return out


def params_from_sampler(sampler: Optional[Sampler]) -> Optional[SamplingParams]:
    """Read the distribution a sampler draws from, or ``None`` if the sampler is opaque."""
    if sampler is None or sampler is greedy_sampler:
        return SamplingParams()
    if isinstance(sampler, ParamSampler):
        return sampler.params
    outer = _closure_vars(sampler)
    if "temp" not in outer or "sampling_methods" not in outer:
        return None
    values = {"temp": float(outer["temp"])}
    for method in outer["sampling_methods"]:
        inner = _closure_vars(method)
        if "xtc_probability" in inner:
            return None  # XTC draws its own randomness: not a fixed distribution
        for key in ("top_p", "min_p", "min_tokens_to_keep", "top_k"):
            if key in inner:
                values[key] = inner[key]
    if set(values) == {"temp"} and outer["sampling_methods"]:
        return None  # methods we could not read
    return SamplingParams(**values)


@dataclass
class Sampling:
    """Turns raw logits rows into processed log-probabilities, distributions and samples.

    ``params`` is ``None`` for an opaque sampler. ``processors`` are mlx-lm logits processors,
    called as ``proc(history, logits[None])`` with ``history`` the 1-D token array the row
    conditions on (the prompt plus every token before the row's position).
    """

    params: Optional[SamplingParams]
    sampler: Sampler
    processors: Sequence[LogitsProcessor] = field(default_factory=tuple)

    @classmethod
    def create(
        cls, sampler: Optional[Sampler] = None, logits_processors: Optional[Sequence] = None
    ) -> "Sampling":
        params = params_from_sampler(sampler)
        if sampler is None:
            sampler = greedy_sampler
        return cls(params, sampler, tuple(logits_processors or ()))

    @property
    def greedy(self) -> bool:
        return self.params is not None and self.params.greedy

    @property
    def known(self) -> bool:
        return self.params is not None

    def processed(self, logits: mx.array, history: Sequence[int]) -> mx.array:
        """Logits ``(n, V)`` of ``n`` consecutive rows after the logits processors, unnormalised.

        ``history`` is the token list through the last row's context: row ``i`` sees its first
        ``len(history) - n + 1 + i`` tokens (for a verify pass over ``[pending, x1..xg]`` that is
        the committed tokens plus the whole verify input). The dtype of ``logits`` is kept, as
        mlx-lm keeps it, so greedy argmax ties break the same way.
        """
        if not self.processors:
            return logits
        n = logits.shape[0]
        hist = mx.array(list(history), dtype=mx.uint32)
        base = len(history) - n + 1
        rows = []
        for i in range(n):
            row = logits[i : i + 1]
            h = hist[: base + i]
            for proc in self.processors:
                row = proc(h, row)
            rows.append(row)
        return mx.concatenate(rows, axis=0)

    def processed_rows(self, logits: mx.array, histories: Sequence[Sequence[int]]) -> mx.array:
        """:meth:`processed` for rows with histories of their own (a tree: each node's path)."""
        if not self.processors:
            return logits
        rows = []
        for i, history in enumerate(histories):
            row, h = logits[i : i + 1], mx.array(list(history), dtype=mx.uint32)
            for proc in self.processors:
                row = proc(h, row)
            rows.append(row)
        return mx.concatenate(rows, axis=0)

    def logprobs(self, logits: mx.array, history: Sequence[int]) -> mx.array:
        """Processed, normalised log-probabilities ``(n, V)`` (see :meth:`processed`), as mlx-lm
        computes them before sampling."""
        return normalise(self.processed(logits, history))

    def probs(self, logprobs: mx.array) -> mx.array:
        """The distribution ``(n, V)`` the sampler draws from (one-hot argmax at temperature 0)."""
        if self.params is None:
            raise ValueError("the sampler is opaque: its distribution is unknown")
        if self.params.greedy:
            return _one_hot(mx.argmax(logprobs, axis=-1), logprobs.shape[-1])
        filtered = self.params.filter(logprobs.astype(mx.float32))
        return mx.softmax(filtered * (1.0 / self.params.temp), axis=-1)

    def distribution(self, processed: mx.array) -> mx.array:
        """:meth:`probs` from :meth:`processed` logits, skipping the normalisation where the
        filters do not need it (min-p, top-k and the tempered softmax are shift-invariant; top-p
        and temperature 0 get normalised log-probabilities): one pass over the vocabulary less."""
        p = self.params
        shift_invariant = p is not None and not p.greedy and not 0 < p.top_p < 1.0
        return self.probs(processed if shift_invariant else normalise(processed))

    def sample(self, logprobs: mx.array) -> mx.array:
        """Draw one token per row with the user's sampler (uint32 ``(n,)``)."""
        return self.sampler(logprobs).astype(mx.uint32)


def normalise(logits: mx.array) -> mx.array:
    """``logits - logsumexp(logits)`` over the last axis, in the logits' dtype (mlx-lm's logprobs)."""
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def greedy_tokens(processed: mx.array) -> List[int]:
    """``argmax(normalise(processed))`` per row, as mlx-lm's greedy sampler takes it, without the
    normalisation in the common case (one host sync).

    Subtracting a row's logsumexp ``c`` rounds each entry by at most ``eps/2 * |x - c|``, and
    ``|c| <= |max| + log V``; so when the top logit leads the runner-up by more than
    ``4 * eps * (2 |max| + log V + 1)`` the two argmaxes agree. Rows closer than that (near
    ties) are decided on the normalised values, exactly as mlx-lm does."""
    x = processed
    vocab = x.shape[-1]
    top = mx.argmax(x, axis=-1)
    best = mx.take_along_axis(x, top[:, None], axis=-1)[:, 0].astype(mx.float32)
    runner_up = mx.max(mx.where(mx.arange(vocab)[None, :] == top[:, None], -mx.inf, x), axis=-1).astype(mx.float32)
    eps = float(mx.finfo(x.dtype).eps)
    close = (best - runner_up) <= 4.0 * eps * (2.0 * mx.abs(best) + math.log(vocab) + 1.0)
    mx.eval(top, close)
    ids, near = top.tolist(), close.tolist()
    if any(near):
        exact = mx.argmax(normalise(x), axis=-1).tolist()
        ids = [e if n else i for i, e, n in zip(ids, exact, near)]
    return ids


def _one_hot(indices: mx.array, size: int) -> mx.array:
    return (mx.arange(size)[None, :] == indices[:, None]).astype(mx.float32)


def sample_from(probs: mx.array) -> mx.array:
    """Draw one token per row from probability rows ``(n, V)`` (zeros allowed)."""
    return mx.random.categorical(mx.log(probs)).astype(mx.uint32)
