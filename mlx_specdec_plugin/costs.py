"""The calibration library: this machine's cost curve for a model (and drafter), and :class:`CostCurve`.

``T_verify(w)``: one target forward of ``w`` new tokens over a ``context``-token cache, for
``w = 1..W``, rolled back after each measurement (median of ``repeats``). The drafter's cost
``T_draft(k)``: the strategy's own ``propose`` timed inside real rounds of our loop with ``k``
drafts (median per length). One code path for every device: Apple Silicon's curve rises with
``w``, a datacenter GPU's is almost flat, a small CPU's is steep - the scheduler reads whichever
was measured.

The curve is cached as JSON under :func:`cache_dir` (``$MLX_SPECDEC_CACHE``, else the platform's
user cache directory), keyed by model, quantization, mlx version, device and drafter.

The drafter is timed in proposers the caller builds (``build``, e.g.
:func:`~.generate.proposer_factory`): strategies are resolved by the engine, never here. The
``mlx-specdec calibrate`` command is :func:`~.commands.calibrate.calibrate_main`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from tqdm import tqdm

from . import blas, caches
from .acceptors import greedy
from .contract import Proposer
from .loop import speculative_generate_step
from .sampling import Sampling
from .stats import SpecStats
from .target import TargetAdapter

CACHE_VERSION = 2
Build = Callable[[], Tuple[TargetAdapter, Proposer]]  # a fresh (target, proposer), as prepare builds them


@dataclass
class CostCurve:
    """Seconds per round piece. ``verify[w-1]``: one target forward of ``w`` tokens (plus the
    acceptance work), ``w = 1..W``. ``draft[k]``: proposing ``k`` tokens, ``k = 0..K`` (``draft[0]``
    is usually 0). Widths past the measured range are extrapolated linearly from the last two."""

    verify: List[float]
    draft: List[float] = field(default_factory=lambda: [0.0])

    def __post_init__(self):
        if not self.verify or any(v <= 0 for v in self.verify):
            raise ValueError("CostCurve.verify needs positive times for w = 1..W")
        if not self.draft:
            self.draft = [0.0]

    @staticmethod
    def _at(values: Sequence[float], i: int) -> float:
        if i < len(values):
            return float(values[i])
        if len(values) == 1:
            return float(values[0])
        slope = max(float(values[-1]) - float(values[-2]), 0.0)
        return float(values[-1]) + slope * (i - len(values) + 1)

    def verify_time(self, w: int) -> float:
        return self._at(self.verify, w - 1)

    def draft_time(self, k: int) -> float:
        if k <= 0:
            return float(self.draft[0]) if self.draft else 0.0
        return self._at(self.draft, k)

    @classmethod
    def linear(cls, step: float, per_token: float, width: int = 16, draft_per_token: float = 0.0,
               draft_fixed: float = 0.0) -> "CostCurve":
        """``T_verify(w) = step + per_token * (w - 1)``; ``T_draft(k) = draft_fixed + draft_per_token * k``."""
        return cls(
            [step + per_token * (w - 1) for w in range(1, width + 1)],
            [0.0] + [draft_fixed + draft_per_token * k for k in range(1, width + 1)],
        )

    def as_dict(self) -> dict:
        return {"verify_s": list(self.verify), "draft_s": list(self.draft)}

    @classmethod
    def from_dict(cls, d: dict) -> "CostCurve":
        return cls(list(d["verify_s"]), list(d.get("draft_s") or [0.0]))


def cache_dir() -> Path:
    env = os.environ.get("MLX_SPECDEC_CACHE")
    if env:
        return Path(env)
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlx-specdec"


# ---- identity ------------------------------------------------------------------------------
def device_name() -> str:
    dev = mx.default_device()
    info: Dict[str, Any] = {}
    try:
        info = dict(mx.device_info())
    except Exception:  # older mlx
        try:
            info = dict(mx.metal.device_info())
        except Exception:
            info = {}
    name = info.get("device_name") or info.get("architecture") or platform.processor() or platform.machine()
    return f"{dev.type.name if hasattr(dev.type, 'name') else dev}:{name}:{platform.machine()}:{os.cpu_count()}cpu"


def blas_id() -> str:
    """Which BLAS serves MLX's CPU backend: a curve measured with one says nothing of another."""
    st = blas.status()
    return st.kind if st.path is None else f"{st.kind}:{Path(st.path).name}"


def quantization_of(model: nn.Module) -> str:
    bits = set()
    for _, m in model.named_modules():
        b = getattr(m, "bits", None)
        if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) and b:
            bits.add(f"{b}bit/g{getattr(m, 'group_size', '?')}")
    if bits:
        return ",".join(sorted(bits))
    dtypes = set()
    for _, v in _flat_params(model):
        dtypes.add(str(v.dtype).replace("mlx.core.", ""))
    return ",".join(sorted(dtypes)) or "unknown"


def _flat_params(model: nn.Module):
    return tree_flatten(model.parameters())


def drafter_id(draft_model: Any) -> str:
    """A stable id for whatever ``draft_model=`` accepts: a folder path, a loaded drafter (its
    folder and storage), an mlx-lm model (architecture hash and quantization), or ``None``."""
    if draft_model is None:
        return "none"
    if isinstance(draft_model, (str, Path)):
        return str(draft_model)
    if isinstance(draft_model, nn.Module):
        return f"{model_id(draft_model)}:{quantization_of(draft_model)}"
    module = getattr(draft_model, "module", None)
    if isinstance(module, nn.Module):  # a loaded DSpark/DFlash drafter
        path = getattr(draft_model, "path", None)
        stored = getattr(draft_model, "packed", None) or module
        return f"{path or model_id(module)}:{quantization_of(stored)}"
    return type(draft_model).__name__


def model_id(model: nn.Module, name: Optional[str] = None) -> str:
    """``name`` (a path or hub id) when given, else a hash of the architecture (config + shapes)."""
    if name:
        return str(name)
    args = getattr(model, "args", None)
    cfg = {k: v for k, v in sorted(vars(args).items()) if isinstance(v, (int, float, str, bool))} if args else {}
    shapes = sorted((k, tuple(v.shape)) for k, v in _flat_params(model))
    digest = hashlib.sha1(json.dumps([cfg, shapes], default=str).encode()).hexdigest()[:12]
    return f"{cfg.get('model_type', type(model).__name__)}-{digest}"


def cache_key(model: nn.Module, name: Optional[str] = None, drafter: str = "none", context: int = 0) -> dict:
    return {
        "version": CACHE_VERSION,
        "model": model_id(model, name),
        "quantization": quantization_of(model),
        "mlx": mx.__version__,
        "device": device_name(),
        "blas": blas_id(),
        "drafter": drafter,
        "context": int(context),
    }


def cache_path(key: dict) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(str(key["model"])).name)[:40]
    return cache_dir() / "calibration" / f"{safe}-{digest}.json"


# ---- progress ------------------------------------------------------------------------------
class Progress:
    """tqdm when it is installed, else a one-line stderr bar; silent when ``enabled`` is False."""

    def __init__(self, total: int, desc: str = "", enabled: bool = True):
        self.total, self.desc, self.enabled, self.n = max(total, 1), desc, enabled, 0
        self._bar = None
        if enabled:
            try:
                self._bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
            except Exception:
                self._bar = None

    def update(self, n: int = 1, note: str = "") -> None:
        self.n += n
        if not self.enabled:
            return
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(n)
            return
        width = 30
        filled = int(width * self.n / self.total)
        sys.stderr.write(f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] {self.n}/{self.total} {note[:40]:<40}")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ---- measurement ---------------------------------------------------------------------------
def _ctx_tokens(vocab: int, n: int, seed: int = 0) -> List[int]:
    rng = random.Random(seed)
    return [rng.randrange(min(vocab, 32000)) for _ in range(n)]


def interpolate(measured: Dict[int, float], n: int, start: int = 1) -> List[float]:
    """Values at ``start..n`` from measured points: piecewise linear inside their range, flat
    extrapolation past its ends (no slope is invented where nothing was measured)."""
    xs = sorted(measured)
    out = []
    for x in range(start, n + 1):
        if x in measured:
            out.append(measured[x])
            continue
        lo = max((k for k in xs if k < x), default=None)
        hi = min((k for k in xs if k > x), default=None)
        if lo is None or hi is None:
            out.append(measured[lo if hi is None else hi])
        else:
            out.append(measured[lo] + (measured[hi] - measured[lo]) * (x - lo) / (hi - lo))
    return out


def quick_points(n: int) -> List[int]:
    """The few lengths a quick calibration measures in ``1..n`` (1, 2, 3, then doubling, and n)."""
    pts = {p for p in (1, 2, 3) if p <= n}
    p = 4
    while p < n:
        pts.add(p)
        p *= 2
    pts.add(n)
    return sorted(pts)


def measure_verify_curve(
    model: nn.Module,
    width: int = 16,
    context: int = 256,
    repeats: int = 5,
    warmup: int = 2,
    progress: Optional[Progress] = None,
    widths: Optional[Sequence[int]] = None,
    target: Optional[TargetAdapter] = None,
) -> List[float]:
    """Median seconds of one forward of ``w`` tokens on a ``context``-token cache, ``w = 1..width``
    (only ``widths`` are measured when given; the rest are interpolated). ``target``: the adapter
    to measure through (default ``TargetAdapter(model)``; a VLM's language model needs its own)."""
    target = target or TargetAdapter(model)
    cache = target.make_cache()
    ctx = _ctx_tokens(target.vocab_size, max(context, 1))
    for start in range(0, len(ctx), 512):
        target.model(mx.array([ctx[start : start + 512]], dtype=mx.uint32), cache=cache)
        mx.eval([c.state for c in caches.leaves(cache)])
    # Widths are measured round-robin (w = 1..W, then again), so that a burst of load from other
    # processes lands on every width alike and the curve's *shape* stays right on a busy machine.
    measured = sorted(set(widths or range(1, width + 1)))
    inputs = {w: mx.array([_ctx_tokens(target.vocab_size, w, seed=w)], dtype=mx.uint32) for w in measured}
    times: Dict[int, List[float]] = {w: [] for w in inputs}
    for i in range(warmup + repeats):
        for w, tokens in inputs.items():
            rnd = caches.begin_round(cache, replay=lambda n, t=tokens: target(t[:, :n], cache))
            t0 = time.perf_counter()
            logits, _ = target(tokens, cache, (), record=rnd.captured)
            mx.eval(logits)
            dt = time.perf_counter() - t0
            caches.end_round(cache, rnd, appended=w, keep=0)
            if i >= warmup:
                times[w].append(dt)
        if progress and i >= warmup:
            progress.update(1, f"verify pass {i - warmup + 1}/{repeats}: T(1)={times[measured[0]][-1] * 1e3:.1f} ms")
    return interpolate({w: statistics.median(v) for w, v in times.items()}, width)


def measure_draft_curve(
    build: Build,
    width: int = 8,
    repeats: int = 2,
    prompt: Optional[List[int]] = None,
    progress: Optional[Progress] = None,
    lengths: Optional[Sequence[int]] = None,
) -> List[float]:
    """Median seconds of ``propose(ctx, k)`` inside real rounds of one generation with our loop
    (greedy), for ``k = 0..width``, with a proposer from ``build()`` (the caller decides which
    strategy and drafter; nothing is resolved here). The rounds cycle through ``lengths`` (default
    ``1..width``) ``repeats`` times after one warm-up round; lengths not measured (or never reached,
    as when lookup finds nothing) are interpolated from those that were."""
    target, proposer = build()
    prompt = [t % target.vocab_size for t in (prompt or _ctx_tokens(10**9, 64, seed=7))]
    schedule = [width] + [k for _ in range(repeats) for k in (lengths or range(1, width + 1))]
    stats = SpecStats()
    plan = iter(schedule)

    def draft_length(_stats, cap):
        if progress and _stats.rounds:
            progress.update(1, f"draft k={_stats.rounds[-1].proposed}")
        return min(next(plan, 0), cap)

    tokens = speculative_generate_step(mx.array(prompt), target, proposer, greedy.accept, num_draft_tokens=width,
                                       max_tokens=-1, sampling=Sampling.create(), stats=stats,
                                       draft_length=draft_length)
    for _ in tokens:
        if len(stats.rounds) > len(schedule):
            break
    tokens.close()
    by_k: Dict[int, List[float]] = {}
    for r in stats.rounds[1 : len(schedule)]:  # the first round pays for the drafter's prefill
        if r.proposed > 0:
            by_k.setdefault(r.proposed, []).append(r.draft_time)
    med = {k: statistics.median(v) for k, v in by_k.items()}
    if not med:
        return [0.0] * (width + 1)
    return [0.0] + interpolate(med, width)


@dataclass
class Calibration:
    key: dict
    curve: CostCurve
    measured_at: float = field(default_factory=time.time)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"key": self.key, "measured_at": self.measured_at, "seconds": self.seconds, **self.curve.as_dict()}


def calibrate(
    model: nn.Module,
    *,
    name: Optional[str] = None,
    draft_model: Any = None,
    strategy: Optional[str] = None,
    build: Optional[Build] = None,
    width: int = 16,
    draft_width: int = 8,
    context: int = 256,
    repeats: int = 5,
    use_cache: bool = True,
    progress: bool = True,
    quick: bool = False,
    target: Optional[TargetAdapter] = None,
) -> Calibration:
    """Measure (or load from the cache) the verify curve and the drafter's cost. ``strategy`` and
    ``draft_model`` name the drafter in the cache key; ``build`` makes the proposers that are timed
    (:func:`~.generate.proposer_factory`; required with a ``strategy``). ``quick``: measure only
    :func:`quick_points` of each curve and interpolate the rest (seconds, not minutes)."""
    if strategy and build is None:
        raise ValueError("calibrate: timing a drafter needs build= (e.g. generate.proposer_factory(...))")
    drafter = f"{strategy or 'none'}:{drafter_id(draft_model)}" if draft_model is not None else (strategy or "none")
    key = cache_key(model, name, drafter, context)
    key["width"], key["draft_width"] = width, (draft_width if strategy else 0)
    key["quick"] = bool(quick)
    path = cache_path(key)
    if use_cache and path.is_file():
        try:
            d = json.loads(path.read_text())
            if d.get("key") == key:
                return Calibration(key, CostCurve.from_dict(d), d.get("measured_at", 0.0), d.get("seconds", 0.0))
        except (ValueError, KeyError):
            pass
    t0 = time.perf_counter()
    widths = quick_points(width) if quick else None
    lengths = quick_points(draft_width) if quick else list(range(1, draft_width + 1))
    draft_repeats = 2
    bar = Progress(repeats + (1 + draft_repeats * len(lengths) if strategy else 0), "calibrate", enabled=progress)
    try:
        verify = measure_verify_curve(model, width, context, repeats, progress=bar, widths=widths, target=target)
        draft = [0.0]
        if strategy:
            draft = measure_draft_curve(build, draft_width, draft_repeats, progress=bar, lengths=lengths)
    finally:
        bar.close()
    cal = Calibration(key, CostCurve(verify, draft), seconds=time.perf_counter() - t0)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cal.as_dict(), indent=1))
        tmp.replace(path)
    return cal


def cached_or_quick_curve(model, draft_model=None, strategy=None, width: int = 8, progress: Optional[bool] = None,
                          build: Optional[Build] = None, target: Optional[TargetAdapter] = None) -> CostCurve:
    """For ``--num-draft-tokens auto`` without an explicit curve: the cached calibration, or a
    quick one (a few widths and draft lengths, 3 repeats, 128-token context) measured now, with a
    progress bar on a terminal (``progress``: force it on or off), and cached."""
    show = sys.stderr.isatty() if progress is None else progress
    return calibrate(model, draft_model=draft_model, strategy=strategy, build=build, width=width + 1,
                     draft_width=width, context=128, repeats=3, progress=show, quick=True, target=target).curve
