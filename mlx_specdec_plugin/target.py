"""The target adapter: an mlx-lm model's forward that also returns tapped hidden states.

Nothing is patched. For a forward with taps the adapter re-runs the model's own public pieces
(embedding, per-layer masks from mlx-lm's ``create_attention_mask``, each decoder layer, final
norm, head) in the model's order; a *family* function says how, per ``model_type``. Before it is
trusted, :meth:`TargetAdapter.check_taps` runs a probe: its logits must reproduce ``model(x)``
(fresh caches, a prefill and an incremental step), otherwise it refuses with a clear error.
Tap ``i`` is the output of decoder layer ``i`` (before the final norm), as Hugging Face's
``hidden_states[i + 1]``.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.base import create_attention_mask
from mlx_lm.models.cache import make_prompt_cache

from .bucketed import bucketed, bucketing_default
from .recurrent import GDN_HYBRIDS, PROBE, capture_forward, gdn_hybrid_forward
from .tree import check_tree_forward, relative_max_diff, tree_forward

# family(model, tokens (B, L), cache list, taps) -> (final hidden after norm, [tapped (B, L, H)])
FamilyForward = Callable[[nn.Module, mx.array, List[Any], Sequence[int]], Tuple[mx.array, List[mx.array]]]
FAMILIES: Dict[str, FamilyForward] = {}
# What a probe has proven, per model object: a new adapter over the same model (one per
# generation) does not probe it again. Key: (what, adapter class, id(model), id(forward)); the
# weak reference tells a live model from a new one that reuses a freed id.
_PROVEN: Dict[Tuple[str, type, int, int], "weakref.ref"] = {}


def family(*model_types: str):
    """Register a tap forward for mlx-lm ``model_type`` names."""

    def deco(fn: FamilyForward) -> FamilyForward:
        for t in model_types:
            FAMILIES[t] = fn
        return fn

    return deco


def _tapped_layers(layers, h, cache, masks, taps):
    wanted = set(taps)
    tapped = {}
    for i, (layer, c, mask) in enumerate(zip(layers, cache, masks)):
        h = layer(h, mask, c)
        if i in wanted:
            tapped[i] = h
    return h, [tapped[i] for i in taps]


@family("llama", "qwen2", "qwen3", "mistral", "smollm3")
def _decoder_forward(model, tokens, cache, taps):
    """llama-style stacks: one full-attention mask, plus a window mask for ``use_sliding`` layers."""
    inner = model.model
    h = inner.embed_tokens(tokens)
    layers = inner.layers
    sliding = [bool(getattr(l, "use_sliding", False)) for l in layers]
    masks_by_kind = {}
    if False in sliding:
        masks_by_kind[False] = create_attention_mask(h, cache[sliding.index(False)])
    if True in sliding:
        masks_by_kind[True] = create_attention_mask(
            h, cache[sliding.index(True)], window_size=inner.sliding_window
        )
    h, tapped = _tapped_layers(layers, h, cache, [masks_by_kind[s] for s in sliding], taps)
    return inner.norm(h), tapped


@family("deepseek_v3", "deepseek_v32", "kimi_k2", "glm_moe_dsa", "glm4_moe_lite")
def _deepseek_forward(model, tokens, cache, taps):
    """DeepSeek-V3-style MLA stacks: one causal mask as an array (DSA layers: a KV + indexer
    cache pair per layer, the mask from its KV)."""
    inner = model.model
    h = inner.embed_tokens(tokens)
    first = cache[0][0] if hasattr(cache[0], "caches") else cache[0]
    mask = create_attention_mask(h, first, return_array=True)
    h, tapped = _tapped_layers(inner.layers, h, cache, [mask] * len(inner.layers), taps)
    return inner.norm(h), tapped


@family("gemma3_text")
def _gemma3_forward(model, tokens, cache, taps):
    inner = model.model
    h = inner.embed_tokens(tokens)
    h *= mx.array(inner.args.hidden_size**0.5, mx.bfloat16).astype(h.dtype)
    pattern = inner.sliding_window_pattern
    global_mask = create_attention_mask(h, cache[pattern - 1])
    window_mask = (
        create_attention_mask(h, cache[0], window_size=inner.window_size) if pattern > 1 else None
    )
    masks = [
        global_mask if i % pattern == pattern - 1 else window_mask for i in range(len(inner.layers))
    ]
    h, tapped = _tapped_layers(inner.layers, h, cache, masks, taps)
    return inner.norm(h), tapped


@family("gemma4_text")
def _gemma4_forward(model, tokens, cache, taps):
    """Gemma-4 text: scaled embedding, per-layer inputs, K/V shared by the last layers (the cache
    list is shorter than the layer list); the same steps as mlx-lm's ``Gemma4TextModel``."""
    inner = model.model
    n = len(inner.layers)
    embedded = inner.embed_tokens(tokens)
    h = embedded * inner.embed_scale
    per_layer = [None] * n
    if inner.hidden_size_per_layer_input:
        inputs = inner._project_per_layer_inputs(h, inner._get_per_layer_inputs(tokens, embedded))
        per_layer = [inputs[:, :, i, :] for i in range(n)]
    cache = list(cache) + [None] * (n - len(cache))
    masks = inner._make_masks(h, cache)
    shared = [(None, None)] * n
    wanted, tapped = set(taps), {}
    for i, (layer, c, mask, src, pli) in enumerate(zip(inner.layers, cache, masks, inner.previous_kvs, per_layer)):
        kvs, offset = shared[src]
        h, kvs, offset = layer(h, mask, c, per_layer_input=pli, shared_kv=kvs, offset=offset)
        shared[i] = (kvs, offset)
        if i in wanted:
            tapped[i] = h
    return inner.norm(h), [tapped[i] for i in taps]


family(*GDN_HYBRIDS)(gdn_hybrid_forward)  # Gated DeltaNet hybrids: the capture forward without recording


def text_model(model: nn.Module) -> nn.Module:
    """The module that owns the LM head and the text config: ``model`` itself, or the text model a
    wrapper keeps as ``language_model`` (mlx-lm's ``qwen3_5`` / ``qwen3_5_moe`` ``Model``, whose
    own ``args`` hold only ``model_type`` and ``text_config``)."""
    lm = getattr(model, "language_model", None)
    return lm if isinstance(lm, nn.Module) and hasattr(lm, "model") else model


def lm_head(model: nn.Module, h: mx.array, softcap: bool = True) -> mx.array:
    """The model's LM head on final-normed hidden states ``(..., H)`` -> logits ``(..., V)``: the tied
    embedding or ``lm_head`` as the checkpoint says, then the model's logit soft-capping
    (``softcap=False``: without it, for a drafter that applies its own)."""
    model = text_model(model)
    args = getattr(model, "args", None)
    tied = getattr(args, "tie_word_embeddings", None)
    if tied is None:
        tied = getattr(model, "tie_word_embeddings", False)
    if tied or not hasattr(model, "lm_head"):
        out = model.model.embed_tokens.as_linear(h)
    else:
        out = model.lm_head(h)
    cap = getattr(model, "final_logit_softcapping", None) if softcap else None
    if cap is not None:
        out = mx.tanh(out / cap) * cap
    return out


def model_type_of(model: nn.Module) -> str:
    return str(getattr(model, "model_type", None) or getattr(getattr(model, "args", None), "model_type", ""))


def vocab_size_of(model: nn.Module) -> int:
    args = getattr(text_model(model), "args", None)
    v = getattr(args, "vocab_size", None)
    if v:
        return int(v)
    inner = getattr(model, "model", model)
    return int(inner.embed_tokens.weight.shape[0])


def check_tap_range(taps: Sequence[int], num_layers: int) -> None:
    """Raise ``ValueError`` naming any tap layer id outside ``0..num_layers-1``."""
    bad = [t for t in taps if not 0 <= t < num_layers]
    if bad:
        raise ValueError(
            f"tap layer(s) {bad} outside the target's {num_layers} decoder layers "
            f"(valid ids 0..{num_layers - 1})"
        )


class TargetAdapter:
    """Wraps an mlx-lm ``Model`` for the speculative loop.

    ``__call__(tokens (1, L) uint32, cache, taps)`` returns ``(logits (1, L, V), hidden)`` with
    ``hidden`` = the tapped layer outputs concatenated on the last axis, ``(1, L, len(taps)*H)``,
    or ``None`` when no taps are asked for (then it is exactly ``model(tokens, cache=cache)``).
    The caller owns the cache (a list from :meth:`make_cache`).
    """

    PROBE = PROBE

    def __init__(self, model: nn.Module):
        self.model = model
        self.model_type = model_type_of(model)
        self.num_layers = len(model.layers)
        self.vocab_size = vocab_size_of(model)
        args = getattr(text_model(model), "args", None)
        self.hidden_size = int(getattr(args, "hidden_size", 0) or 0)
        self._family = FAMILIES.get(self.model_type)
        # a pipeline stage (mlx-lm's model.model.pipeline(group)) holds only its slice of the layers:
        # its own forward (model(x)) is the only one that runs it (:mod:`.distributed`)
        self.pipeline = int(getattr(getattr(text_model(model), "model", None), "pipeline_size", 1) or 1) > 1
        self._probed = False
        self._tree_probed = False

    def make_cache(self, max_kv_size: Optional[int] = None) -> List[Any]:
        """mlx-lm's prompt cache for the model; plain ``KVCache`` layers become
        :class:`~mlx_specdec_plugin.bucketed.BucketedKVCache` where that is the default (mlx-cuda)."""
        cache = make_prompt_cache(self.model, max_kv_size=max_kv_size)
        return bucketed(cache) if bucketing_default() else cache

    def check_taps(self, taps: Sequence[int]) -> None:
        """Raise ``ValueError`` unless hidden states of layers ``taps`` can be produced exactly."""
        if not taps:
            return
        if self.pipeline:
            raise ValueError("this drafter reads the target's hidden states, which a pipeline-sharded target "
                             "spreads over its ranks (not supported); use a draft model or lookup, or shard "
                             "the target tensor-parallel")
        check_tap_range(taps, self.num_layers)
        if self._family is None:
            raise ValueError(
                f"hidden-state taps are not implemented for target model_type '{self.model_type}' "
                f"(supported: {', '.join(sorted(FAMILIES))})"
            )
        if not self._probed:
            if not self._proven("taps"):
                self._probe(taps)
                self._prove("taps")
            self._probed = True

    def check_tree(self) -> None:
        """Raise ``ValueError`` unless tree drafts can be verified exactly for this target."""
        if self.pipeline:
            raise ValueError("tree drafts need a tree-masked forward, which a pipeline-sharded target does not "
                             "have (not supported); use a chain drafter, or shard the target tensor-parallel")
        if not self._tree_probed:
            if not self._proven("tree"):
                check_tree_forward(self)
                self._prove("tree")
            self._tree_probed = True

    def _proof_key(self, what: str) -> Tuple[str, type, int, int]:
        return (what, type(self), id(self.model), id(self._family))

    def _proven(self, what: str) -> bool:
        """Whether a probe of ``what`` passed for this model object and forward (any adapter)."""
        ref = _PROVEN.get(self._proof_key(what))
        return ref is not None and ref() is self.model

    def _prove(self, what: str) -> None:
        key = self._proof_key(what)
        _PROVEN[key] = weakref.ref(self.model, lambda _, key=key: _PROVEN.pop(key, None))

    def _probe(self, taps: Sequence[int]) -> None:
        vocab = self.vocab_size
        tokens = mx.array([[t % vocab for t in self.PROBE]], dtype=mx.uint32)
        ref_cache, our_cache = self.make_cache(), self.make_cache()
        diffs = []
        for part in (tokens[:, :5], tokens[:, 5:6], tokens[:, 6:]):
            ref = self.model(part, cache=ref_cache)
            ours, hidden = self(part, our_cache, taps)
            mx.eval(ref, ours, hidden)
            diffs.append(relative_max_diff(ref, ours))
        if max(diffs) > 1e-4:
            raise ValueError(
                f"the tap forward for model_type '{self.model_type}' does not reproduce model(x) "
                f"(relative max difference {max(diffs):.2e}); refusing to tap hidden states"
            )

    def __call__(
        self,
        tokens: mx.array,
        cache: List[Any],
        taps: Sequence[int] = (),
        record: Optional[Dict[int, Any]] = None,
        tree: Optional[Sequence[int]] = None,
    ) -> Tuple[mx.array, Optional[mx.array]]:
        """``record``: a round's ``captured`` dict (see :mod:`.caches`); when the model has a proven
        capture forward (:mod:`.recurrent`), it fills in per-position recurrent states.
        ``tree``: ``tokens`` are ``[pending, *nodes]`` of a tree draft with these parents
        (:class:`~mlx_specdec_plugin.contract.Draft`); one forward with a tree attention mask
        (:mod:`.tree`, proven by :meth:`check_tree`)."""
        if tree is not None:
            return tree_forward(self, tokens, cache, taps, tree)
        if record is not None and not self.pipeline:  # a pipeline stage rolls back by replay
            capture = capture_forward(self)
            if capture is not None:
                h, tapped = capture(self.model, tokens, cache, taps, record)
                return self.head(h), (mx.concatenate(tapped, axis=-1) if taps else None)
        if not taps:
            return self.model(tokens, cache=cache), None
        h, tapped = self._family(self.model, tokens, cache, taps)
        return self.head(h), mx.concatenate(tapped, axis=-1)

    def head(self, h: mx.array) -> mx.array:
        """:func:`lm_head` of the target."""
        return lm_head(self.model, h)
