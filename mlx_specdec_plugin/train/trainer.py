"""``mlx-specdec train``: distil a DSpark or DFlash drafter for any mlx-lm target, on MLX.

Self-distillation: the target is teacher-forced on text (``--data`` text/jsonl/folder) or first
generates responses to prompts (``--generate``), and the hidden states at the drafter's
``target_layer_ids`` plus the target's own next-token distributions are collected on the fly (a
forward without grad per batch; optionally kept in RAM within ``--memory-budget`` or on disk in
``--feature-cache`` so a second drafter reuses them). The target, its embedding and its LM head are
frozen; only the drafter's own weights train.

One training step samples ``--num-anchors`` random anchor positions per sequence and builds one
block per anchor exactly as the runtime proposer does (:mod:`.strategies.dflash`): context = the
projected target features of positions ``< anchor`` (the anchor token is not yet verified), block =
``[anchor] + masks`` at positions ``anchor, anchor + 1, ...``, bidirectional inside the block
(causal when the config says so). Proposal ``k`` (1-based) is supervised with the text token at
``anchor + k`` and the target's distribution at that position.

* **DFlash** (z-lab / DeepSpec ``config/dflash``): ``[anchor] + g`` masks, the anchor slot's output
  dropped; block-wise cross-entropy with position weights ``exp(-(k - 1) / gamma)``.
* **DSpark** (DeepSpec ``modeling/dspark``): ``[anchor] + (g - 1)`` masks, the anchor slot predicts
  proposal 1; logits = backbone + rank-r Markov bias ``W2 W1[x_{k-1}]`` (teacher-forced previous
  token); loss = ``0.1 CE + 0.9 L1 + 1.0 BCE(confidence)`` with the same position weights, where
  ``L1 = ||p_d - p_t||_1`` (= 2 TV, as DeepSpec's ``loss.py`` computes it) and the confidence head is
  trained against the analytic acceptance ``1 - 1/2 ||p_d - p_t||_1`` (detached).

The drafter is written in the published on-disk layouts :func:`~.drafters.load_drafter` and
mlx-vlm read: DSpark in the ``dflash_config`` layout (``projector_type: "dspark"``, target-bound
embedding/head; ``layout="deepspec"`` writes DeepSpec's flat layout with embed/head copies), DFlash
in z-lab's layout (``block_size`` = anchor + proposals). Resumable checkpoints live in
``OUT/checkpoint`` (``drafter/``, ``optimizer.safetensors``, ``trainer_state.json``); at the end a held-out evaluation reports the
acceptance per draft position and tau at T=0 and T=1 (``OUT/eval.json``).

Nothing here is backend-specific: the same code runs on Metal, CUDA (mlx-cuda) and the CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm import load
from mlx_lm.generate import batch_generate
from mlx_lm.sample_utils import make_sampler

from ..drafters import (
    BlockDrafterModel,
    Drafter,
    drafter_embed_scale,
    load_drafter,
    normalize_config,
    save_drafter,
    validate_against_target,
)
from ..target import FAMILIES, TargetAdapter, lm_head

PathLike = Union[str, Path]
TEXT_SUFFIXES = (".txt", ".md", ".py", ".rst", ".c", ".h", ".js", ".ts", ".json", ".html", ".css", ".sh", ".toml")


# --------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """Everything a run needs besides the target and the data (saved in ``OUT/train_config.json``)."""

    strategy: str = "dspark"  # dspark | dflash
    block_size: int = 7  # proposals per block (the anchor excluded), both kinds
    num_draft_layers: int = 1
    target_layer_ids: Optional[Tuple[int, ...]] = None  # default: spread over the target (see default_taps)
    num_taps: int = 3
    intermediate_size: Optional[int] = None  # default: the target's
    markov_rank: int = 64  # DSpark; a multiple of 64 keeps it quantizable with group size 64
    confidence_head: bool = True  # DSpark
    mask_token_id: Optional[int] = None  # default: the last vocabulary id
    layout: str = "dflash_config"  # DSpark only: dflash_config (mlx-vlm's) | deepspec (embed/head copies)
    # data
    seq_len: int = 256
    batch_size: int = 2  # sequences per step
    num_anchors: int = 16  # blocks per sequence per step
    eval_fraction: float = 0.05
    max_sequences: Optional[int] = None
    # optimisation
    steps: int = 200
    lr: float = 6e-4
    warmup: float = 0.04
    lr_schedule: str = "cosine"  # after warm-up: cosine (to 5% of lr) | linear (to 0) | constant
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    loss_decay_gamma: Optional[float] = None  # default 4 (DeepSpec block 7), 7 for blocks >= 15 (z-lab b16)
    ce_weight: Optional[float] = None  # default 0.1 (dspark) / 1.0 (dflash)
    tv_weight: Optional[float] = None  # default 0.9 (dspark) / 0.0 (dflash)
    confidence_weight: float = 1.0
    seed: int = 0
    # runtime
    save_every: int = 100
    log_every: int = 10
    memory_budget_gb: Optional[float] = None
    eval_blocks: int = 256
    time_budget_s: Optional[float] = None  # train for about this long: steps = min(steps, budget / measured step time)
    dtype: str = "float32"  # drafter weights while training
    target_dtype: Optional[str] = None  # cast the frozen target (e.g. bfloat16: ~2x faster features on CPU)

    def resolved(self) -> "TrainConfig":
        if self.strategy not in ("dspark", "dflash"):
            raise ValueError(f"strategy must be dspark or dflash, got {self.strategy!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        c = replace(self)
        if c.loss_decay_gamma is None:
            c.loss_decay_gamma = 7.0 if c.block_size >= 15 else 4.0
        dspark = c.strategy == "dspark"
        if c.ce_weight is None:
            c.ce_weight = 0.1 if dspark else 1.0
        if c.tv_weight is None:
            c.tv_weight = 0.9 if dspark else 0.0
        if c.block_size < 1 or c.seq_len < c.block_size + 2:
            raise ValueError(f"block_size {c.block_size} needs seq_len >= block_size + 2 (got {c.seq_len})")
        if dspark and c.markov_rank < 1:
            raise ValueError("DSpark needs markov_rank >= 1")
        if c.target_layer_ids is not None:
            c.target_layer_ids = tuple(int(t) for t in c.target_layer_ids)
        return c


def default_taps(num_target_layers: int, num_taps: int) -> Tuple[int, ...]:
    """z-lab's ``build_target_layer_ids``: ``num_taps`` layers spread from 1 to ``n - 3`` (the whole
    stack for shallow targets)."""
    n = num_target_layers
    if num_taps >= n:
        return tuple(range(n))
    if num_taps == 1:
        return (n // 2,)
    start, end = (1, n - 3) if n - 3 - 1 + 1 >= num_taps else (0, n - 1)
    span = end - start
    return tuple(sorted({int(round(start + i * span / (num_taps - 1))) for i in range(num_taps)}))


def _target_config(model: nn.Module) -> dict:
    args = getattr(model, "args", None)
    raw = dict(vars(args)) if args is not None else {}
    return {k: v for k, v in raw.items() if isinstance(v, (int, float, str, bool, list, dict, type(None)))}


def default_mask_token_id(vocab_size: int, tokenizer: Any = None) -> int:
    """The last vocabulary id that is not EOS/BOS/PAD (padded vocabularies: an unused id)."""
    special = set()
    for name in ("eos_token_id", "bos_token_id", "pad_token_id"):
        v = getattr(tokenizer, name, None)
        if isinstance(v, int):
            special.add(v)
    special |= set(getattr(tokenizer, "eos_token_ids", None) or ())
    i = vocab_size - 1
    while i in special and i > 0:
        i -= 1
    return i


def drafter_raw_config(target_model: nn.Module, c: TrainConfig) -> dict:
    """The checkpoint ``config.json`` for a new drafter of ``c.strategy`` bound to ``target_model``."""
    t = TargetAdapter(target_model)
    tcfg = _target_config(target_model)
    H = t.hidden_size or int(target_model.model.embed_tokens.weight.shape[1])
    heads = int(tcfg.get("num_attention_heads") or max(1, H // 64))
    kv = int(tcfg.get("num_key_value_heads") or heads)
    head_dim = int(tcfg.get("head_dim") or H // heads)
    V = t.vocab_size
    taps = list(c.target_layer_ids or default_taps(t.num_layers, c.num_taps))
    mask = V - 1 if c.mask_token_id is None else int(c.mask_token_id)
    rope_theta = float(tcfg.get("rope_theta", 10000.0))
    backbone = {
        "hidden_size": H,
        "intermediate_size": int(c.intermediate_size or tcfg.get("intermediate_size") or 3 * H),
        "num_hidden_layers": c.num_draft_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": float(tcfg.get("rms_norm_eps", 1e-6)),
        "vocab_size": V,
        "max_position_embeddings": int(tcfg.get("max_position_embeddings", 32768)),
        "rope_theta": rope_theta,
        "attention_bias": False,
        "layer_types": ["full_attention"] * c.num_draft_layers,
        "tie_word_embeddings": False,
    }
    if tcfg.get("rope_scaling"):
        backbone["rope_scaling"] = tcfg["rope_scaling"]
    if tcfg.get("final_logit_softcapping"):
        backbone["final_logit_softcapping"] = tcfg["final_logit_softcapping"]
    trained = {"trained_with": "mlx-specdec train", "dtype": "float32"}
    if c.strategy == "dflash":
        return {
            "architectures": ["DFlashDraftModel"],
            "model_type": "qwen3",
            **backbone,
            "num_target_layers": t.num_layers,
            "block_size": c.block_size + 1,  # z-lab counts the anchor
            "dflash_config": {"mask_token_id": mask, "target_layer_ids": taps},
            **trained,
        }
    keys = {
        "num_target_layers": t.num_layers,
        "block_size": c.block_size,
        "mask_token_id": mask,
        "target_layer_ids": taps,
        "num_anchors": c.num_anchors,
        "enable_confidence_head": bool(c.confidence_head),
        "confidence_head_with_markov": True,
        "markov_rank": c.markov_rank,
        "markov_head_type": "vanilla",
    }
    if c.layout == "deepspec":
        raw = {**tcfg, **backbone, **keys, "architectures": ["Qwen3DSparkModel"], **trained}
        raw["model_type"] = t.model_type
        raw.pop("model_file", None)
        raw.pop("auto_map", None)
        return raw
    if c.layout != "dflash_config":
        raise ValueError(f"layout must be dflash_config or deepspec, got {c.layout!r}")
    return {
        "architectures": ["Qwen3DSparkModel"],
        "model_type": "qwen3",
        **backbone,
        "dflash_config": {"projector_type": "dspark", **keys},
        **trained,
    }


FROZEN_COPIES = ("embed_tokens", "lm_head")  # the target's, copied in the DeepSpec layout; never trained


def new_drafter(target_model: nn.Module, c: TrainConfig) -> Drafter:
    """A freshly initialised drafter (random backbone, zero Markov bias) bound to ``target_model``."""
    c = c.resolved()
    raw = drafter_raw_config(target_model, c)
    config = normalize_config(raw)
    validate_against_target(config, target_model)
    own = c.strategy == "dspark" and c.layout == "deepspec"
    mx.random.seed(c.seed)
    module = BlockDrafterModel(config, own_embed=own, own_head=own)
    if own:
        inner = target_model.model
        module.embed_tokens.weight = inner.embed_tokens.weight.astype(mx.float32)
        head = getattr(target_model, "lm_head", None)
        tied = getattr(getattr(target_model, "args", None), "tie_word_embeddings", head is None)
        w = inner.embed_tokens.weight if tied or head is None else head.weight
        module.lm_head.weight = w.astype(mx.float32)
    if "markov_head" in module:
        module.markov_head.markov_w2.weight = mx.zeros_like(module.markov_head.markov_w2.weight)
        module.markov_head.markov_w1.weight = mx.random.normal(module.markov_head.markov_w1.weight.shape) * 0.02
    mx.eval(module.parameters())
    return Drafter(config, module, target_model, None, drafter_embed_scale(target_model))


def write_drafter(drafter: Drafter, path: PathLike, dtype: Optional[mx.Dtype] = None) -> Path:
    """Write ``drafter`` as a checkpoint folder (config.json + model.safetensors) in its layout;
    ``dtype`` casts float weights (e.g. ``mx.bfloat16`` for a smaller file)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    raw = dict(drafter.config.raw)
    if drafter.config.quantization:
        raw["quantization"] = drafter.config.quantization
    weights = dict(tree_flatten(drafter.module.parameters()))
    if dtype is not None:
        weights = {k: v.astype(dtype) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
        raw["dtype"] = str(dtype).split(".")[-1]
    if drafter.config.layout == "deepspec":  # HF save_pretrained keeps the backbone under model.
        weights = {
            (k if k.startswith(("lm_head", "markov_head", "confidence_head")) else "model." + k): v
            for k, v in weights.items()
        }
    tmp = path / "model.safetensors.tmp.safetensors"
    mx.save_safetensors(str(tmp), weights)
    tmp.replace(path / "model.safetensors")
    (path / "config.json").write_text(json.dumps(raw, indent=1))
    return path


# --------------------------------------------------------------------------- data


@dataclass
class Sequence_:
    tokens: List[int]
    loss_mask: Optional[List[int]] = None  # 1 where a token may be supervised (None: all)


def read_records(path: PathLike) -> List[dict]:
    """``--data``: a .jsonl file (``text`` | ``prompt`` [+ ``response``] | ``messages`` per line), a
    text file (one document), or a folder (every text/source file inside, one document each)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        if not files:
            raise ValueError(f"--data {path}: no text files ({', '.join(TEXT_SUFFIXES)}) inside")
        return [{"text": p.read_text(errors="replace")} for p in files]
    if not path.is_file():
        raise ValueError(f"--data {path}: no such file or folder")
    if path.suffix == ".jsonl":
        out = []
        for i, line in enumerate(path.read_text().splitlines()):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"--data {path}:{i + 1}: not JSON ({e})") from None
            if isinstance(rec, str):
                rec = {"text": rec}
            if not any(k in rec for k in ("text", "prompt", "messages", "prompt_ids")):
                raise ValueError(f"--data {path}:{i + 1}: expected a 'text', 'prompt', 'messages' or 'prompt_ids' key")
            out.append(rec)
        return out
    return [{"text": path.read_text(errors="replace")}]


def _chat(tokenizer, messages: List[dict], add_generation_prompt: bool) -> List[int]:
    if getattr(tokenizer, "chat_template", None) or getattr(tokenizer, "has_chat_template", False):
        return list(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt))
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return list(tokenizer.encode(text))


def generate_responses(model, tokenizer, prompts: List[str], max_tokens: int, temp: float = 0.0,
                       seed: int = 0, progress: bool = True, batch: int = 16, done: int = 0,
                       total: Optional[int] = None) -> List[dict]:
    """Self-distillation data: the target's own responses (chat template) to ``prompts``, generated
    ``batch`` prompts at a time with mlx-lm's ``batch_generate``."""

    mx.random.seed(seed)
    sampler = make_sampler(temp)
    out = []
    t0 = time.time()
    for i in range(0, len(prompts), batch):
        ids = [_chat(tokenizer, [{"role": "user", "content": p}], True) for p in prompts[i : i + batch]]
        res = batch_generate(model, tokenizer, ids, max_tokens=max_tokens, sampler=sampler, return_token_ids=True,
                             completion_batch_size=batch, prefill_batch_size=batch)
        for p_ids, r_ids in zip(ids, res.token_ids):
            out.append({"prompt_ids": p_ids, "response_ids": [int(t) for t in r_ids]})
        if progress:
            n = sum(len(r["response_ids"]) for r in out)
            _status(f"generate {done + len(out)}/{total or len(prompts)} prompts, {n / (time.time() - t0):.1f} tok/s")
    if progress and done + len(out) >= (total or len(prompts)):
        _status(None)
    return out


def build_sequences(records: List[dict], tokenizer, seq_len: int) -> List[Sequence_]:
    """Tokenize records and cut them into windows of ``seq_len`` tokens (the tail window is kept if
    at least a quarter long; shorter sequences are padded to ``seq_len`` in the batch)."""
    out: List[Sequence_] = []
    for rec in records:
        if "prompt_ids" in rec:
            toks = list(rec["prompt_ids"]) + list(rec["response_ids"])
            mask = [0] * len(rec["prompt_ids"]) + [1] * len(rec["response_ids"])
        elif "messages" in rec:
            toks = _chat(tokenizer, rec["messages"], False)
            mask = None
        elif "prompt" in rec and "response" in rec:
            p = _chat(tokenizer, [{"role": "user", "content": rec["prompt"]}], True)
            r = list(tokenizer.encode(rec["response"], add_special_tokens=False)) if hasattr(tokenizer, "encode") else []
            toks, mask = p + r, [0] * len(p) + [1] * len(r)
        elif "text" in rec:
            toks, mask = list(tokenizer.encode(rec["text"])), None
        else:  # a bare prompt without --generate: teacher-force on the templated prompt
            toks, mask = _chat(tokenizer, [{"role": "user", "content": rec["prompt"]}], True), None
        stride = seq_len
        for s in range(0, max(1, len(toks)), stride):
            w = toks[s : s + seq_len]
            if len(w) < max(8, seq_len // 4) and s > 0:
                continue
            if len(w) < 8:
                continue
            m = mask[s : s + seq_len] if mask is not None else None
            if m is not None and sum(m[1:]) == 0:
                continue
            out.append(Sequence_(w, m))
    return out


def split_heldout(seqs: List[Sequence_], fraction: float, seed: int) -> Tuple[List[Sequence_], List[Sequence_]]:
    idx = list(range(len(seqs)))
    random.Random(seed).shuffle(idx)
    n_eval = int(round(len(seqs) * fraction)) if fraction > 0 else 0
    if fraction > 0 and len(seqs) > 1:
        n_eval = max(1, n_eval)
    ev = set(idx[:n_eval])
    return [s for i, s in enumerate(seqs) if i not in ev], [s for i, s in enumerate(seqs) if i in ev]


# --------------------------------------------------------------------------- target features


class TargetFeatures:
    """The target's tapped hidden states and final (normed) hidden states for token batches, with
    an optional RAM cache (bounded by ``budget_bytes``) and disk cache (``cache_dir``)."""

    def __init__(self, target_model: nn.Module, taps: Sequence[int], cache_dir: Optional[PathLike] = None,
                 budget_bytes: Optional[int] = None, key: str = ""):
        self.model = target_model
        self.adapter = TargetAdapter(target_model)
        self.taps = tuple(taps)
        self.adapter.check_taps(self.taps)
        self.family = FAMILIES[self.adapter.model_type]
        self.ram: Dict[int, Tuple[mx.array, mx.array]] = {}
        self.ram_bytes = 0
        self.budget = budget_bytes
        self.cache_dir = Path(cache_dir) / key if cache_dir else None
        if self.cache_dir:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.computed_tokens = 0

    def head(self, h: mx.array) -> mx.array:
        return lm_head(self.model, h)

    def _forward(self, tokens: mx.array) -> Tuple[mx.array, mx.array]:
        cache = self.adapter.make_cache()
        final, tapped = self.family(self.model, tokens, cache, self.taps)
        feats = mx.concatenate(tapped, axis=-1)
        feats, final = mx.stop_gradient(feats), mx.stop_gradient(final)
        return feats, final

    def batch(self, ids: Sequence[int], tokens: mx.array, lengths: Optional[Sequence[int]] = None
              ) -> Tuple[mx.array, mx.array]:
        """Features for sequences ``ids`` (padded to ``tokens`` (B, L); ``lengths`` their true
        lengths): ``(taps (B, L, n*H), final (B, L, H))`` in float32. Rows past a sequence's end are
        zeros when they come from the cache (they are never attended to nor supervised)."""
        B, L = tokens.shape
        lengths = list(lengths) if lengths is not None else [L] * B
        have = {}
        for i, n in zip(ids, lengths):
            entry = self.ram.get(i)
            if entry is None and self.cache_dir and (self.cache_dir / f"{i}.safetensors").is_file():
                d = mx.load(str(self.cache_dir / f"{i}.safetensors"))
                entry = (d["taps"], d["final"])
            if entry is not None and entry[0].shape[0] >= n:
                have[i] = entry
        if len(have) == len(ids):
            def padded(x, n):
                x = x[:n].astype(mx.float32)
                return mx.pad(x, [(0, L - n), (0, 0)]) if n < L else x

            feats = mx.stack([padded(have[i][0], n) for i, n in zip(ids, lengths)])
            final = mx.stack([padded(have[i][1], n) for i, n in zip(ids, lengths)])
            return feats, final
        feats, final = self._forward(tokens)
        mx.eval(feats, final)
        self.computed_tokens += tokens.size
        store_dtype = mx.float16
        for b, (i, n) in enumerate(zip(ids, lengths)):
            entry = None
            if self.budget is not None and self.ram_bytes < self.budget and i not in self.ram:
                entry = (feats[b, :n].astype(store_dtype), final[b, :n].astype(store_dtype))
                mx.eval(entry)
                nbytes = entry[0].nbytes + entry[1].nbytes
                if self.ram_bytes + nbytes <= self.budget:
                    self.ram[i] = entry
                    self.ram_bytes += nbytes
            if self.cache_dir and not (self.cache_dir / f"{i}.safetensors").is_file():
                entry = entry or (feats[b, :n].astype(store_dtype), final[b, :n].astype(store_dtype))
                mx.save_safetensors(str(self.cache_dir / f"{i}.safetensors"), {"taps": entry[0], "final": entry[1]})
        return feats.astype(mx.float32), final.astype(mx.float32)


def feature_key(target_path: str, taps: Sequence[int], seqs: List[Sequence_]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([str(target_path), list(taps)]).encode())
    for s in seqs:
        h.update(b"|" + ",".join(map(str, s.tokens)).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- the training forward


def slots_per_block(drafter: Drafter, g: int) -> int:
    return g if drafter.config.sample_from_anchor else g + 1


def block_hidden(drafter: Drafter, ctx_feats: mx.array, tokens: mx.array, anchors: mx.array, g: int) -> mx.array:
    """Draft hidden states for blocks after ``anchors``, as the runtime proposer computes them.

    ``ctx_feats (B, L, n*H)`` target taps, ``tokens (B, L)``, ``anchors (B, A)`` positions. Returns
    ``(B*A, g, H)``: row k-1 predicts the token at ``anchor + k``. Context rows ``< anchor`` only.
    """
    m = drafter.module
    c = drafter.config
    B, L = tokens.shape
    A = anchors.shape[1]
    S = slots_per_block(drafter, g)
    flat_anchor = anchors.reshape(-1)  # (B*A,)
    owner = mx.repeat(mx.arange(B), A)  # which sequence each block reads
    anchor_tok = mx.take_along_axis(tokens, anchors, axis=1).reshape(-1, 1)
    ids = mx.concatenate([anchor_tok, mx.full((B * A, S - 1), c.mask_token_id, dtype=tokens.dtype)], axis=1)
    x = drafter.embed(ids)  # (BA, S, H)
    h_ctx = m.hidden_norm(m.fc(ctx_feats))  # (B, L, H)

    kpos_ctx = mx.arange(L)[None, :]  # (1, L)
    a = flat_anchor[:, None]
    qpos = a + mx.arange(S)[None, :]  # (BA, S) absolute query positions
    for layer in m.layers:
        attn = layer.self_attn
        window = attn.window
        ctx_ok = kpos_ctx < a  # (BA, L)
        if window is not None:
            ctx_ok = ctx_ok & (kpos_ctx >= a - max(window - 1, 0))
        ctx_ok = mx.broadcast_to(ctx_ok[:, None, :], (B * A, S, L))
        if attn.causal:
            blk_pos = qpos[:, None, :]
            blk_ok = blk_pos <= qpos[:, :, None]
            if window is not None:
                blk_ok = blk_ok & (blk_pos > qpos[:, :, None] - window)
                ctx_ok = ctx_ok & (kpos_ctx[:, None, :] > qpos[:, :, None] - window)
        else:
            blk_ok = mx.ones((B * A, S, S), dtype=mx.bool_)
        mask = mx.concatenate([ctx_ok, blk_ok], axis=-1)[:, None]  # (BA, 1, S, L+S)

        xn = layer.input_layernorm(x)
        q = attn.q_norm(attn.q_proj(xn).reshape(B * A, S, attn.n_heads, -1)).transpose(0, 2, 1, 3)
        q = m.rope(q, offset=flat_anchor)
        kb, vb = attn._kv(xn, flat_anchor, m.rope)
        kc, vc = attn.context_kv(h_ctx, 0, m.rope)  # (B, kv, L, hd)
        k = mx.concatenate([kc[owner], kb], axis=2)
        v = mx.concatenate([vc[owner], vb], axis=2)
        kwargs = {}
        if "attention_sink_bias" in attn:
            kwargs["sinks"] = attn.attention_sink_bias
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=attn.scale, mask=mask, **kwargs)
        h = x + attn.o_proj(o.transpose(0, 2, 1, 3).reshape(B * A, S, -1))
        x = h + layer.mlp(layer.post_attention_layernorm(h))
    out = m.norm(x)
    return out if c.sample_from_anchor else out[:, 1:]


def sample_anchors(key: mx.array, valid: mx.array, A: int) -> mx.array:
    """``A`` anchor positions per row, drawn without replacement among ``valid (B, L)`` (with
    replacement-free fallback: rows with fewer valid positions repeat the first valid ones, masked
    out later by the block validity)."""
    B, L = valid.shape
    scores = mx.random.uniform(shape=(B, L), key=key)
    scores = mx.where(valid, scores, 2.0 + mx.arange(L)[None, :].astype(mx.float32))
    order = mx.argsort(scores, axis=1)[:, :A]
    return mx.sort(order, axis=1)


def block_targets(tokens: mx.array, loss_mask: mx.array, anchors: mx.array, g: int):
    """Labels ``(B*A, g)`` (the token at ``anchor + k``), validity (contiguous prefix inside the
    sequence and the loss mask), the target position ``anchor + k - 1`` and previous tokens."""
    B, L = tokens.shape
    k = mx.arange(1, g + 1)[None, None, :]
    lab_pos = anchors[:, :, None] + k  # (B, A, g)
    inside = lab_pos < L
    safe = mx.minimum(lab_pos, L - 1)
    labels = mx.take_along_axis(tokens[:, None, :].astype(mx.int32), safe.reshape(B, -1)[:, None, :], axis=2)
    labels = labels.reshape(B, -1, g)
    lm = mx.take_along_axis(loss_mask[:, None, :], safe.reshape(B, -1)[:, None, :], axis=2).reshape(B, -1, g)
    valid = (inside & (lm > 0)).astype(mx.int32)  # the anchor itself may be a prompt token
    valid = mx.cumprod(valid, axis=-1).astype(mx.float32)
    anchor_tok = mx.take_along_axis(tokens.astype(mx.int32), anchors, axis=1)[:, :, None]
    prev = mx.concatenate([anchor_tok, labels[:, :, :-1]], axis=-1)
    return labels.reshape(-1, g), valid.reshape(-1, g), (safe - 1).reshape(B, -1), prev.reshape(-1, g)


def _head_dtype(drafter: Drafter) -> mx.Dtype:
    m = drafter.module if "lm_head" in drafter.module else drafter.target_model
    w = m.lm_head.weight if "lm_head" in m else m.model.embed_tokens.weight
    return w.dtype if mx.issubdtype(w.dtype, mx.floating) else mx.float32


def draft_logits(drafter: Drafter, hidden: mx.array, prev: mx.array) -> mx.array:
    """Block logits ``(.., V)`` in float32: the (frozen) head in its own dtype, plus the Markov bias."""
    logits = drafter.head(hidden.astype(_head_dtype(drafter))).astype(mx.float32)
    if "markov_head" in drafter.module:
        logits = logits + drafter.module.markov_head(prev).astype(mx.float32)
    return logits


def confidence_logits(drafter: Drafter, hidden: mx.array, prev: mx.array) -> Optional[mx.array]:
    m = drafter.module
    if "confidence_head" not in m:
        return None
    feats = hidden
    if drafter.config.confidence_head_with_markov:
        feats = mx.concatenate([hidden, m.markov_head.rows(prev).astype(hidden.dtype)], axis=-1)
    return m.confidence_head.proj(feats)[..., 0].astype(mx.float32)


def position_weights(g: int, gamma: Optional[float]) -> mx.array:
    k = mx.arange(g).astype(mx.float32)
    return mx.exp(-k / gamma) if gamma and gamma > 0 else mx.ones((g,))


def loss_terms(drafter: Drafter, cfg: TrainConfig, feats: mx.array, final: mx.array, tokens: mx.array,
               loss_mask: mx.array, anchors: mx.array, target_head) -> Tuple[mx.array, Dict[str, mx.array]]:
    g = cfg.block_size
    labels, valid, tpos, prev = block_targets(tokens, loss_mask, anchors, g)
    hidden = block_hidden(drafter, feats, tokens, anchors, g)  # (BA, g, H)
    logits = draft_logits(drafter, hidden, prev)  # (BA, g, V)
    w = valid * position_weights(g, cfg.loss_decay_gamma)[None, :]
    den = mx.maximum(w.sum(), 1e-6)
    ce = nn.losses.cross_entropy(logits, labels, reduction="none")
    ce_loss = (ce * w).sum() / den
    total = cfg.ce_weight * ce_loss
    metrics = {"ce": ce_loss}
    need_p = cfg.tv_weight > 0 or "confidence_head" in drafter.module
    if need_p:
        B = tokens.shape[0]
        t_hidden = mx.take_along_axis(final, mx.maximum(tpos, 0)[..., None], axis=1)  # (B, A*g, H)
        p_t = mx.stop_gradient(mx.softmax(target_head(t_hidden.astype(_head_dtype(drafter))).astype(mx.float32), axis=-1))
        p_t = p_t.reshape(labels.shape + (-1,))
        p_d = mx.softmax(logits, axis=-1)
        l1 = mx.abs(p_d - p_t).sum(axis=-1)  # (BA, g)
        l1_loss = (l1 * w).sum() / den
        metrics["l1"] = l1_loss
        if cfg.tv_weight > 0:
            total = total + cfg.tv_weight * l1_loss
        conf = confidence_logits(drafter, hidden, prev)
        if conf is not None:
            target = mx.stop_gradient(mx.clip(1.0 - 0.5 * l1, 0.0, 1.0))
            bce = nn.losses.binary_cross_entropy(conf, target, with_logits=True, reduction="none")
            conf_loss = (bce * w).sum() / den
            metrics["conf"] = conf_loss
            total = total + cfg.confidence_weight * conf_loss
        metrics["accept"] = (mx.stop_gradient(1.0 - 0.5 * l1) * valid).sum() / mx.maximum(valid.sum(), 1.0)
    metrics["loss"] = total
    return total, metrics


# --------------------------------------------------------------------------- evaluation


def evaluate(drafter: Drafter, features: TargetFeatures, seqs: List[Sequence_], seq_ids: List[int],
             max_blocks: int = 256, seed: int = 0, batch_blocks: int = 64) -> dict:
    """Held-out acceptance per draft position and tau, teacher-forced on ``seqs``.

    T=0: proposal k is accepted while the drafter's argmax (Markov term fed the text's previous
    token) equals the target's argmax, so on the target's own greedy text this is exactly the greedy
    acceptance of a block at that anchor. T=1: per-position acceptance ``1 - TV(q_k, p_k)`` (the
    rejection-sampling acceptance), chained as in DeepSpec's ``tau_probabilistic``. tau counts the
    target's own token: ``tau = 1 + sum_j prod_{i <= j} a_i``.
    """
    g = drafter.config.proposal_length
    rng = random.Random(seed)
    blocks = []
    for j, s in enumerate(seqs):
        m = s.loss_mask or [1] * len(s.tokens)
        for a in range(1, len(s.tokens) - 1):
            if m[a + 1]:
                blocks.append((j, a))
    rng.shuffle(blocks)
    blocks = blocks[:max_blocks]
    if not blocks:
        return {}
    by_seq: Dict[int, List[int]] = {}
    for j, a in blocks:
        by_seq.setdefault(j, []).append(a)
    acc0, acc1, reach0, reach1, counts = [], [], [], [], []
    for j, anchors in by_seq.items():
        s = seqs[j]
        tokens = mx.array([s.tokens], dtype=mx.uint32)
        lm = mx.array([s.loss_mask or [1] * len(s.tokens)], dtype=mx.int32)
        feats, final = features.batch([seq_ids[j]], tokens)
        for i in range(0, len(anchors), batch_blocks):
            an = mx.array([anchors[i : i + batch_blocks]], dtype=mx.int32)
            labels, valid, tpos, prev = block_targets(tokens, lm, an, g)
            hidden = block_hidden(drafter, feats, tokens, an, g)
            q = mx.softmax(draft_logits(drafter, hidden, prev), axis=-1)
            t_hidden = mx.take_along_axis(final, mx.maximum(tpos, 0)[..., None], axis=1)
            p = mx.softmax(features.head(t_hidden.astype(_head_dtype(drafter))).astype(mx.float32), axis=-1)
            p = p.reshape(q.shape)
            a1 = mx.clip(1.0 - 0.5 * mx.abs(q - p).sum(axis=-1), 0.0, 1.0) * valid
            a0 = (mx.argmax(q, axis=-1) == mx.argmax(p, axis=-1)).astype(mx.float32) * valid
            mx.eval(a0, a1, valid)
            acc0.append(a0)
            acc1.append(a1)
            counts.append(valid)
    a0, a1, v = mx.concatenate(acc0), mx.concatenate(acc1), mx.concatenate(counts)
    r0, r1 = mx.cumprod(a0, axis=-1), mx.cumprod(a1, axis=-1)
    # only full-length blocks enter tau (a block cut by the sequence end would bias it down)
    full = v[:, -1] > 0
    nfull = max(1, int(full.sum().item()))
    n_pos = mx.maximum(v.sum(axis=0), 1.0)

    def per_pos(x):
        return [round(float(t), 4) for t in (x.sum(axis=0) / n_pos).tolist()]

    def cond(r):  # conditional acceptance at k given 1..k-1 accepted
        reach = mx.concatenate([mx.ones((r.shape[0], 1)), r[:, :-1]], axis=1) * v
        return [round(float(t), 4) for t in (r.sum(axis=0) / mx.maximum(reach.sum(axis=0), 1e-9)).tolist()]

    tau0 = 1.0 + float((r0.sum(axis=-1) * full).sum().item()) / nfull
    tau1 = 1.0 + float((r1.sum(axis=-1) * full).sum().item()) / nfull
    return {
        "blocks": int(v.shape[0]),
        "full_blocks": int(full.sum().item()),
        "block_size": g,
        "tau_t0": round(tau0, 4),
        "tau_t1": round(tau1, 4),
        "accept_t0_by_position": cond(r0),
        "accept_t1_by_position": cond(r1),
        "reach_t0_by_position": per_pos(r0),
        "reach_t1_by_position": per_pos(r1),
    }


# --------------------------------------------------------------------------- the trainer


def _status(line: Optional[str]) -> None:
    if line is None:
        sys.stderr.write("\n")
    else:
        sys.stderr.write("\r" + line[:160].ljust(100))
    sys.stderr.flush()


def _pad(batch: List[Sequence_], L: int) -> Tuple[mx.array, mx.array]:
    toks = [s.tokens + [0] * (L - len(s.tokens)) for s in batch]
    masks = [(s.loss_mask or [1] * len(s.tokens)) + [0] * (L - len(s.tokens)) for s in batch]
    # positions past the end are never valid (loss mask 0; anchors need a valid next token)
    return mx.array(toks, dtype=mx.uint32), mx.array(masks, dtype=mx.int32)


def _anchor_valid(loss_mask: mx.array) -> mx.array:
    B, L = loss_mask.shape
    nxt = mx.concatenate([loss_mask[:, 1:], mx.zeros((B, 1), dtype=loss_mask.dtype)], axis=1)
    pos = mx.arange(L)[None, :]
    return (nxt > 0) & (pos >= 1)


LR_SCHEDULES = ("cosine", "linear", "constant")


def _lr_schedule(cfg: TrainConfig):
    """Linear warm-up over ``warmup`` of the steps, then ``cfg.lr_schedule``."""
    warm = max(1, int(round(cfg.steps * cfg.warmup)))
    decay = max(1, cfg.steps - warm)
    after = {
        "cosine": lambda: optim.cosine_decay(cfg.lr, decay, cfg.lr * 0.05),
        "linear": lambda: optim.linear_schedule(cfg.lr, 0.0, decay),
        "constant": lambda: (lambda step: mx.array(cfg.lr)),
    }[cfg.lr_schedule]()
    return optim.join_schedules([optim.linear_schedule(cfg.lr * 1e-2, cfg.lr, warm), after], [warm])


def memory_plan(cfg: TrainConfig, vocab: int, hidden: int, n_taps: int) -> dict:
    """Rough peak bytes of one step (float32): the (blocks x g x V) logits dominate."""
    rows = cfg.batch_size * cfg.num_anchors * cfg.block_size
    logits = rows * vocab * 4 * (7 if cfg.strategy == "dspark" else 4)
    acts = cfg.batch_size * cfg.seq_len * hidden * 4 * (n_taps + 8) * (cfg.num_draft_layers + 1)
    return {"step_bytes": logits + acts, "rows": rows}


def fit_to_budget(cfg: TrainConfig, vocab: int, hidden: int, n_taps: int) -> Tuple[TrainConfig, Optional[int]]:
    """Shrink anchors (then batch) until a step fits ``memory_budget_gb`` (half of it; the rest may
    hold cached target features). Returns the config and the feature-cache byte budget."""
    if cfg.memory_budget_gb is None:
        return cfg, None
    budget = int(cfg.memory_budget_gb * 2**30)
    step_budget = budget // 2
    c = replace(cfg)
    while memory_plan(c, vocab, hidden, n_taps)["step_bytes"] > step_budget and (c.num_anchors > 1 or c.batch_size > 1):
        if c.num_anchors > 1:
            c.num_anchors = max(1, c.num_anchors // 2)
        else:
            c.batch_size = max(1, c.batch_size // 2)
    if hasattr(mx, "set_memory_limit"):
        try:
            mx.set_memory_limit(budget)
        except Exception:  # pragma: no cover - backends without a limit
            pass
    return c, budget - memory_plan(c, vocab, hidden, n_taps)["step_bytes"]


class Trainer:
    """Python API::

        from mlx_specdec_plugin.train.trainer import Trainer, TrainConfig
        t = Trainer(model, tokenizer, TrainConfig(strategy="dspark", steps=500), out_dir="drafter")
        t.add_records(read_records("data.jsonl"))
        t.fit()            # progress, checkpoints in drafter/checkpoint, resumable
        t.evaluate()       # held-out tau per draft position (drafter/eval.json)
    """

    def __init__(self, target_model: nn.Module, tokenizer: Any, config: TrainConfig, out_dir: PathLike,
                 target_path: str = "", feature_cache: Optional[PathLike] = None, resume: bool = True,
                 progress: bool = True, drafter: Optional[Drafter] = None):
        self.model = target_model
        if config.target_dtype:
            self.model.set_dtype(getattr(mx, config.target_dtype))
        self.model.freeze()
        self.tokenizer = tokenizer
        self.cfg = config.resolved()
        self.out = Path(out_dir)
        self.target_path = target_path
        self.feature_cache = feature_cache
        self.progress = progress
        self.train_seqs: List[Sequence_] = []
        self.eval_seqs: List[Sequence_] = []
        self.step = 0
        self.log: List[dict] = []
        ckpt = self.out / "checkpoint"
        if drafter is not None:
            self.drafter = drafter
        elif resume and (ckpt / "drafter" / "config.json").is_file():
            self.drafter = load_drafter(ckpt / "drafter", target_model)
            state = json.loads((ckpt / "trainer_state.json").read_text())
            self.step = int(state["step"])
            self.log = state.get("log", [])
            if self.cfg.time_budget_s and "steps" in state.get("config", {}):
                # the budget was turned into a step count (and an LR schedule) when the run started
                self.cfg = replace(self.cfg, steps=int(state["config"]["steps"]), time_budget_s=None)
        else:
            if self.cfg.mask_token_id is None:
                self.cfg.mask_token_id = default_mask_token_id(TargetAdapter(target_model).vocab_size, tokenizer)
            self.drafter = new_drafter(target_model, self.cfg)
        c = self.drafter.config
        if self.cfg.strategy != c.kind:
            raise ValueError(f"--strategy {self.cfg.strategy} but the drafter is a {c.kind} checkpoint")
        if c.proposal_length != self.cfg.block_size:
            self.cfg = replace(self.cfg, block_size=c.proposal_length)
        if c.quantization:
            raise ValueError("cannot train a quantized drafter; start from the float checkpoint")
        if self.cfg.dtype != "float32":
            self.drafter.module.set_dtype(getattr(mx, self.cfg.dtype))
        for name in FROZEN_COPIES:
            if name in self.drafter.module:
                self.drafter.module[name].freeze()
        self.cfg, self.feature_budget = fit_to_budget(
            self.cfg, c.vocab_size, c.hidden_size, len(c.target_layer_ids))
        self.optimizer = optim.AdamW(learning_rate=_lr_schedule(self.cfg), weight_decay=self.cfg.weight_decay)
        if self.step and (ckpt / "optimizer.safetensors").is_file():
            self.optimizer.init(self.drafter.module.trainable_parameters())
            state = tree_unflatten(list(mx.load(str(ckpt / "optimizer.safetensors")).items()))
            self.optimizer.state = state
        self.features: Optional[TargetFeatures] = None
        self.finished = False

    # -- data

    def add_records(self, records: List[dict], generate: bool = False, max_new_tokens: int = 256,
                    gen_temp: float = 0.0, gen_batch: int = 16) -> None:
        """Add training records (see :func:`read_records`); ``generate`` turns each ``prompt`` into
        the target's own response first (self-distillation)."""
        if generate:
            prompts = [r["prompt"] for r in records if "prompt" in r]
            others = [r for r in records if "prompt" not in r]
            gen_file = self.out / "generated.jsonl"
            done = []
            if gen_file.is_file():
                done = [json.loads(l) for l in gen_file.read_text().splitlines() if l.strip()]
            todo = prompts[len(done) :]
            self.out.mkdir(parents=True, exist_ok=True)
            chunk = max(1, gen_batch)  # appended batch by batch: an interrupted run resumes after the last one
            for i in range(0, len(todo), chunk):
                new = generate_responses(self.model, self.tokenizer, todo[i : i + chunk], max_new_tokens, gen_temp,
                                         self.cfg.seed + len(done), self.progress, gen_batch, len(done),
                                         len(prompts))
                with gen_file.open("a") as f:
                    for r in new:
                        f.write(json.dumps(r) + "\n")
                done += new
            records = others + done
        seqs = build_sequences(records, self.tokenizer, self.cfg.seq_len)
        if self.cfg.max_sequences:
            seqs = seqs[: self.cfg.max_sequences]
        tr, ev = split_heldout(seqs, self.cfg.eval_fraction, self.cfg.seed)
        self.train_seqs += tr
        self.eval_seqs += ev

    def _features(self) -> TargetFeatures:
        if self.features is None:
            allseqs = self.train_seqs + self.eval_seqs
            key = feature_key(self.target_path or type(self.model).__name__, self.drafter.tap_layers, allseqs)
            self.features = TargetFeatures(self.model, self.drafter.tap_layers, self.feature_cache,
                                           self.feature_budget, key + f"-L{self.cfg.seq_len}")
        return self.features

    def _batch_order(self, epoch: int) -> List[int]:
        idx = list(range(len(self.train_seqs)))
        random.Random(self.cfg.seed * 1000003 + epoch).shuffle(idx)
        return idx

    def _batch(self, step: int) -> List[int]:
        B, n = self.cfg.batch_size, len(self.train_seqs)
        per_epoch = max(1, n // B) if n >= B else 1
        epoch, i = divmod(step, per_epoch)
        order = self._batch_order(epoch)
        ids = order[i * B : (i + 1) * B]
        while len(ids) < B:
            ids.append(order[len(ids) % n])
        return ids

    # -- training

    def fit(self, steps: Optional[int] = None, stop_after_s: Optional[float] = None) -> List[dict]:
        """Train up to ``steps`` (default ``cfg.steps``) and write the drafter to ``out``. With
        ``stop_after_s``, end the call at the first step boundary past that many seconds, save the
        checkpoint and leave ``finished`` False: a new Trainer on the same ``out`` resumes there and
        reaches the weights an uninterrupted run reaches (a chunk of a run spread over calls)."""
        cfg = self.cfg
        steps = cfg.steps if steps is None else steps
        self.finished = False
        if not self.train_seqs:
            raise ValueError("no training sequences: add data first (texts too short for seq_len?)")
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
        feats_src = self._features()
        drafter, module = self.drafter, self.drafter.module
        head = feats_src.head

        def step_loss(feats, final, tokens, lmask, anchors):
            loss, metrics = loss_terms(drafter, cfg, feats, final, tokens, lmask, anchors, head)
            return loss, metrics

        value_and_grad = nn.value_and_grad(module, step_loss)
        t_start, tok_done, window = time.time(), 0, []
        if cfg.time_budget_s and self.step == 0:
            steps = self._steps_for_budget(value_and_grad, steps)
            cfg = self.cfg
            (self.out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
        deadline = t_start + 1.15 * cfg.time_budget_s if cfg.time_budget_s else None
        while self.step < steps:
            if stop_after_s is not None and time.time() - t_start > stop_after_s:
                self.save_checkpoint()
                return self.log
            if deadline is not None and time.time() > deadline:
                sys.stderr.write(f"\n[mlx-specdec] time budget exceeded by 15%: stopping at step {self.step}/{steps}\n")
                break
            t0 = time.time()
            feats, final, tokens, lmask, anchors = self._step_inputs(self.step)
            (loss, metrics), grads = value_and_grad(feats, final, tokens, lmask, anchors)
            if cfg.grad_clip:
                grads, gnorm = optim.clip_grad_norm(grads, cfg.grad_clip)
            self.optimizer.update(module, grads)
            mx.eval(module.parameters(), self.optimizer.state, metrics)
            self.step += 1
            dt = time.time() - t0
            tok_done += tokens.size
            window.append((tokens.size, dt))
            window = window[-20:]
            tps = sum(n for n, _ in window) / max(1e-9, sum(t for _, t in window))
            row = {"step": self.step, **{k: round(float(v.item()), 5) for k, v in metrics.items()},
                   "lr": float(self.optimizer.learning_rate.item()), "tok_s": round(tps, 1),
                   "elapsed_s": round(time.time() - t_start, 1)}
            if self.step % cfg.log_every == 0 or self.step == steps or self.step == 1:
                self.log.append(row)
            if self.progress:
                parts = " ".join(f"{k} {row[k]:.3f}" for k in ("loss", "ce", "l1", "conf") if k in row)
                bar = "#" * int(20 * self.step / steps)
                _status(f"[{bar:<20}] {self.step}/{steps} {parts} | {tps:.0f} tok/s | {row['elapsed_s']:.0f}s")
            if cfg.save_every and self.step % cfg.save_every == 0 and self.step < steps:
                self.save_checkpoint()
        if self.progress:
            _status(None)
        self.save_checkpoint()
        write_drafter(self.drafter, self.out)
        self.finished = True
        return self.log

    def _step_inputs(self, step: int):
        """The batch of ``step``: target features, tokens, loss mask and the step's random anchors."""
        ids = self._batch(step)
        lengths = [len(self.train_seqs[i].tokens) for i in ids]
        tokens, lmask = _pad([self.train_seqs[i] for i in ids], max(lengths))
        feats, final = self._features().batch(ids, tokens, lengths)
        key = mx.random.key(self.cfg.seed * 7919 + step)
        A = min(self.cfg.num_anchors, tokens.shape[1] - 2)
        anchors = sample_anchors(key, _anchor_valid(lmask), A)
        return feats, final, tokens, lmask, anchors

    def _steps_for_budget(self, value_and_grad, max_steps: int, probe: int = 8) -> int:
        """``--time-budget``: time ``probe`` forward/backward passes (no update, so the weights and
        the data order are untouched), then fix the step count (and the LR schedule) to what fits."""
        t0, times = time.time(), []
        scratch = optim.AdamW(learning_rate=0.0)  # the update's cost, applied to a throwaway copy
        params = self.drafter.module.trainable_parameters()
        scratch.init(params)
        for i in range(min(probe, max_steps)):
            ts = time.time()
            (loss, _), grads = value_and_grad(*self._step_inputs(i))
            if self.cfg.grad_clip:
                grads, _ = optim.clip_grad_norm(grads, self.cfg.grad_clip)
            mx.eval(loss, scratch.apply_gradients(grads, params), scratch.state)
            times.append(time.time() - ts)
        steady = sorted(times[2:] or times)  # the first passes include compilation
        per_step = steady[len(steady) // 2] * 1.05
        remaining = self.cfg.time_budget_s - (time.time() - t0)
        steps = max(1, min(max_steps, int(remaining / per_step)))
        sys.stderr.write(f"[mlx-specdec] time budget {self.cfg.time_budget_s:.0f}s at {per_step:.3f}s/step: "
                         f"{steps} steps\n")
        self.cfg = replace(self.cfg, steps=steps)
        self.optimizer = optim.AdamW(learning_rate=_lr_schedule(self.cfg), weight_decay=self.cfg.weight_decay)
        return steps

    def save_checkpoint(self) -> Path:
        ckpt = self.out / "checkpoint"
        write_drafter(self.drafter, ckpt / "drafter")
        mx.save_safetensors(str(ckpt / "optimizer.safetensors"), dict(tree_flatten(self.optimizer.state)))
        state = {"step": self.step, "log": self.log, "config": asdict(self.cfg)}
        tmp = ckpt / "trainer_state.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(ckpt / "trainer_state.json")
        return ckpt

    def evaluate(self, max_blocks: Optional[int] = None) -> dict:
        if not self.eval_seqs:
            return {}
        feats = self._features()
        n = len(self.train_seqs)
        res = evaluate(self.drafter, feats, self.eval_seqs, list(range(n, n + len(self.eval_seqs))),
                       max_blocks or self.cfg.eval_blocks, self.cfg.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "eval.json").write_text(json.dumps(res, indent=1))
        return res


def train(target: Union[str, nn.Module], data: Union[PathLike, List[PathLike], List[dict]], out_dir: PathLike,
          config: Optional[TrainConfig] = None, tokenizer: Any = None, generate: bool = False,
          max_new_tokens: int = 256, gen_temp: float = 0.0, feature_cache: Optional[PathLike] = None,
          resume: bool = True, progress: bool = True, eval_data: Optional[PathLike] = None,
          gen_batch: int = 16, generate_only: bool = False, chunk_seconds: Optional[float] = None,
          resume_from: Optional[PathLike] = None) -> Tuple[Drafter, dict]:
    """Train a drafter for ``target`` (an mlx-lm path or a loaded model + ``tokenizer``) on ``data``
    and write it to ``out_dir``; returns ``(drafter, held-out evaluation)``.

    ``chunk_seconds``: stop after about that long with the checkpoint saved (the evaluation is then
    ``{"unfinished": True, "step": ..., "steps": ...}``); calling again resumes. ``resume_from``: a
    :func:`pack_checkpoint` folder to resume from (unpacked into ``out_dir`` first)."""
    target_path = ""
    if isinstance(target, (str, Path)):
        target_path = str(target)
        target, tokenizer = load(str(target))
    if tokenizer is None:
        raise ValueError("train: pass tokenizer= with a loaded target model")
    if resume_from is not None:
        unpack_checkpoint(resume_from, out_dir, target)
    trainer = Trainer(target, tokenizer, config or TrainConfig(), out_dir, target_path, feature_cache, resume, progress)
    if isinstance(data, (str, Path)):
        records = read_records(data)
    elif data and isinstance(data[0], (str, Path)):
        records = [r for d in data for r in read_records(d)]
    else:
        records = list(data)
    trainer.add_records(records, generate=generate, max_new_tokens=max_new_tokens, gen_temp=gen_temp,
                        gen_batch=gen_batch)
    if generate_only:
        return trainer.drafter, {}
    if eval_data is not None:
        seqs = build_sequences(read_records(eval_data), tokenizer, trainer.cfg.seq_len)
        trainer.eval_seqs = seqs
    trainer.fit(stop_after_s=chunk_seconds)
    if not trainer.finished:
        return trainer.drafter, {"unfinished": True, "step": trainer.step, "steps": trainer.cfg.steps}
    return trainer.drafter, trainer.evaluate()


# --------------------------------------------------------------------------- moving a run between machines

PACK_MANIFEST = "checkpoint.json"


def pack_checkpoint(out_dir: PathLike, target_model: nn.Module, dest: PathLike,
                    max_piece_bytes: int = 16_000_000) -> List[Path]:
    """Write the resumable state of ``out_dir/checkpoint`` to ``dest`` as pieces of at most
    ``max_piece_bytes`` plus :data:`PACK_MANIFEST` (sizes and sha256 of each piece and of the
    whole): the trainable weights (float32), the optimizer state and the trainer state. The frozen
    copies of the target's embedding and head are left out; :func:`unpack_checkpoint` takes them
    from the target. Returns the written paths, manifest last."""
    ckpt = Path(out_dir) / "checkpoint"
    if not (ckpt / "trainer_state.json").is_file():
        raise ValueError(f"{ckpt}: no checkpoint to pack (trainer_state.json is missing)")
    drafter = load_drafter(ckpt / "drafter", target_model, unpack=False)
    params = {k: v for k, v in tree_flatten(drafter.module.parameters())
              if k.split(".")[0] not in FROZEN_COPIES}
    tensors = {"param." + k: v for k, v in params.items()}
    tensors.update({"optim." + k: v for k, v in mx.load(str(ckpt / "optimizer.safetensors")).items()})
    meta = {"trainer_state": (ckpt / "trainer_state.json").read_text(),
            "drafter_config": (ckpt / "drafter" / "config.json").read_text()}
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    whole = dest / "checkpoint.safetensors"
    mx.save_safetensors(str(whole), tensors, metadata=meta)
    blob = whole.read_bytes()
    whole.unlink()
    pieces, written = [], []
    for i in range(0, len(blob), max_piece_bytes):
        part = blob[i : i + max_piece_bytes]
        path = dest / f"checkpoint.part{len(pieces):03d}"
        path.write_bytes(part)
        pieces.append({"name": path.name, "bytes": len(part), "sha256": hashlib.sha256(part).hexdigest()})
        written.append(path)
    state = json.loads(meta["trainer_state"])
    manifest = {"pieces": pieces, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
                "step": state["step"], "steps": state["config"]["steps"]}
    (dest / PACK_MANIFEST).write_text(json.dumps(manifest, indent=1))
    return written + [dest / PACK_MANIFEST]


def unpack_checkpoint(src: PathLike, out_dir: PathLike, target_model: nn.Module) -> Path:
    """Rebuild ``out_dir/checkpoint`` from :func:`pack_checkpoint`'s pieces in ``src`` (checked
    against the manifest), so that a :class:`Trainer` on ``out_dir`` resumes where the packed run
    stopped. Returns the checkpoint folder."""
    src = Path(src)
    try:
        manifest = json.loads((src / PACK_MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{src / PACK_MANIFEST}: not a packed checkpoint ({e})") from None
    parts = []
    for piece in manifest["pieces"]:
        path = src / piece["name"]
        if not path.is_file():
            raise ValueError(f"{path}: piece missing ({len(manifest['pieces'])} expected)")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != piece["sha256"]:
            raise ValueError(f"{path}: sha256 mismatch (damaged in transfer?)")
        parts.append(data)
    blob = b"".join(parts)
    if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise ValueError(f"{src}: the joined pieces do not match the manifest")
    ckpt = Path(out_dir) / "checkpoint"
    ckpt.mkdir(parents=True, exist_ok=True)
    whole = ckpt / "packed.safetensors"
    whole.write_bytes(blob)
    tensors, meta = mx.load(str(whole), return_metadata=True)
    whole.unlink()
    state = json.loads(meta["trainer_state"])
    fields = {f for f in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**{k: v for k, v in state["config"].items() if k in fields})
    drafter = new_drafter(target_model, cfg)  # the frozen copies come from the target
    if drafter.config.raw != json.loads(meta["drafter_config"]):
        raise ValueError(f"{src}: the packed drafter does not match this target (its config differs)")
    drafter.module.load_weights([(k[len("param."):], v) for k, v in tensors.items() if k.startswith("param.")],
                                strict=False)
    write_drafter(drafter, ckpt / "drafter")
    mx.save_safetensors(str(ckpt / "optimizer.safetensors"),
                        {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")})
    (ckpt / "trainer_state.json").write_text(meta["trainer_state"])
    return ckpt


# --------------------------------------------------------------------------- CLI


def main(argv: Optional[List[str]] = None) -> int:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="mlx-specdec train",
                                description="Distil a DSpark or DFlash drafter for an mlx-lm target (self-distillation)")
    p.add_argument("--target", "--model", dest="target", required=True, help="mlx-lm model path or hub id")
    p.add_argument("--strategy", choices=("dspark", "dflash"), default="dspark")
    p.add_argument("--data", required=True, nargs="+",
                   help=".jsonl (text | prompt [+response] | messages | prompt_ids+response_ids, as OUT/generated.jsonl), "
                   "a text file, or a folder of text/source files; several allowed")
    p.add_argument("--eval-data", default=None, help="held-out data (default: --eval-fraction of --data)")
    p.add_argument("--out", required=True, help="output folder: the drafter checkpoint (+ checkpoint/, eval.json)")
    p.add_argument("--generate", action="store_true",
                   help="self-distillation: the target answers each 'prompt' first (chat template)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="--generate: response length cap")
    p.add_argument("--gen-temp", type=float, default=0.0, help="--generate: sampling temperature (0 = greedy)")
    p.add_argument("--gen-batch", type=int, default=16, help="--generate: prompts answered at once (GPU: 256+)")
    p.add_argument("--generate-only", action="store_true",
                   help="--generate: write OUT/generated.jsonl and stop (train several drafters on it later)")
    p.add_argument("--block-size", type=int, default=d.block_size, help="proposals per block (anchor excluded)")
    p.add_argument("--num-draft-layers", type=int, default=d.num_draft_layers)
    p.add_argument("--target-layer-ids", type=int, nargs="+", default=None, help="default: spread from 1 to n-3")
    p.add_argument("--num-taps", type=int, default=d.num_taps)
    p.add_argument("--intermediate-size", type=int, default=None)
    p.add_argument("--markov-rank", type=int, default=d.markov_rank)
    p.add_argument("--no-confidence-head", action="store_true")
    p.add_argument("--mask-token-id", type=int, default=None)
    p.add_argument("--layout", choices=("dflash_config", "deepspec"), default=d.layout,
                   help="DSpark checkpoint layout (deepspec ships embed/head copies; dflash_config binds the target's)")
    p.add_argument("--seq-len", type=int, default=d.seq_len)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--num-anchors", type=int, default=d.num_anchors)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=float, default=d.warmup)
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule, help="after the warm-up")
    p.add_argument("--ce-weight", type=float, default=None, help="default 0.1 (dspark) / 1.0 (dflash)")
    p.add_argument("--tv-weight", type=float, default=None, help="L1 distillation weight; default 0.9 (dspark) / 0 (dflash)")
    p.add_argument("--confidence-weight", type=float, default=d.confidence_weight)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--loss-decay-gamma", type=float, default=None)
    p.add_argument("--eval-fraction", type=float, default=d.eval_fraction)
    p.add_argument("--eval-blocks", type=int, default=d.eval_blocks)
    p.add_argument("--max-sequences", type=int, default=None)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="train for about this long: --steps becomes min(steps, budget / measured step time), "
                   "with the LR schedule fitted to it")
    p.add_argument("--memory-budget", type=float, default=None, metavar="GB",
                   help="cap on memory: shrinks anchors/batch to fit, caches target features in the rest")
    p.add_argument("--feature-cache", default=None, help="folder to keep target features in (reused across runs)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/checkpoint exists")
    p.add_argument("--chunk-seconds", type=float, default=None, metavar="SECONDS",
                   help="train for about this long, save the checkpoint and exit with status 75 if steps remain "
                        "(the same command resumes): runs spread over time-limited calls")
    p.add_argument("--pack-to", default=None, metavar="DIR",
                   help="after training (or a chunk), write the resumable state as <=--piece-mb pieces to DIR "
                        "(trainable weights, optimizer, trainer state; no frozen copies of the target)")
    p.add_argument("--piece-mb", type=float, default=16.0)
    p.add_argument("--resume-from", default=None, metavar="DIR", help="resume from a --pack-to folder")
    p.add_argument("--quantize", type=int, default=None, choices=[2, 3, 4, 5, 6, 8],
                   help="also write a quantized copy to OUT-<bits>bit")
    p.add_argument("--target-dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="cast the frozen target for feature extraction (bfloat16 is ~2x faster on this CPU)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    cfg = TrainConfig(
        strategy=a.strategy, block_size=a.block_size, num_draft_layers=a.num_draft_layers,
        target_layer_ids=tuple(a.target_layer_ids) if a.target_layer_ids else None, num_taps=a.num_taps,
        intermediate_size=a.intermediate_size, markov_rank=a.markov_rank, confidence_head=not a.no_confidence_head,
        mask_token_id=a.mask_token_id, layout=a.layout, seq_len=a.seq_len, batch_size=a.batch_size,
        num_anchors=a.num_anchors, steps=a.steps, lr=a.lr, warmup=a.warmup, weight_decay=a.weight_decay,
        lr_schedule=a.lr_schedule, ce_weight=a.ce_weight, tv_weight=a.tv_weight, confidence_weight=a.confidence_weight,
        loss_decay_gamma=a.loss_decay_gamma, eval_fraction=a.eval_fraction, eval_blocks=a.eval_blocks,
        max_sequences=a.max_sequences, seed=a.seed, save_every=a.save_every, memory_budget_gb=a.memory_budget,
        target_dtype=a.target_dtype, time_budget_s=a.time_budget,
    )
    if a.generate_only and not a.generate:
        p.error("--generate-only needs --generate")
    t0 = time.time()
    try:
        drafter, ev = train(a.target, a.data, a.out, cfg, generate=a.generate, max_new_tokens=a.max_new_tokens,
                            gen_temp=a.gen_temp, feature_cache=a.feature_cache, resume=not a.no_resume,
                            progress=not a.no_progress, eval_data=a.eval_data, gen_batch=a.gen_batch,
                            generate_only=a.generate_only, chunk_seconds=a.chunk_seconds,
                            resume_from=a.resume_from)
        if a.generate_only:
            print(f"[mlx-specdec] wrote {Path(a.out) / 'generated.jsonl'} in {time.time() - t0:.0f}s", file=sys.stderr)
            return 0
        if a.pack_to:
            pieces = pack_checkpoint(a.out, drafter.target_model, a.pack_to, int(a.piece_mb * 1e6))
            print(f"[mlx-specdec] packed the checkpoint into {len(pieces) - 1} piece(s) in {a.pack_to}", file=sys.stderr)
    except ValueError as e:
        print(f"[mlx-specdec] error: {e}", file=sys.stderr)
        return 2
    if ev.get("unfinished"):
        print(f"[mlx-specdec] chunk done at step {ev['step']}/{ev['steps']} in {time.time() - t0:.0f}s; "
              "run the same command again to resume", file=sys.stderr)
        return 75
    print(f"[mlx-specdec] wrote {drafter.kind} drafter to {a.out} in {time.time() - t0:.0f}s", file=sys.stderr)
    if ev:
        print(json.dumps(ev, indent=1))
    if a.quantize:
        q = load_drafter(a.out, drafter.target_model, quantize=a.quantize)
        dst = Path(str(a.out).rstrip("/") + f"-{a.quantize}bit")
        save_drafter(q, dst)
        print(f"[mlx-specdec] wrote the {a.quantize}-bit copy to {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
