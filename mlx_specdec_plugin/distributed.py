"""Speculative decoding over a target sharded across processes (``mlx.launch``, mlx.distributed).

Every rank of the group runs the same generation loop in lockstep: each target forward is a
collective (the sharded layers all-reduce inside it), so every rank must verify the same tokens in
the same rounds. That is arranged by **rank 0 deciding and broadcasting**:

- the drafter runs on rank 0 only; its draft (token ids, tree parents) is broadcast before the
  verify forward (:class:`LockstepProposer`);
- rank 0's acceptor decides; its verdict (accepted count, next token, accepted path) is broadcast
  after it (:func:`lockstep_acceptor`);
- a per-round draft length chosen from timings (``num_draft_tokens="auto"``) is rank 0's too
  (:func:`lockstep_draft_length`);
- a round that drafts nothing goes through the same propose -> verify -> accept path
  (``lockstep = True`` turns off the loop's pipelined plain step, whose token each rank would draw
  on its own).

Exactness: rank 0 runs exactly the single-process algorithm on the target's logits (the sharded
forward computes the same function; in tensor parallel the residual stream, hence the logits and
every tapped hidden state, is all-reduced and replicated on every rank), with rank 0's own random
state; the other ranks only replay its decisions. The emitted tokens are therefore distributed as
single-process speculative decoding emits them, which is the target's distribution. No rank needs
the same seed, and no rank's floating-point result has to be bit-identical to another's.

A broadcast is an ``all_sum`` of an int32 array that is zero on every rank but 0 (mlx.distributed
has no broadcast; mlx-lm's server does the same). Faults: :func:`check_same` compares a digest of
what each rank loaded and was asked (``all_gather``) and raises one line naming the ranks that
differ; a lost peer (mlx's ``RuntimeError``) becomes a :class:`DistributedError`; a
:class:`Watchdog` ends a rank that waits on its peers longer than the timeout, with one line,
instead of hanging.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import mlx.core as mx
import mlx.nn as nn

from .contract import Draft, DraftContext, Verdict

DEFAULT_TIMEOUT_S = 300.0  # a rank that waits on its peers longer than this ends with one line
TIMEOUT_ENV = "MLX_SPECDEC_DIST_TIMEOUT"
WATCHDOG_EXIT = 75  # the exit status of a rank the watchdog ends


class DistributedError(RuntimeError):
    """A fault of the process group (a mismatch across ranks, a lost peer): one line."""


def active_group(group: Any = None) -> Optional[mx.distributed.Group]:
    """The group to run in lockstep with, or ``None`` for a single process. ``group``: a group,
    ``False`` (never distributed), or ``None`` (mlx.distributed's group when it has > 1 rank)."""
    if group is False:
        return None
    if group is None:
        if not mx.distributed.is_available():
            return None
        group = mx.distributed.init()
    return group if group.size() > 1 else None


def is_leader(group: Optional[mx.distributed.Group] = None) -> bool:
    """Rank 0 of the active group, or a single process: the one that prints."""
    group = active_group(group)
    return group is None or group.rank() == 0


def broadcast_ints(values: Optional[Sequence[int]], size: int, group: mx.distributed.Group) -> list:
    """Rank 0's ``values`` (``size`` int32s; ignored elsewhere) on every rank."""
    if group.rank() == 0:
        if len(values) != size:
            raise ValueError(f"broadcast of {len(values)} values, {size} expected")
        local = mx.array(list(values), dtype=mx.int32)
    else:
        local = mx.zeros((size,), dtype=mx.int32)
    out = mx.distributed.all_sum(local, group=group, stream=mx.cpu)
    return _collect(out).tolist()


def _collect(array: mx.array) -> mx.array:
    """Evaluate a collective; a lost peer becomes one :class:`DistributedError` line."""
    try:
        mx.eval(array)
    except RuntimeError as e:
        raise DistributedError(f"the process group failed: {str(e).strip().splitlines()[-1]}") from None
    Watchdog.progress()
    return array


class LockstepProposer:
    """Rank 0 proposes and broadcasts; other ranks receive (their drafter stays idle).

    Wraps the strategy's proposer (built on every rank, so that every rank checks the drafter
    against its shard of the target). ``tap_layers`` and ``drafts_trees`` are the inner
    proposer's on every rank, so every rank runs the same target forward."""

    lockstep = True

    def __init__(self, inner: Any, group: mx.distributed.Group):
        self.inner = inner
        self.group = group
        self.leader = group.rank() == 0
        self.tap_layers = tuple(getattr(inner, "tap_layers", ()) or ())

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        Watchdog.progress()
        if self.leader:
            self.inner.extend(tokens, hidden)

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        """Packed as ``[g, tokens (max_tokens), parents + 1 (max_tokens)]``; a chain's parents are
        sent as zeros and come back as ``None``."""
        n = int(max_tokens)
        packed = None
        draft = None
        if self.leader:
            draft = self.inner.propose(ctx, n)
            tokens = draft.tokens.tolist()
            g = len(tokens)
            parents = [p + 1 for p in draft.parents] if draft.parents is not None else [0] * g
            tree = 1 if draft.parents is not None else 0
            packed = [g, tree] + tokens + [0] * (n - g) + parents + [0] * (n - g)
        got = broadcast_ints(packed, 2 + 2 * n, self.group)
        if self.leader:
            return draft
        g, tree = got[0], got[1]
        tokens = mx.array(got[2 : 2 + g], dtype=mx.uint32)
        parents = tuple(p - 1 for p in got[2 + n : 2 + n + g]) if tree else None
        return Draft(tokens, None, True, parents)


def lockstep_acceptor(accept: Callable[[Draft, Any], Verdict], group: mx.distributed.Group):
    """``accept`` decided on rank 0 and broadcast: ``[accepted, next_token, has_path, path...]``.
    The other ranks evaluate the verify logits first, so that every rank meets the forward's
    collectives before the verdict's, in the same order."""
    leader = group.rank() == 0

    def lockstep_accept(draft: Draft, scores) -> Verdict:
        g = len(draft)
        packed = None
        verdict = None
        if leader:
            verdict = accept(draft, scores)
            path = list(verdict.path) if verdict.path is not None else []
            packed = [verdict.accepted, verdict.next_token, int(verdict.path is not None)] + path + \
                [0] * (g - len(path))
        else:  # run the verify forward (its collectives) before the verdict's, as rank 0's acceptor does
            mx.eval(scores.processed if scores.processed is not None else scores.logprobs)
        got = broadcast_ints(packed, 3 + g, group)
        if leader:
            return verdict
        accepted, token, has_path = got[0], got[1], got[2]
        return Verdict(accepted, token, tuple(got[3 : 3 + accepted]) if has_path else None)

    return lockstep_accept


def lockstep_draft_length(draft_length: Optional[Callable], group: mx.distributed.Group) -> Optional[Callable]:
    """A per-round draft-length rule decided on rank 0 (it reads timings) and broadcast."""
    if draft_length is None or getattr(draft_length, "same_on_every_rank", False):
        return draft_length

    def choose(stats, cap: int) -> int:
        mine = [int(draft_length(stats, cap))] if group.rank() == 0 else None
        return broadcast_ints(mine, 1, group)[0]

    return choose


def digest(*parts: Any) -> bytes:
    """A 32-byte digest of JSON-able parts (configs, prompts, settings)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.digest()


def folder_digest(folder: str, sample_bytes: int = 1 << 20) -> bytes:
    """What identifies a model folder without reading all of it: ``config.json``, every
    ``*.safetensors`` file's size and header (tensor names, dtypes, shapes, offsets) and its first and
    last ``sample_bytes`` bytes."""
    h = hashlib.sha256()
    root = Path(folder)
    h.update((root / "config.json").read_bytes())
    for path in sorted(root.glob("*.safetensors")):
        size = path.stat().st_size
        h.update(path.name.encode() + struct.pack("<Q", size))
        with open(path, "rb") as f:
            head = f.read(8)
            h.update(head)
            if len(head) == 8:
                h.update(f.read(min(struct.unpack("<Q", head)[0], size)))
            f.seek(0)
            h.update(f.read(sample_bytes))
            f.seek(max(0, size - sample_bytes))
            h.update(f.read(sample_bytes))
    return h.digest()


def check_same(what: str, mine: bytes, group: mx.distributed.Group) -> None:
    """Raise one :class:`DistributedError` line on every rank unless every rank's ``mine`` (a
    32-byte digest of ``what``) is rank 0's."""
    local = mx.array(list(mine), dtype=mx.int32)
    everyone = _collect(mx.distributed.all_gather(local, group=group, stream=mx.cpu)).reshape(group.size(), -1)
    ref = everyone[0]
    differ = [r for r in range(1, group.size()) if not bool(mx.array_equal(everyone[r], ref).item())]
    if differ:
        ranks = ", ".join(str(r) for r in differ)
        raise DistributedError(f"{what} differ across ranks: rank{'s' if len(differ) > 1 else ''} {ranks} "
                               f"{'have' if len(differ) > 1 else 'has'} different {what} than rank 0")


def timeout_s(value: Optional[float] = None) -> float:
    """The watchdog timeout: ``value``, else ``$MLX_SPECDEC_DIST_TIMEOUT``, else 300 s."""
    if value is not None:
        return float(value)
    return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)


class Watchdog:
    """Ends this process with one stderr line when no collective completed for ``timeout`` seconds
    while armed (a peer died or hangs: mlx's ring can wait forever on a dead socket). One per
    process; :meth:`progress` is called by every completed broadcast and every proposer extend."""

    _lock = threading.Lock()
    _last = None  # time.monotonic() of the last progress while armed, else None
    _timeout = DEFAULT_TIMEOUT_S
    _rank = 0
    _thread = None

    @classmethod
    def arm(cls, rank: int, timeout: float) -> None:
        with cls._lock:
            cls._rank, cls._timeout, cls._last = rank, float(timeout), time.monotonic()
            if cls._thread is None:
                cls._thread = threading.Thread(target=cls._watch, name="mlx-specdec-watchdog", daemon=True)
                cls._thread.start()

    @classmethod
    def disarm(cls) -> None:
        with cls._lock:
            cls._last = None

    @classmethod
    def progress(cls) -> None:
        if cls._last is not None:
            cls._last = time.monotonic()

    @classmethod
    def _watch(cls) -> None:
        while True:
            time.sleep(min(1.0, cls._timeout / 4))
            last = cls._last
            if last is not None and time.monotonic() - last > cls._timeout:
                print(f"[mlx-specdec] error: rank {cls._rank}: no progress from the process group in "
                      f"{cls._timeout:g} s (a rank died or is stuck); exiting", file=sys.stderr, flush=True)
                os._exit(WATCHDOG_EXIT)


def sharded_module_names(module: Any) -> list:
    """Names of the submodules of ``module`` that are mlx.nn's distributed (sharded) layers."""

    kinds = tuple(getattr(nn, k) for k in ("AllToShardedLinear", "ShardedToAllLinear", "QuantizedAllToShardedLinear",
                                           "QuantizedShardedToAllLinear") if hasattr(nn, k))
    if not kinds or not hasattr(module, "named_modules"):
        return []
    return [name for name, m in module.named_modules() if isinstance(m, kinds)]


def check_drafter_for_shards(model: Any, draft_model: Any) -> None:
    """Refuse, in one line, a drafter that cannot run on rank 0 alone next to a sharded target:
    a DSpark/DFlash drafter (a folder) next to pipeline stages (the taps are spread over the ranks),
    a draft model that is itself sharded (its forward would wait on the other ranks), or a
    DSpark/DFlash drafter (given as a folder) over a target whose embedding or output head is
    sharded (such a drafter reads them)."""
    if draft_model is None:
        return
    if pipeline_stage(model) is not None and not hasattr(draft_model, "named_modules"):
        raise ValueError("this drafter reads the target's hidden states, which a pipeline-sharded target spreads "
                         "over its ranks (not supported); use a draft model or lookup, or shard the target "
                         "tensor-parallel")
    if hasattr(draft_model, "named_modules"):
        names = sharded_module_names(draft_model)
        if names:
            raise ValueError(f"the draft model is sharded ({names[0]}, ...): it runs on rank 0 alone, so load it "
                             "unsharded (mlx_lm.load, not sharded_load)")
        return
    inner = getattr(model, "language_model", model)
    shared = [n for n in sharded_module_names(inner) if n.split(".")[-1] in ("embed_tokens", "lm_head")
              or ".embed_tokens" in n or n.startswith("lm_head")]
    if shared:
        raise ValueError(f"this drafter reads the target's embedding and head, which are sharded in this target "
                         f"({shared[0]}); use a draft model or lookup")


class NoDrafts:
    """The draft-length rule of plain decoding under a process group: every round drafts nothing, so
    plain decoding runs through the same lockstep propose -> verify -> accept path (rank 0 draws every
    token and broadcasts it: no rank needs another's seed or bit-identical logits). The same on every
    rank without a broadcast (:func:`lockstep_draft_length` leaves it alone)."""

    same_on_every_rank = True

    def __call__(self, stats, cap: int) -> int:
        return 0


def broadcast_bytes(data: Optional[bytes], group: mx.distributed.Group) -> bytes:
    """Rank 0's ``data`` (ignored elsewhere) on every rank: its length, then its bytes (uint8 all_sum)."""
    n = broadcast_ints([len(data)] if group.rank() == 0 else None, 1, group)[0]
    if n == 0:
        return b""
    if group.rank() == 0:
        local = mx.array(memoryview(data), dtype=mx.uint8)
    else:
        local = mx.zeros((n,), dtype=mx.uint8)
    return bytes(memoryview(_collect(mx.distributed.all_sum(local, group=group, stream=mx.cpu))))


def load_sharded(model_path: str, draft_path: Optional[str], group: mx.distributed.Group, *,
                 pipeline: bool = False, tokenizer_config: Optional[dict] = None, trust_remote_code: bool = False):
    """The target sharded over ``group`` with mlx-lm's ``sharded_load``: tensor parallel
    (``model.shard(group)``) or, with ``pipeline``, pipeline parallel (``model.model.pipeline(group)``,
    each rank a slice of the layers). First every rank checks that every rank has the same model files
    (``--model`` and the drafter). Raises one line: :class:`DistributedError` for a mismatch,
    ``ValueError`` for a model mlx-lm cannot shard that way."""
    from mlx_lm.utils import load_model, sharded_load

    ours = folder_digest(model_path) + (folder_digest(draft_path) if draft_path else b"")
    check_same("model files (--model / --draft-model)", hashlib.sha256(ours).digest(), group)
    probe, _ = load_model(Path(model_path), lazy=True, strict=False)
    if pipeline:
        if not hasattr(getattr(probe, "model", None), "pipeline"):
            raise ValueError(f"--model {model_path}: this model type ({getattr(probe, 'model_type', '?')}) has no "
                             "pipeline sharding in mlx-lm; drop --pipeline (tensor parallel)")
        if not (Path(model_path) / "model.safetensors.index.json").exists():
            raise ValueError(f"--model {model_path}: pipeline sharding needs model.safetensors.index.json "
                             "(mlx-lm's loader reads it to pick each rank's files)")
    elif not hasattr(probe, "shard"):
        hint = "; try --pipeline" if hasattr(getattr(probe, "model", None), "pipeline") else ""
        raise ValueError(f"--model {model_path}: this model type ({getattr(probe, 'model_type', '?')}) has no "
                         f"tensor-parallel sharding in mlx-lm{hint}")
    else:
        check_tensor_split(json.loads((Path(model_path) / "config.json").read_text()), group.size(), model_path)
    del probe
    return sharded_load(model_path, pipeline_group=group if pipeline else None,
                        tensor_group=None if pipeline else group,
                        tokenizer_config=tokenizer_config or {"trust_remote_code": trust_remote_code},
                        trust_remote_code=trust_remote_code)


def check_tensor_split(config: dict, ranks: int, name: str = "the model") -> None:
    """Refuse, in one line, a tensor-parallel split mlx-lm's ``shard`` would get wrong: attention heads
    (query or key/value) or MLP width not divisible by the number of ranks (e.g. SmolLM2-135M's 9 query
    and 3 key/value heads on 2 ranks: each rank would hold 4.5 heads)."""
    text = config.get("text_config", config)
    bad = [f"{k} = {text[k]}" for k in ("num_attention_heads", "num_key_value_heads", "intermediate_size")
           if isinstance(text.get(k), int) and text[k] % ranks]
    if bad:
        raise ValueError(f"--model {name}: {', '.join(bad)} not divisible by {ranks} ranks, so it cannot be "
                         f"split tensor-parallel over {ranks}; use a number of ranks that divides it")


def pipeline_stage(model: Any) -> Optional[tuple]:
    """``(rank, size)`` of a target split into pipeline stages (``model.model.pipeline(group)``), else ``None``."""
    inner = getattr(getattr(model, "language_model", model), "model", None)
    size = getattr(inner, "pipeline_size", 1)
    return (int(getattr(inner, "pipeline_rank", 0)), int(size)) if size and size > 1 else None
