"""Speculative decoding for mlx-vlm models: ``stream_generate`` / ``generate`` with mlx-vlm's
signatures, and the ``mlx-specdec vlm`` command (a superset of ``mlx_vlm generate``).

How a generation runs:

1. mlx-vlm's own processor turns the prompt + images / audio / video into ``input_ids``,
   ``pixel_values`` and the model's extra inputs (``prepare_inputs``, as ``mlx_vlm.generate``).
2. mlx-vlm's ``model.get_input_embeddings`` embeds them (the image features scattered in).
3. Our loop (:func:`~mlx_specdec_plugin.loop.speculative_generate_step`) runs with
   ``prefill_fn=`` :meth:`EmbeddedPrompt.prefill`: the prompt's context goes through mlx-vlm's
   *language model* as embeddings (in one piece when the model's own chunked-prefill policy says
   so, e.g. Gemma-4's bidirectional attention over image tokens); from the prompt's last token on,
   the language model is driven with token ids by :class:`VLMTargetAdapter` -- propose, verify,
   accept, roll back, exactly as for mlx-lm targets, with any strategy and acceptor.

Hidden-state taps (DSpark / DFlash drafters) use the language model's own ``capture_layer_ids``
(Gemma-4, Qwen3.5, ...); :meth:`VLMTargetAdapter.check_taps` refuses models without it. The
language model's caches are built by the model (``make_cache``) and held as mlx-lm's
``KVCache`` / ``RotatingKVCache`` (mlx-vlm's classes of the same name behave the same for
``keep=0``), so :mod:`.caches` rolls them back.

With no drafter (``draft_model=None`` and ``draft_strategy`` ``None``/``"none"``) the call goes
straight to mlx-vlm. Differences from mlx-vlm on the speculative path: logits processors
(repetition / presence / frequency penalty, logit bias) are mlx-lm's and see the whole token
history (prompt included), as in mlx-lm; ``seed`` seeds mlx's global generator; KV quantization,
thinking budgets, prompt-cache reuse (``prompt_cache_state``, APC, ``vision_cache``) and
top-n-sigma / p-less / typical-p sampling are refused with one clear error.
"""

from __future__ import annotations

import argparse
import codecs
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Generator, List, Optional, Sequence, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models import cache as lm_cache
from mlx_vlm import generate as vlm_generate
from mlx_vlm import stream_generate as vlm_stream_generate
from mlx_vlm.apc import multimodal_token_ids_from_config
from mlx_vlm.generate.common import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MIN_P,
    DEFAULT_REPETITION_CONTEXT_SIZE,
    GenerationResult,
    _chunked_prefill_enabled,
    resolve_sampling_defaults,
)
from mlx_vlm.generate.common import wired_limit as vlm_wired_limit
from mlx_vlm.generate.dispatch import _video_sampling_kwargs, normalize_resize_shape, parse_arguments
from mlx_vlm.generate.dispatch import main as upstream_main
from mlx_vlm.models import cache as vlm_cache
from mlx_vlm.models.cache import make_prompt_cache as vlm_make_prompt_cache
from mlx_vlm.prompt_utils import apply_chat_template
from mlx_vlm.sample_utils import clamp_temperature
from mlx_vlm.tokenizer_utils import make_streaming_detokenizer
from mlx_vlm.utils import StoppingCriteria, prepare_inputs, should_add_special_tokens
from mlx_vlm.utils import load as vlm_load

from .. import caches
from ..contract import Proposer
from ..generate import SPEC_KEYS, Step, response_steps, speculate, upstream_sampling
from ..loading import LoadError, check_draft, load_draft
from ..options import add_speculative_args, draft_tokens_type, say as _say, strategy_options
from ..sampling import SamplingParams
from ..stats import SpecStats
from ..target import TargetAdapter, check_tap_range
from ..tree import TREE_FAMILIES, tree_forward

# mlx-vlm generate_step keys that shape the distribution or the cache; handled here.
_SAMPLING_KEYS = (
    "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "repetition_context_size",
    "presence_penalty", "presence_context_size", "frequency_penalty", "frequency_context_size",
    "logit_bias", "sampler", "logits_processors", "seed",
)
# Accepted and ignored on the speculative path (they only matter for mlx-vlm's own loop/caches
# or are defaults): name -> the value that is fine.
_IGNORED_DEFAULTS = {
    "kv_group_size": None, "kv_quant_scheme": None, "quantized_kv_start": None, "kv_bits": None,
    "kv_key_bits": None, "kv_value_bits": None, "kv_key_scheme": None, "kv_value_scheme": None,
    "thinking_budget": None, "thinking_end_token": None, "thinking_start_token": None,
    "enable_thinking": None, "prompt_cache_state": None, "apc_manager": None, "apc_tenant": None,
    "vision_cache": None, "top_n_sigma": 0.0, "p_less": False, "typical_p": 1.0, "draft_kind": None,
    "prompt_cache": None, "inputs_embeds": None,
}
_ALWAYS_FINE = {"kv_group_size", "kv_quant_scheme", "quantized_kv_start", "thinking_end_token",
                "thinking_start_token", "enable_thinking", "apc_tenant"}
# mlx-vlm's sequence-aligned prompt kwargs (sliced with the prompt when it is prefilled whole).
_SEQUENCE_ALIGNED = {
    "attention_mask", "decoder_inputs_embeds", "deepstack_visual_embeds", "visual_pos_masks",
    "per_layer_inputs", "full_text_row_masked_out_mask", "position_ids", "pos_hw",
    "mm_token_type_ids", "token_type_ids",
}


# --------------------------------------------------------------------------- target


def _to_mlx_lm_cache(c: Any) -> Any:
    """mlx-vlm's KVCache / RotatingKVCache (fresh) as mlx-lm's, which :mod:`.caches` rolls back."""
    if type(c) is vlm_cache.KVCache:
        return lm_cache.KVCache()
    if type(c) is vlm_cache.RotatingKVCache and c.keep == 0:
        return lm_cache.RotatingKVCache(max_size=c.max_size, keep=c.keep)
    inner = getattr(c, "caches", None)
    if type(c) is vlm_cache.CacheList and inner is not None:
        return lm_cache.CacheList(*[_to_mlx_lm_cache(x) for x in inner])
    return c  # caches.check_rollback names it


class VLMTargetAdapter(TargetAdapter):
    """An mlx-vlm model's *language model* as the loop's target.

    ``model``: the mlx-vlm model (``model.language_model`` is driven; ``self.model`` is the
    language model, which drafters bind to for the embedding and head). ``__call__`` is
    ``language_model(tokens, cache=, capture_layer_ids=)``: logits and the captured layer outputs
    (tap ``i`` = output of decoder layer ``i``, as for mlx-lm targets).
    """

    def __init__(self, model: nn.Module):
        self.vlm = model
        lm = getattr(model, "language_model", model)
        super().__init__(lm)
        self._family = None  # never an mlx-lm tap family: the language model captures itself
        config = getattr(lm, "config", None)
        self.hidden_size = int(getattr(config, "hidden_size", 0) or self.hidden_size)
        self.vocab_size = int(getattr(config, "vocab_size", 0) or self.vocab_size)

    def make_cache(self, max_kv_size: Optional[int] = None) -> List[Any]:
        return [_to_mlx_lm_cache(c) for c in vlm_make_prompt_cache(self.model, max_kv_size=max_kv_size)]

    @property
    def can_capture(self) -> bool:
        try:
            params = inspect.signature(self.model.__call__).parameters
        except (TypeError, ValueError):
            return False
        return "capture_layer_ids" in params

    def check_taps(self, taps: Sequence[int]) -> None:
        if not taps:
            return
        check_tap_range(taps, self.num_layers)
        if not self.can_capture:
            raise ValueError(
                f"hidden-state taps need an mlx-vlm language model with capture_layer_ids; "
                f"'{self.model_type}' has none (use --draft-strategy lookup or none)"
            )
        if not self._probed:
            if not self._proven("taps"):  # once per language model, not once per generation
                self._probe(taps)
                self._prove("taps")
            self._probed = True

    def _probe(self, taps: Sequence[int]) -> None:
        """Captured forward == plain forward, and one captured state per asked layer."""
        tokens = mx.array([[t % self.vocab_size for t in self.PROBE]], dtype=mx.uint32)
        ref_cache, our_cache = self.make_cache(), self.make_cache()
        for part in (tokens[:, :5], tokens[:, 5:6], tokens[:, 6:]):
            ref = self.model(part, cache=ref_cache).logits
            ours, hidden = self(part, our_cache, taps)
            mx.eval(ref, ours, hidden)
            diff = float(mx.abs(ref - ours).max().item()) / (1.0 + float(mx.abs(ref).max().item()))
            if diff > 1e-4 or hidden.shape[:2] != part.shape or hidden.shape[-1] % len(taps):
                raise ValueError(
                    f"the capture forward of '{self.model_type}' does not reproduce the language "
                    f"model (relative difference {diff:.2e}); refusing to tap hidden states"
                )

    def gather(self, captured: Optional[List[mx.array]], taps: Sequence[int]) -> Optional[mx.array]:
        """The language model captures in layer order, once per layer; return them in tap order."""
        if not taps:
            return None
        layers = sorted(set(taps))
        if captured is None or len(captured) != len(layers):
            raise ValueError(
                f"'{self.model_type}' returned {0 if captured is None else len(captured)} captured "
                f"states for layers {layers}"
            )
        by_layer = dict(zip(layers, captured))
        return mx.concatenate([by_layer[t] for t in taps], axis=-1)

    def forward(self, cache: List[Any], taps: Sequence[int] = (), **kwargs) -> Tuple[mx.array, Optional[mx.array]]:
        """``language_model(cache=cache, **kwargs)`` with taps: ``(logits, hidden)``."""
        capture = sorted(set(taps)) if taps else None
        out = self.model(cache=cache, capture_layer_ids=capture, **kwargs) if capture else self.model(cache=cache, **kwargs)
        return out.logits, self.gather(out.hidden_states, taps)

    def check_tree(self) -> None:
        """Tree drafts need a forward with a tree attention mask: one of ours for the language
        model's family (Gemma-4), proven on a probe against the language model's own forward."""
        if self.model_type not in TREE_FAMILIES:
            raise ValueError(
                f"tree verification is not implemented for mlx-vlm targets of model_type '{self.model_type}' "
                f"(supported: {', '.join(sorted(TREE_FAMILIES))}); use a chain strategy (draft-model, dspark, "
                "dflash, eagle3, mtp, lookup)"
            )
        super().check_tree()

    def __call__(self, tokens, cache, taps=(), record=None, tree=None):
        # ``record`` (per-position recurrent states) is left empty: the rollback replays instead.
        if tree is not None:
            return tree_forward(self, tokens, cache, taps, tree)
        return self.forward(cache, taps, inputs=tokens)


# --------------------------------------------------------------------------- prompt


@dataclass
class EmbeddedPrompt:
    """A prompt as mlx-vlm prefills it: token ids, input embeddings (media scattered in) and the
    language model's extra inputs (per-layer inputs, token types, positions, ...).

    :meth:`prefill` is the loop's ``prefill_fn``: it runs the prompt's context (all but the last
    token) through the language model as embeddings and hands each chunk's taps to the proposer.
    """

    input_ids: mx.array  # (1, n)
    inputs_embeds: mx.array  # (1, n, H)
    lm_kwargs: Dict[str, Any] = field(default_factory=dict)
    chunked: bool = True  # False: the context goes through in one forward (model's policy)
    media_token_ids: frozenset = frozenset()

    @classmethod
    def from_inputs(cls, model: nn.Module, input_ids: mx.array, pixel_values=None, mask=None, **data_kwargs) -> "EmbeddedPrompt":
        """Embed with mlx-vlm's ``model.get_input_embeddings`` (as ``mlx_vlm.generate_step``)."""
        if input_ids.ndim == 1:
            input_ids = input_ids[None]
        if input_ids.shape[0] != 1:
            raise ValueError("speculative decoding runs one prompt at a time (batch size 1)")
        explicit = {k: data_kwargs[k] for k in ("position_ids", "rope_deltas") if data_kwargs.get(k) is not None}
        features = model.get_input_embeddings(input_ids, pixel_values, mask=mask, **data_kwargs)
        kwargs = dict(data_kwargs)
        kwargs.update({k: v for k, v in features.to_dict().items() if k != "inputs_embeds" and v is not None})
        kwargs.update(explicit)
        embeds = features.inputs_embeds
        chunked = _chunked_prefill_enabled(model, input_ids=input_ids, inputs_embeds=embeds, prefill_kwargs=kwargs)
        media = frozenset(multimodal_token_ids_from_config(model.config))
        for name in ("audio_token_id", "audio_token_index"):
            if getattr(model.config, name, None) is not None:
                media |= {int(getattr(model.config, name))}
        mx.eval(embeds)
        return cls(input_ids, embeds, kwargs, bool(chunked), media)

    @property
    def tokens(self) -> List[int]:
        return [int(t) for t in self.input_ids[0].tolist()]

    def check(self) -> None:
        last = self.tokens[-1]
        if last in self.media_token_ids:
            raise ValueError(
                "the prompt ends with a media token; speculative decoding continues from a text "
                "token (apply the chat template, or add text after the image)"
            )

    def _sliced(self, stop: int) -> Dict[str, Any]:
        n = self.input_ids.shape[1]
        out = {}
        for k, v in self.lm_kwargs.items():
            if k in _SEQUENCE_ALIGNED and isinstance(v, mx.array):
                axis = 2 if (k == "position_ids" and v.ndim == 3 and v.shape[0] == 3) else 1
                if v.ndim > axis and v.shape[axis] == n:
                    idx = [slice(None)] * v.ndim
                    idx[axis] = slice(0, stop)
                    v = v[tuple(idx)]
            out[k] = v
        return out

    def prefill(self, target: VLMTargetAdapter, cache: List[Any], tokens: Sequence[int], proposer: Proposer, step_size: int) -> None:
        n = len(tokens)
        if list(tokens) != self.tokens[:n]:
            raise ValueError("EmbeddedPrompt.prefill: the loop's prompt differs from the embedded one")
        if n == 0:
            return
        taps = tuple(proposer.tap_layers)
        # Whole (model policy): media-aligned kwargs sliced to the context. Chunked: mlx-vlm passes
        # the full-prompt kwargs to every chunk and the language model aligns them to its cache.
        step = max(1, int(step_size)) if self.chunked else n
        kwargs = self.lm_kwargs if self.chunked else self._sliced(n)
        for start in range(0, n, step):
            stop = min(n, start + step)
            _, hidden = target.forward(
                cache,
                taps,
                inputs=self.input_ids[:, start:stop],
                inputs_embeds=self.inputs_embeds[:, start:stop],
                logits_to_keep=1,
                **kwargs,
            )
            mx.eval([c.state for c in caches.leaves(cache)], hidden)
            proposer.extend(list(tokens[start:stop]), hidden)


def prepare_prompt(model, processor, prompt, image=None, audio=None, video=None, **kwargs) -> EmbeddedPrompt:
    """mlx-vlm's input preparation (``prepare_inputs`` with the processor, or caller-given
    ``input_ids``/``pixel_values``/``mask``), then :meth:`EmbeddedPrompt.from_inputs`.
    ``kwargs`` are processor kwargs (``resize_shape``, ``processor_kwargs`` entries, ...)."""
    if isinstance(image, str):
        image = [image]
    if isinstance(audio, str):
        audio = [audio]
    resize_shape = normalize_resize_shape(kwargs.pop("resize_shape", None))
    if kwargs.get("input_ids") is not None:
        input_ids = kwargs.pop("input_ids")
        pixel_values = kwargs.pop("pixel_values", None)
        mask = kwargs.pop("mask", None)
        return EmbeddedPrompt.from_inputs(model, input_ids, pixel_values, mask, **kwargs)
    inputs = prepare_inputs(
        processor,
        images=image or None,
        audio=audio or None,
        videos=video or None,
        prompts=prompt,
        image_token_index=getattr(model.config, "image_token_index", None),
        resize_shape=resize_shape,
        add_special_tokens=should_add_special_tokens(model.config.model_type, processor),
        **kwargs,
    )
    data = {k: v for k, v in inputs.items() if k not in ("input_ids", "pixel_values", "attention_mask")}
    return EmbeddedPrompt.from_inputs(
        model, inputs["input_ids"], inputs.get("pixel_values"), inputs.get("attention_mask"), **data
    )


# --------------------------------------------------------------------------- generation


@dataclass
class SpecGenerationResult(GenerationResult):
    """mlx-vlm's result plus ``from_draft`` and the running speculative statistics."""

    from_draft: bool = False
    spec: Optional[SpecStats] = None


def make_vlm_sampling(model, kwargs: dict, sampling: Optional[SamplingParams] = None) -> Dict[str, Any]:
    """Pop mlx-vlm's sampling kwargs into :func:`~.generate.speculate`'s: ``sampling`` (a
    :class:`~.sampling.SamplingParams` with mlx-vlm's defaults: the checkpoint's generation config,
    then temperature 0, top-p 1, top-k 0; or the one given) and the caller's extra
    ``logits_processors``; a caller's own ``sampler=`` is kept as it is (see :mod:`.sampling`)."""
    get = kwargs.pop
    temperature, top_p, top_k = resolve_sampling_defaults(
        getattr(model, "config", None), temperature=get("temperature", None), top_p=get("top_p", None),
        top_k=get("top_k", None),
    )
    ctx = DEFAULT_REPETITION_CONTEXT_SIZE
    params = SamplingParams(
        temp=clamp_temperature(float(temperature)),
        top_p=float(top_p or 0.0),
        min_p=float(get("min_p", DEFAULT_MIN_P) or 0.0),
        top_k=int(top_k or 0),
        logit_bias=get("logit_bias", None),
        repetition_penalty=get("repetition_penalty", None),
        repetition_context_size=get("repetition_context_size", ctx) or ctx,
        presence_penalty=get("presence_penalty", None),
        presence_context_size=get("presence_context_size", ctx) or ctx,
        frequency_penalty=get("frequency_penalty", None),
        frequency_context_size=get("frequency_context_size", ctx) or ctx,
    )
    extra = list(get("logits_processors", None) or [])
    sampler = get("sampler", None)
    seed = get("seed", None)
    if seed is not None:
        mx.random.seed(int(seed))
    if sampler is not None:
        if sampling is not None:
            raise ValueError("give sampling= (SamplingParams) or sampler=, not both")
        return {"sampler": sampler, "logits_processors": params.logits_processors() + extra}
    return {"sampling": sampling or params, "logits_processors": extra}


def _refuse_unsupported(kwargs: dict) -> None:
    bad = []
    for k, fine in _IGNORED_DEFAULTS.items():
        if k in kwargs:
            v = kwargs.pop(k)
            if k not in _ALWAYS_FINE and v is not None and v != fine:
                bad.append(k)
    if bad:
        raise ValueError(f"not supported with speculative decoding: {', '.join(sorted(bad))}")


def stream_generate(
    model: nn.Module,
    processor,
    prompt: str,
    image=None,
    audio=None,
    video=None,
    draft_model: Any = None,
    **kwargs,
) -> Generator[Any, None, None]:
    """``mlx_vlm.stream_generate`` with speculative decoding.

    Extra keyword arguments: ``draft_model`` (a DSpark/DFlash checkpoint folder or loaded
    drafter, or an mlx-lm draft model sharing the tokenizer), ``draft_strategy`` (``auto``,
    ``dspark``, ``dflash``, ``lookup``, ``draft-model``, ``none`` or a plugin), ``acceptor``,
    ``num_draft_tokens``, ``block_size``, ``strategy_options``, ``stats`` (a :class:`SpecStats`).
    Yields mlx-vlm ``GenerationResult`` objects (with ``from_draft`` and ``spec``).
    """
    spec_kwargs = {k: kwargs.pop(k) for k in SPEC_KEYS if k in kwargs}
    if draft_model is None and spec_kwargs.get("draft_strategy") in (None, "none"):
        kwargs.update(upstream_sampling(spec_kwargs.get("sampling"), kwargs))
        yield from vlm_stream_generate(model, processor, prompt, image, audio, video, **kwargs)
        return
    if kwargs.pop("draft_block_size", None) is not None and spec_kwargs.get("block_size") is None:
        raise ValueError("use block_size= (draft_block_size is mlx-vlm's own drafter option)")
    max_tokens = kwargs.pop("max_tokens", None)
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if max_tokens == 0:
        raise ValueError("max_tokens must be non-zero (use -1 for no limit)")
    tokenizer = processor.tokenizer if hasattr(processor, "tokenizer") else processor
    kwargs.pop("verbose", None)
    skip_special = kwargs.pop("skip_special_tokens", False)
    skip_ids = set(tokenizer.all_special_ids) if skip_special and hasattr(tokenizer, "all_special_ids") else []
    prefill_step_size = kwargs.pop("prefill_step_size", None) or 2048
    max_kv_size = kwargs.pop("max_kv_size", None)
    stats: SpecStats = spec_kwargs.pop("stats", None) or SpecStats()
    drawing = make_vlm_sampling(model, kwargs, spec_kwargs.pop("sampling", None))

    direct = {k: kwargs.pop(k) for k in ("input_ids", "pixel_values", "mask") if kwargs.get(k) is not None}
    _refuse_unsupported(kwargs)
    target = VLMTargetAdapter(model)
    run = speculate(target.model, draft_model, target=target, **drawing,
                    prefill_step_size=prefill_step_size, stats=stats, **spec_kwargs)
    embedded = prepare_prompt(model, processor, prompt, image, audio, video, **direct, **kwargs)
    embedded.check()
    cache = target.make_cache(max_kv_size=max_kv_size)
    tokens = run.tokens(embedded.input_ids[0], max_tokens, cache, prefill_fn=embedded.prefill)
    yield from _results(tokens, processor, tokenizer, embedded.input_ids.size, model, run.stats, skip_ids)


def _stop_fn(tokenizer, model):
    criteria = getattr(tokenizer, "stopping_criteria", None)
    if criteria is not None:
        return criteria
    eos = getattr(model.config, "eos_token_id", None)
    eos = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    eos |= {getattr(tokenizer, "eos_token_id", None)} - {None}
    return lambda token: token in eos


def _results(tokens, processor, tokenizer, prompt_tokens: int, model, stats: SpecStats, skip_ids):
    """mlx-vlm's result protocol over :func:`~.generate.response_steps`: one result per token, then
    the last one with ``finish_reason`` and ``token_ids``; a stop token is not shown."""
    stop = _stop_fn(tokenizer, model)
    detokenizer = make_streaming_detokenizer(processor)
    generated: List[int] = []

    def result(step: Step, **extra) -> SpecGenerationResult:
        return SpecGenerationResult(
            text=detokenizer.last_segment,
            token=step.token,
            logprobs=step.logprobs,
            prompt_tokens=prompt_tokens,
            generation_tokens=step.n + 1,
            total_tokens=prompt_tokens + step.n + 1,
            prompt_tps=step.prompt_tps,
            generation_tps=step.generation_tps,
            peak_memory=mx.get_peak_memory() / 1e9,
            from_draft=step.from_draft,
            spec=stats,
            **extra,
        )

    with vlm_wired_limit(model):
        for step in response_steps(tokens, prompt_tokens, stop):
            if step.token is not None and (step.finish is None or step.finish == "stop"):
                generated.append(step.token)
            if step.finish is not None:
                detokenizer.finalize()
                yield result(step, finish_reason=step.finish, token_ids=list(generated))
                return
            detokenizer.add_token(step.token, skip_special_token_ids=skip_ids)
            yield result(step)


def generate(
    model: nn.Module,
    processor,
    prompt: str,
    image=None,
    audio=None,
    video=None,
    verbose: bool = False,
    **kwargs,
):
    """``mlx_vlm.generate`` over our :func:`stream_generate` (same arguments plus the speculative
    ones); returns mlx-vlm's ``GenerationResult``. With ``verbose`` the speculative statistics
    follow mlx-vlm's lines."""
    speculative = kwargs.get("draft_model") is not None or kwargs.get("draft_strategy") not in (None, "none")
    if not speculative:
        for k in SPEC_KEYS:
            kwargs.pop(k, None)
        kwargs.pop("draft_model", None)
        return vlm_generate(model, processor, prompt, image, audio, video, verbose=verbose, **kwargs)

    if verbose:
        print("=" * 10)
        files = []
        for group in (image, audio, video):
            if group is not None:
                files.extend(group if isinstance(group, list) else [group])
        print(f"Files: {files}", "\n")
        print("Prompt:", prompt)
    tokenizer = processor.tokenizer if hasattr(processor, "tokenizer") else processor
    eos_tokens = kwargs.pop("eos_tokens", None)
    stopping_criteria = kwargs.pop("stopping_criteria", None)
    if hasattr(tokenizer, "stopping_criteria"):
        if eos_tokens is not None:
            tokenizer.stopping_criteria.add_eos_token_ids(eos_tokens)
        elif stopping_criteria is not None:
            if not (isinstance(stopping_criteria, StoppingCriteria) or callable(stopping_criteria)):
                raise ValueError("stopping_criteria must be an instance of StoppingCriteria or a callable")
            tokenizer.stopping_criteria = stopping_criteria
        else:
            tokenizer.stopping_criteria.reset(model.config.eos_token_id)

    text, last = "", None
    for response in stream_generate(model, processor, prompt, image, audio, video, **kwargs):
        if verbose:
            print(response.text, end="", flush=True)
        text += response.text
        last = response
    clean = getattr(processor, "clean_output", None)
    if callable(clean):
        text = clean(text)
    if last is None:
        return GenerationResult(text=text, peak_memory=mx.get_peak_memory() / 1e9)
    if verbose:
        print("\n" + "=" * 10)
        if not text:
            print("No text generated for this prompt")
        print(f"Prompt: {last.prompt_tokens} tokens, {last.prompt_tps:.3f} tokens-per-sec")
        print(f"Generation: {last.generation_tokens} tokens, {last.generation_tps:.3f} tokens-per-sec")
        print(f"Peak memory: {last.peak_memory:.3f} GB")
        if last.spec is not None:
            print(last.spec.summary())
    return GenerationResult(
        text=text,
        token=last.token,
        token_ids=last.token_ids,
        logprobs=last.logprobs,
        prompt_tokens=last.prompt_tokens,
        generation_tokens=last.generation_tokens,
        total_tokens=last.total_tokens,
        prompt_tps=last.prompt_tps,
        generation_tps=last.generation_tps,
        peak_memory=last.peak_memory,
        finish_reason=last.finish_reason,
    )


# --------------------------------------------------------------------------- command line


def speculative_arg_parser() -> argparse.ArgumentParser:
    """Our flags for ``mlx-specdec vlm`` (parsed before mlx-vlm's own parser sees the rest): the
    ones ``generate`` has (:func:`~.options.add_speculative_args`; ``--draft`` is a hidden alias of
    ``--draft-strategy``) and ``--num-draft-tokens`` (an int or ``auto``)."""
    parser = argparse.ArgumentParser(prog="mlx-specdec vlm", add_help=False, allow_abbrev=False)
    add_speculative_args(parser, strategy_aliases=("--draft",))
    group = parser._action_groups[-1]
    group.add_argument(
        "--num-draft-tokens", type=draft_tokens_type, default=None,
        help="proposals per round (default 3; DSpark/DFlash: the checkpoint's block unless set), or 'auto': "
        "choose per round from this machine's calibrated cost curve and the running acceptance",
    )
    for action in group._group_actions:
        if "--block-size" in action.option_strings:
            action.help += "; mlx-vlm's --draft-block-size is read as this when it is not given"
    return parser


def _without_option(argv: List[str], name: str) -> List[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


def _upstream(argv: List[str], call):
    """Run mlx-vlm's own ``parse_arguments`` / ``main`` on ``argv`` (it reads ``sys.argv``)."""
    saved = sys.argv
    sys.argv = ["mlx-specdec vlm"] + list(argv)
    try:
        return call()
    finally:
        sys.argv = saved


def parse_vlm_args(argv: List[str]) -> Tuple[argparse.Namespace, argparse.Namespace, List[str]]:
    """``(upstream args, our args, argv left for upstream)``. ``--help`` prints both parts."""
    ours = speculative_arg_parser()
    spec, rest = ours.parse_known_args(argv)
    try:
        args = _upstream(rest, parse_arguments)
    except SystemExit:
        if any(a in ("-h", "--help") for a in rest):
            print()
            print(ours.format_help())
        raise
    return args, spec, rest


def vlm_main(argv: Optional[List[str]] = None) -> int:
    """``mlx-specdec vlm``: ``mlx_vlm generate`` (every flag, its defaults) plus ``--draft-strategy``,
    ``--acceptor``, ``--num-draft-tokens``, ``--block-size``, ``--lookup-max-ngram``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, spec, rest = parse_vlm_args(argv)
    modality = getattr(args, "output_modality", "text")

    if spec.draft_strategy == "none" or (spec.draft_strategy == "auto" and modality != "text"):
        why = "--draft-strategy none" if spec.draft_strategy == "none" else f"--output-modality {modality}"
        _say(f"strategy: none ({why}: mlx-vlm's own generation)")
        if spec.draft_strategy == "none":
            rest = _without_option(rest, "--draft-model")
        _upstream(rest, upstream_main)
        return 0
    if modality != "text":
        _say(f"error: speculative decoding generates text; --output-modality {modality} needs --draft-strategy none")
        return 2
    if args.chat:
        _say("error: --chat is not supported with speculative decoding yet (use --draft-strategy none)")
        return 2
    if args.thinking_budget is not None or args.kv_bits is not None:
        _say("error: --thinking-budget / --kv-bits are not supported with speculative decoding (use --draft-strategy none)")
        return 2
    if args.draft_kind is not None:  # mlx-vlm's drafter families are strategies of ours
        kind = args.draft_kind
        if kind == "mtp" and args.draft_model not in (None, args.model):
            kind = "auto"  # mlx-vlm's 'mtp' also names assistant drafters: auto tells them apart
        if spec.draft_strategy not in ("auto", kind, args.draft_kind):
            _say(f"error: --draft-kind {args.draft_kind} and --draft-strategy {spec.draft_strategy} disagree")
            return 2
        if spec.draft_strategy == "auto":
            spec.draft_strategy = kind
    return _speculative_cli(args, spec)


def _speculative_cli(args, spec) -> int:
    try:
        draft_path = check_draft(args.draft_model, spec.draft_strategy)
        strategy_options(spec.draft_strategy, spec.strategy_options)
    except LoadError as e:
        _say(f"error: {e}")
        return 2
    if args.seed is not None:
        mx.random.seed(args.seed)
    for name in ("image", "audio", "video"):
        if isinstance(getattr(args, name), str):
            setattr(args, name, [getattr(args, name)])
    model, processor = vlm_load(
        args.model, args.adapter_path, revision=args.revision, trust_remote_code=args.trust_remote_code,
        quantize_activations=args.quantize_activations, expert_cache_gb=args.expert_cache_gb,
        max_kv_size=args.max_kv_size,
    )
    config = model.config
    args.temperature, args.top_p, args.top_k = resolve_sampling_defaults(
        config, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k
    )

    try:  # the drafter reads the language model (its embedding, head and hidden states)
        choice = load_draft(draft_path, VLMTargetAdapter(model).model, spec.draft_strategy, args.trust_remote_code,
                            args.model)
        options = strategy_options(choice.strategy, spec.strategy_options)
    except LoadError as e:
        _say(f"error: {e}")
        return 2
    _say(f"strategy: {choice.strategy or 'none'} ({choice.reason})")

    prompt = args.prompt
    if args.system:
        prompt = [{"role": "system", "content": args.system}] + (prompt if isinstance(prompt, list) else [prompt])
    template_kwargs = {"enable_thinking": args.enable_thinking}
    if args.thinking_mode is not None:
        template_kwargs["thinking_mode"] = args.thinking_mode
    if args.video:
        template_kwargs["video"] = args.video
        template_kwargs["fps"] = args.fps
    prompt = apply_chat_template(
        processor, config, prompt, num_images=len(args.image or []), num_audios=len(args.audio or []),
        **template_kwargs,
    )

    kwargs: Dict[str, Any] = {}
    if args.eos_tokens is not None:
        eos = []
        for token in args.eos_tokens:
            try:
                eos.append(codecs.decode(token, "unicode_escape"))
            except (UnicodeDecodeError, UnicodeError):
                eos.append(token)
        kwargs["eos_tokens"] = eos
    if args.skip_special_tokens:
        kwargs["skip_special_tokens"] = True
    kwargs.update(args.processor_kwargs or {})
    kwargs.update(args.gen_kwargs or {})
    if args.video:
        kwargs.update(_video_sampling_kwargs(args))
    if args.resize_shape is not None:
        kwargs["resize_shape"] = args.resize_shape
    block_size = spec.block_size if spec.block_size is not None else args.draft_block_size
    try:
        result = generate(
            model,
            processor,
            prompt,
            image=args.image,
            audio=args.audio,
            video=args.video,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            min_p=args.min_p,
            max_tokens=args.max_tokens,
            repetition_penalty=args.repetition_penalty,
            repetition_context_size=args.repetition_context_size,
            presence_penalty=args.presence_penalty,
            presence_context_size=args.presence_context_size,
            frequency_penalty=args.frequency_penalty,
            frequency_context_size=args.frequency_context_size,
            verbose=args.verbose,
            max_kv_size=args.max_kv_size,
            prefill_step_size=args.prefill_step_size,
            draft_model=choice.draft,
            draft_strategy=choice.strategy or "none",
            acceptor=spec.acceptor,
            num_draft_tokens=spec.num_draft_tokens,
            block_size=block_size,
            strategy_options=options,
            **kwargs,
        )
    except ValueError as e:
        _say(f"error: {e}")
        return 2
    if not args.verbose:
        print(result.text)
    return 0
