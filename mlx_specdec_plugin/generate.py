"""Drop-in ``stream_generate`` / ``generate`` with mlx-lm's signatures.

``from mlx_specdec_plugin import stream_generate`` in place of mlx-lm's: with no drafter and no
``draft_strategy`` the call goes straight to mlx-lm; otherwise our loop runs, with the extra
keyword arguments ``draft_strategy=``, ``acceptor=``, ``num_draft_tokens=``, ``block_size=``,
``strategy_options=`` and ``stats=`` (a :class:`SpecStats` to fill). ``num_draft_tokens="auto"``
chooses each round's draft length (up to :data:`AUTO_MAX_DRAFT_TOKENS`) with
:class:`~mlx_specdec_plugin.scheduler.AdaptiveScheduler` from the cached cost curve of this machine
(``cost_curve=`` injects one; ``draft_length=`` any ``(stats, cap) -> int`` callable). Every response is a
:class:`SpecGenerationResponse` (a ``GenerationResponse``) whose ``spec`` holds the statistics.

In a process group of more than one rank (``mlx.launch``; ``group=`` names one, ``group=False``
opts out) every rank must make the same call on its shard of the target: rank 0 drafts and
decides, the others follow (:mod:`.distributed`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generator, List, Optional, Union

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.generate import GenerationResponse, wired_limit
from mlx_lm.generate import stream_generate as mlx_lm_stream_generate
from mlx_lm.tokenizer_utils import TokenizerWrapper

from .acceptors import AcceptorSpec
from .distributed import (LockstepProposer, active_group, check_drafter_for_shards, check_same, digest,
                          lockstep_acceptor, lockstep_draft_length)
from .drafting import Strategy, StrategyOptions
from .loop import speculative_generate_step
from .plugins import registry
from .sampling import Sampling
from .stats import SpecStats
from .target import TargetAdapter

DEFAULT_NUM_DRAFT_TOKENS = 3
AUTO_MAX_DRAFT_TOKENS = 8  # the scheduler's cap for num_draft_tokens="auto"


@dataclass
class SpecGenerationResponse(GenerationResponse):
    """mlx-lm's response plus the generation's speculative statistics so far."""

    spec: Optional[SpecStats] = None


def resolve_strategy(draft_model: Any, draft_strategy: Optional[str]) -> Optional[Strategy]:
    """The strategy to run, or ``None`` for plain decoding.

    ``None``/``"none"`` without a draft model: plain decoding. ``"auto"``: the first installed
    strategy that claims ``draft_model``, or ``lookup`` when there is no draft model.
    """
    reg = registry()
    if draft_strategy == "none" or (draft_strategy is None and draft_model is None):
        if draft_model is not None:
            raise ValueError("draft_strategy='none' but a draft_model was given")
        return None
    if draft_strategy in (None, "auto"):
        if draft_model is None:
            return reg.strategy("lookup")
        for name in sorted(reg.strategies):
            strategy = reg.strategies[name].item
            if strategy.claims is not None and strategy.claims(draft_model):
                return strategy
        raise ValueError(
            f"no installed strategy handles a draft_model of type {type(draft_model).__name__}; "
            f"installed: {', '.join(sorted(reg.strategies))}"
        )
    strategy = reg.strategy(draft_strategy)
    if strategy.needs_draft and draft_model is None:
        raise ValueError(f"draft strategy '{strategy.name}' needs a draft_model")
    return strategy


def resolve_acceptor(name: Optional[str], sampling: Sampling, trees: bool = False) -> AcceptorSpec:
    """``auto``: greedy at temperature 0, rejection for a known sampler, match for an opaque one;
    for a proposer that drafts trees, the first installed acceptor that takes trees."""
    reg = registry()
    if name in (None, "auto"):
        name = "greedy" if sampling.greedy else ("rejection" if sampling.known else "match")
        if trees:
            name = next((n for n in sorted(reg.acceptors) if reg.acceptors[n].item.trees), name)
    spec = reg.acceptor(name)
    if trees and not spec.trees:
        takes = sorted(n for n in reg.acceptors if reg.acceptors[n].item.trees)
        raise ValueError(f"acceptor '{name}' verifies chains only; this drafter proposes trees (use: {', '.join(takes)})")
    if spec.greedy_only and not sampling.greedy:
        raise ValueError(f"acceptor '{name}' is exact only at temperature 0; use 'rejection' or 'block'")
    if spec.needs_distribution and not sampling.known:
        raise ValueError(
            f"acceptor '{name}' needs the sampling distribution, but the sampler is opaque; build it "
            "with mlx_lm's or our make_sampler, or use acceptor='match'"
        )
    return spec


def prepare(
    model: nn.Module,
    draft_model: Any = None,
    *,
    draft_strategy: Optional[str] = None,
    acceptor: Optional[str] = None,
    sampler=None,
    logits_processors=None,
    num_draft_tokens: Optional[int] = None,
    prefill_step_size: int = 2048,
    block_size: Optional[int] = None,
    strategy_options: Optional[dict] = None,
    target: Optional[TargetAdapter] = None,
):
    """Resolve and validate everything before generation: returns
    ``(target, proposer, acceptor_spec, sampling, strategy, num_draft_tokens)``; raises
    ``ValueError`` with one clear message on bad input. ``strategy`` is ``None`` for plain decoding.
    ``num_draft_tokens=None``: the proposer's ``cap`` (its natural block) if it has one, else 3."""
    strategy = resolve_strategy(draft_model, draft_strategy)
    requested = num_draft_tokens
    if requested is not None and int(requested) < 1:
        raise ValueError(f"num_draft_tokens must be >= 1, got {num_draft_tokens}")
    num_draft_tokens = int(requested or DEFAULT_NUM_DRAFT_TOKENS)
    sampling = Sampling.create(sampler, logits_processors)
    spec = resolve_acceptor(acceptor, sampling)
    if strategy is None:
        return None, None, spec, sampling, None, num_draft_tokens
    target = target or TargetAdapter(model)
    options = StrategyOptions(
        num_draft_tokens=int(num_draft_tokens),
        prefill_step_size=prefill_step_size,
        block_size=block_size,
        extra=dict(strategy_options or {}),
    )
    proposer = strategy.build(target, draft_model, options)
    target.check_taps(proposer.tap_layers)
    if getattr(proposer, "drafts_trees", False):
        spec = resolve_acceptor(acceptor, sampling, trees=True)
        target.check_tree()
    if requested is None:  # the drafter's natural block (DFlash 15, DSpark its trained size), else 3
        num_draft_tokens = int(getattr(proposer, "cap", None) or DEFAULT_NUM_DRAFT_TOKENS)
    return target, proposer, spec, sampling, strategy, num_draft_tokens


def _encode(tokenizer: TokenizerWrapper, prompt) -> mx.array:
    if isinstance(prompt, mx.array):
        return prompt
    if isinstance(prompt, str):
        bos = tokenizer.bos_token
        prompt = tokenizer.encode(prompt, add_special_tokens=bos is None or not prompt.startswith(bos))
    return mx.array(prompt)


def stream_generate(
    model: nn.Module,
    tokenizer,
    prompt: Union[str, mx.array, List[int]],
    max_tokens: int = 256,
    draft_model: Any = None,
    **kwargs,
) -> Generator[GenerationResponse, None, None]:
    """mlx-lm's ``stream_generate`` with speculative decoding (see the module docstring)."""
    spec_keys = ("draft_strategy", "acceptor", "block_size", "strategy_options", "stats", "draft_length",
                 "cost_curve", "group")
    spec_kwargs = {k: kwargs.pop(k) for k in spec_keys if k in kwargs}
    if draft_model is None and spec_kwargs.get("draft_strategy") in (None, "none"):
        kwargs.pop("num_draft_tokens", None)
        yield from mlx_lm_stream_generate(model, tokenizer, prompt, max_tokens=max_tokens, **kwargs)
        return
    if max_tokens == 0:
        raise ValueError("Maximum number of tokens must be non-zero (use -1 for no limit).")
    if not isinstance(tokenizer, TokenizerWrapper):
        tokenizer = TokenizerWrapper(tokenizer)
    group = active_group(spec_kwargs.pop("group", None))
    if group is not None:
        check_drafter_for_shards(model, draft_model)
        if kwargs.get("num_draft_tokens") == "auto" and spec_kwargs.get("draft_length") is None:
            raise ValueError("num_draft_tokens='auto' is not supported on a sharded target yet (its cost curve "
                             "is this machine's); pass an integer")
    stats: SpecStats = spec_kwargs.pop("stats", None) or SpecStats()
    draft_length = spec_kwargs.pop("draft_length", None)
    cost_curve = spec_kwargs.pop("cost_curve", None)
    num_draft_tokens = kwargs.pop("num_draft_tokens", None)
    auto = num_draft_tokens == "auto"
    if auto:
        num_draft_tokens = AUTO_MAX_DRAFT_TOKENS
    target, proposer, acceptor_spec, sampling, strategy, k = prepare(
        model,
        draft_model,
        sampler=kwargs.pop("sampler", None),
        logits_processors=kwargs.pop("logits_processors", None),
        num_draft_tokens=num_draft_tokens,
        prefill_step_size=kwargs.get("prefill_step_size", 2048),
        **spec_kwargs,
    )
    stats.strategy, stats.acceptor = strategy.name, acceptor_spec.name
    if auto and draft_length is None:
        from .scheduler import make_scheduler

        draft_length = make_scheduler(cost_curve, model=model, draft_model=draft_model, strategy=strategy.name,
                                      width=k, strategy_options=spec_kwargs.get("strategy_options"))
    unsupported = sorted(k for k in kwargs if k in ("input_embeddings", "kv_bits"))
    if unsupported:
        raise ValueError(f"not supported with speculative decoding: {', '.join(unsupported)}")
    prompt = _encode(tokenizer, prompt)
    accept = acceptor_spec.accept
    if group is not None:  # every rank in lockstep; rank 0 drafts and decides (see .distributed)
        check_same("prompts or generation settings",
                   digest(prompt.tolist(), max_tokens, strategy.name, acceptor_spec.name, k, auto,
                          sampling.params, target.model_type, target.num_layers, target.vocab_size), group)
        proposer = LockstepProposer(proposer, group)
        accept = lockstep_acceptor(accept, group)
        draft_length = lockstep_draft_length(draft_length, group)
    prompt_cache = kwargs.pop("prompt_cache", None)
    if prompt_cache is None and kwargs.get("max_kv_size") is not None:
        prompt_cache = target.make_cache(max_kv_size=kwargs["max_kv_size"])
    tokens = speculative_generate_step(
        prompt,
        target,
        proposer,
        accept,
        num_draft_tokens=k,
        max_tokens=max_tokens,
        sampling=sampling,
        prompt_cache=prompt_cache,
        prefill_step_size=kwargs.get("prefill_step_size", 2048),
        stats=stats,
        draft_length=draft_length,
    )
    yield from _responses(tokens, tokenizer, prompt, max_tokens, model, stats)


def _responses(tokens, tokenizer: TokenizerWrapper, prompt: mx.array, max_tokens: int, model, stats):
    detokenizer = tokenizer.detokenizer
    eos = tokenizer.eos_token_ids

    def response(n, token, logprobs, from_draft, finish):
        return SpecGenerationResponse(
            text=detokenizer.last_segment,
            token=token,
            logprobs=logprobs,
            from_draft=from_draft,
            prompt_tokens=prompt.size,
            prompt_tps=prompt_tps,
            generation_tokens=n + 1,
            generation_tps=(n + 1) / max(time.perf_counter() - tic, 1e-9),
            peak_memory=mx.get_peak_memory() / 1e9,
            finish_reason=finish,
            spec=stats,
        )

    with wired_limit(model):
        tic = time.perf_counter()
        prompt_tps = 0.0
        token, logprobs, from_draft, n = None, None, False, -1
        for n, (token, logprobs, from_draft) in enumerate(tokens):
            if n == 0:
                prompt_tps = prompt.size / max(time.perf_counter() - tic, 1e-9)
                tic = time.perf_counter()
            if token in eos:
                break
            detokenizer.add_token(token)
            if n + 1 == max_tokens:
                break
            yield response(n, token, logprobs, from_draft, None)
        tokens.close()
        detokenizer.finalize()
        yield response(n, token, logprobs, from_draft, "stop" if token in eos else "length")


def generate(model: nn.Module, tokenizer, prompt, verbose: bool = False, **kwargs) -> str:
    """mlx-lm's ``generate`` over our :func:`stream_generate`; with ``verbose`` the speculative
    statistics follow mlx-lm's own lines."""
    if verbose:
        print("=" * 10)
    text, response = "", None
    for response in stream_generate(model, tokenizer, prompt, **kwargs):
        if verbose:
            print(response.text, end="", flush=True)
        text += response.text
    if verbose and response is not None:
        print()
        print("=" * 10)
        if not text:
            print("No text generated for this prompt")
            return text
        print(f"Prompt: {response.prompt_tokens} tokens, {response.prompt_tps:.3f} tokens-per-sec")
        print(f"Generation: {response.generation_tokens} tokens, {response.generation_tps:.3f} tokens-per-sec")
        print(f"Peak memory: {response.peak_memory:.3f} GB")
        spec = getattr(response, "spec", None)
        if spec is not None:
            print(spec.summary())
    return text
