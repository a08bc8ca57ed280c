"""Drop-in ``stream_generate`` / ``generate`` with mlx-lm's signatures.

``from mlx_specdec_plugin import stream_generate`` in place of mlx-lm's: with no drafter and no
``draft_strategy`` the call goes straight to mlx-lm; otherwise our loop runs, with the extra
keyword arguments ``draft_strategy=``, ``acceptor=``, ``num_draft_tokens=``, ``block_size=``,
``strategy_options=``, ``sampling=`` (a :class:`~.sampling.SamplingParams`, instead of mlx-lm's
``sampler=`` / ``logits_processors=``; :mod:`.sampling` says which samplers keep every acceptor
exact) and ``stats=`` (a :class:`SpecStats` to fill). ``num_draft_tokens="auto"``
chooses each round's draft length (up to :data:`AUTO_MAX_DRAFT_TOKENS`) with
:class:`~mlx_specdec_plugin.scheduler.AdaptiveScheduler` from the cached cost curve of this machine
(``cost_curve=`` injects one; ``draft_length=`` any ``(stats, cap) -> int`` callable). Every response is a
:class:`SpecGenerationResponse` (a ``GenerationResponse``) whose ``spec`` holds the statistics.
To continue from a prefix cache (:mod:`.prefix_cache`): ``prompt_cache=`` and ``proposer=`` hold the
state of the prompt's first ``cached_tokens=`` tokens (``target=``: the adapter they were built with).

In a process group of more than one rank (``mlx.launch``; ``group=`` names one, ``group=False``
opts out) every rank must make the same call on its shard of the target: rank 0 drafts and
decides, the others follow (:mod:`.distributed`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Generator, Iterator, List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.generate import GenerationResponse, wired_limit
from mlx_lm.generate import stream_generate as mlx_lm_stream_generate
from mlx_lm.tokenizer_utils import TokenizerWrapper

from .contract import AcceptorSpec
from .distributed import (LockstepProposer, NoDrafts, active_group, check_drafter_for_shards, check_same, digest,
                          lockstep_acceptor, lockstep_draft_length)
from .contract import Proposer, Strategy, StrategyOptions
from .loop import Prefill, speculative_generate_step
from .plugins import registry
from .sampling import Sampling, SamplingParams
from .scheduler import AdaptiveScheduler, CostCurve, make_scheduler
from .stats import SpecStats
from .target import TargetAdapter

DEFAULT_NUM_DRAFT_TOKENS = 3
AUTO_MAX_DRAFT_TOKENS = 8  # the scheduler's cap for num_draft_tokens="auto"
# The keyword arguments both drop-in APIs (this module's and :mod:`.vlm`'s) take beyond upstream's.
SPEC_KEYS = ("draft_strategy", "acceptor", "num_draft_tokens", "block_size", "strategy_options", "stats",
             "draft_length", "cost_curve", "sampling", "target", "proposer", "cached_tokens")


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
            f"acceptor '{name}' needs the sampling distribution, but the sampler is opaque (nothing inside a "
            "sampler is read); pass sampling=SamplingParams(...) or mlx_specdec_plugin.make_sampler(...) (the same "
            "arguments and draws as mlx-lm's), or use acceptor='match'"
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
    sampling: Optional[SamplingParams] = None,
    proposer: Any = None,
):
    """Resolve and validate everything before generation: returns
    ``(target, proposer, acceptor_spec, sampling, strategy, num_draft_tokens)``; raises
    ``ValueError`` with one clear message on bad input. ``strategy`` is ``None`` for plain decoding.
    ``num_draft_tokens=None``: the proposer's ``cap`` (its natural block) if it has one, else 3.
    ``sampling``: how tokens are drawn (:class:`~.sampling.SamplingParams`, what the front ends
    build), or else mlx-lm's ``sampler`` / ``logits_processors`` (see :mod:`.sampling`).

    ``proposer``: one this strategy built earlier with the same options, to continue (a prefix
    cache's); otherwise a fresh one is built."""
    strategy = resolve_strategy(draft_model, draft_strategy)
    requested = num_draft_tokens
    if requested is not None and int(requested) < 1:
        raise ValueError(f"num_draft_tokens must be >= 1, got {num_draft_tokens}")
    num_draft_tokens = int(requested or DEFAULT_NUM_DRAFT_TOKENS)
    sampling = Sampling.create(sampler, logits_processors, params=sampling)
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
    if proposer is None:
        proposer = strategy.build(target, draft_model, options)
    target.check_taps(proposer.tap_layers)
    if getattr(proposer, "drafts_trees", False):
        spec = resolve_acceptor(acceptor, sampling, trees=True)
        target.check_tree()
    if requested is None:  # the drafter's natural block (DFlash 15, DSpark its trained size), else 3
        num_draft_tokens = int(getattr(proposer, "cap", None) or DEFAULT_NUM_DRAFT_TOKENS)
    return target, proposer, spec, sampling, strategy, num_draft_tokens


def proposer_factory(model: nn.Module, draft_model: Any, strategy: str, strategy_options: Optional[dict] = None,
                     target: Optional[TargetAdapter] = None) -> Callable[[], Tuple[TargetAdapter, Proposer]]:
    """``build() -> (target, fresh proposer)`` as :func:`prepare` builds them: what the calibration
    (:mod:`.costs`) times the drafter with, without knowing how strategies are resolved."""

    def build() -> Tuple[TargetAdapter, Proposer]:
        built = prepare(model, draft_model, draft_strategy=strategy, acceptor="greedy",
                        strategy_options=strategy_options, target=target)
        return built[0], built[1]

    return build


def auto_scheduler(model: nn.Module, draft_model: Any, strategy: str, width: int = AUTO_MAX_DRAFT_TOKENS,
                   strategy_options: Optional[dict] = None, cost_curve: Optional[CostCurve] = None,
                   target: Optional[TargetAdapter] = None) -> AdaptiveScheduler:
    """``num_draft_tokens="auto"``'s draft-length policy: an :class:`AdaptiveScheduler` over
    ``cost_curve``, or over this machine's cached calibration for the model and drafter (measured
    now, quickly, when there is none). ``target``: the adapter to measure through (a VLM's)."""
    build = proposer_factory(model, draft_model, strategy, strategy_options, target)
    return make_scheduler(cost_curve, model=model, draft_model=draft_model, strategy=strategy, width=width,
                          build=build, target=target)


@dataclass
class Speculation:
    """One generation's speculative decoding, resolved and validated by :func:`speculate`.

    ``target`` / ``proposer`` are fresh for this generation (the proposer owns the drafter's
    per-generation state, the caller owns the target cache it passes to :meth:`tokens`).
    ``draft_length``: the per-round policy (``auto``'s scheduler), or ``None`` for a fixed length.
    """

    target: TargetAdapter
    proposer: Proposer
    acceptor: AcceptorSpec
    sampling: Sampling
    strategy: Strategy
    num_draft_tokens: int
    stats: SpecStats
    draft_length: Optional[Callable[[SpecStats, int], int]] = None
    prefill_step_size: int = 2048
    cached_tokens: int = 0  # prompt tokens already in the cache passed to tokens() (a prefix cache's)

    def tokens(self, prompt: mx.array, max_tokens: int, prompt_cache: Optional[List[Any]] = None,
               prefill_fn: Optional[Prefill] = None) -> Generator[Tuple[int, mx.array, bool], None, None]:
        """The loop's ``(token, logprobs, from_draft)`` generator after ``prompt`` (1-D ids)."""
        return speculative_generate_step(
            prompt, self.target, self.proposer, self.acceptor.accept, num_draft_tokens=self.num_draft_tokens,
            max_tokens=max_tokens, sampling=self.sampling, prompt_cache=prompt_cache,
            prefill_step_size=self.prefill_step_size, stats=self.stats, draft_length=self.draft_length,
            prefill_fn=prefill_fn, cached_tokens=self.cached_tokens,
        )


def speculate(
    model: nn.Module,
    draft_model: Any = None,
    *,
    target: Optional[TargetAdapter] = None,
    sampler=None,
    logits_processors=None,
    sampling: Optional[SamplingParams] = None,
    prefill_step_size: int = 2048,
    draft_strategy: Optional[str] = None,
    acceptor: Optional[str] = None,
    num_draft_tokens: Union[None, int, str] = None,
    block_size: Optional[int] = None,
    strategy_options: Optional[dict] = None,
    stats: Optional[SpecStats] = None,
    draft_length: Optional[Callable[[SpecStats, int], int]] = None,
    cost_curve: Optional[CostCurve] = None,
    proposer: Any = None,
    cached_tokens: int = 0,
) -> Optional[Speculation]:
    """The one speculative setup the LM and VLM drop-in APIs share: :func:`prepare` plus the
    draft-length policy (``num_draft_tokens="auto"``: :func:`auto_scheduler` up to
    :data:`AUTO_MAX_DRAFT_TOKENS`, unless ``draft_length`` is given). ``None``: plain decoding.
    Raises ``ValueError`` with one clear message on bad input, before anything is generated."""
    auto = num_draft_tokens == "auto"
    target, proposer, spec, sampling, strategy, k = prepare(
        model, draft_model, draft_strategy=draft_strategy, acceptor=acceptor, sampler=sampler,
        logits_processors=logits_processors, num_draft_tokens=AUTO_MAX_DRAFT_TOKENS if auto else num_draft_tokens,
        prefill_step_size=prefill_step_size, block_size=block_size, strategy_options=strategy_options,
        target=target, sampling=sampling, proposer=proposer,
    )
    if strategy is None:
        return None
    stats = stats if stats is not None else SpecStats()
    stats.strategy, stats.acceptor = strategy.name, spec.name
    if auto and draft_length is None:
        draft_length = auto_scheduler(model, draft_model, strategy.name, k, strategy_options, cost_curve, target)
    return Speculation(target, proposer, spec, sampling, strategy, k, stats, draft_length, prefill_step_size,
                       cached_tokens)


@dataclass
class Step:
    """One step of a drop-in API's response loop (:func:`response_steps`): ``n`` tokens so far
    (0-based index of ``token``), the rates so far, and ``finish`` on the last step only."""

    n: int
    token: Optional[int]
    logprobs: Optional[mx.array]
    from_draft: bool
    prompt_tps: float
    generation_tps: float
    finish: Optional[str] = None  # "stop" (token is the stop token, not shown) or "length"


def response_steps(tokens, prompt_tokens: int, is_stop: Callable[[int], bool],
                   max_tokens: int = -1) -> Iterator[Step]:
    """The response loop both drop-in APIs share: one :class:`Step` per emitted token, then a last
    step with ``finish``. Prompt throughput is timed up to the first token, generation after it;
    a stop token (``is_stop``) ends it with ``"stop"``, ``max_tokens`` or the end of ``tokens``
    with ``"length"``. ``tokens`` (the loop's generator) is closed when the loop ends."""
    tic = time.perf_counter()
    prompt_tps = 0.0
    token, logprobs, from_draft, n, finish = None, None, False, -1, "length"

    def step(done: Optional[str] = None) -> Step:
        rate = (n + 1) / max(time.perf_counter() - tic, 1e-9)
        return Step(n, token, logprobs, from_draft, prompt_tps, rate, done)

    try:
        for n, (token, logprobs, from_draft) in enumerate(tokens):
            if n == 0:
                prompt_tps = prompt_tokens / max(time.perf_counter() - tic, 1e-9)
                tic = time.perf_counter()
            if is_stop(token):
                finish = "stop"
                break
            yield step()
            if n + 1 == max_tokens:
                break
    finally:
        tokens.close()
    yield step(finish)


def upstream_sampling(sampling: Optional[SamplingParams], kwargs: dict) -> dict:
    """``sampler=`` / ``logits_processors=`` for an upstream call (plain decoding) from ``sampling``
    (the processors after the caller's own ones); ``{}`` without it."""
    if sampling is None:
        return {}
    if kwargs.get("sampler") is not None:
        raise ValueError("give sampling= (SamplingParams) or sampler=, not both")
    return {"sampler": sampling.sampler(),
            "logits_processors": sampling.logits_processors() + list(kwargs.get("logits_processors") or [])}


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
    spec_kwargs = {k: kwargs.pop(k) for k in SPEC_KEYS if k in kwargs}
    group_arg = kwargs.pop("group", None)
    group = active_group(group_arg)
    if draft_model is None and spec_kwargs.get("draft_strategy") in (None, "none"):
        if group is None:
            kwargs.update(upstream_sampling(spec_kwargs.get("sampling"), kwargs))
            yield from mlx_lm_stream_generate(model, tokenizer, prompt, max_tokens=max_tokens, **kwargs)
            return
        # under a process group plain decoding is rank 0's too: our lockstep loop, every round
        # drafting nothing (rank 0 draws each token; the other ranks need neither its seed nor its bits)
        if kwargs.get("kv_bits") is None:
            for key in ("kv_bits", "kv_group_size", "quantized_kv_start"):
                kwargs.pop(key, None)
        spec_kwargs.update(draft_strategy="lookup", draft_length=NoDrafts(), num_draft_tokens=1)
    if max_tokens == 0:
        raise ValueError("Maximum number of tokens must be non-zero (use -1 for no limit).")
    if not isinstance(tokenizer, TokenizerWrapper):
        tokenizer = TokenizerWrapper(tokenizer)
    if group is not None:
        check_drafter_for_shards(model, draft_model)
        if spec_kwargs.get("num_draft_tokens") == "auto" and spec_kwargs.get("draft_length") is None:
            raise ValueError("num_draft_tokens='auto' is not supported on a sharded target yet (its cost curve "
                             "is this machine's); pass an integer")
    run = speculate(model, draft_model, sampler=kwargs.pop("sampler", None),
                    logits_processors=kwargs.pop("logits_processors", None),
                    prefill_step_size=kwargs.get("prefill_step_size", 2048), **spec_kwargs)
    unsupported = sorted(k for k in kwargs if k in ("input_embeddings", "kv_bits"))
    if unsupported:
        raise ValueError(f"not supported with speculative decoding: {', '.join(unsupported)}")
    prompt = _encode(tokenizer, prompt)
    if group is not None:  # every rank in lockstep; rank 0 drafts and decides (see .distributed)
        check_same("prompts or generation settings",
                   digest(prompt.tolist(), max_tokens, run.strategy.name, run.acceptor.name, run.num_draft_tokens,
                          run.sampling.params, run.target.model_type,
                          None if run.target.pipeline else run.target.num_layers,  # a stage's own count
                          run.target.vocab_size), group)
        run = replace(run, proposer=LockstepProposer(run.proposer, group),
                      acceptor=replace(run.acceptor, accept=lockstep_acceptor(run.acceptor.accept, group)),
                      draft_length=lockstep_draft_length(run.draft_length, group))
    prompt_cache = kwargs.pop("prompt_cache", None)
    if prompt_cache is None and kwargs.get("max_kv_size") is not None:
        prompt_cache = run.target.make_cache(max_kv_size=kwargs["max_kv_size"])
    tokens = run.tokens(prompt, max_tokens, prompt_cache)
    yield from _responses(tokens, tokenizer, prompt, max_tokens, model, run.stats)


def _responses(tokens, tokenizer: TokenizerWrapper, prompt: mx.array, max_tokens: int, model, stats):
    """mlx-lm's response protocol over :func:`response_steps`: the token that reaches ``max_tokens``
    comes in the last response, with the rest of the text; a stop token is not shown."""
    detokenizer = tokenizer.detokenizer
    eos = tokenizer.eos_token_ids

    def response(step: Step) -> SpecGenerationResponse:
        return SpecGenerationResponse(
            text=detokenizer.last_segment,
            token=step.token,
            logprobs=step.logprobs,
            from_draft=step.from_draft,
            prompt_tokens=prompt.size,
            prompt_tps=step.prompt_tps,
            generation_tokens=step.n + 1,
            generation_tps=step.generation_tps,
            peak_memory=mx.get_peak_memory() / 1e9,
            finish_reason=step.finish,
            spec=stats,
        )

    with wired_limit(model):
        for step in response_steps(tokens, prompt.size, lambda t: t in eos, max_tokens):
            if step.finish is not None:
                detokenizer.finalize()
                yield response(step)
                return
            detokenizer.add_token(step.token)
            if step.n + 1 < max_tokens or max_tokens < 0:
                yield response(step)


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
