"""Gemma-4's assistant drafter (``model_type: gemma4_assistant``): query-only Gemma-4 layers that
attend to the *target's* keys and values.

Layout (learned from mlx-vlm 0.7.10's ``gemma4_assistant`` config and loader, which mirror
Hugging Face's ``Gemma4AssistantConfig``): ``config.json`` has ``backbone_hidden_size`` (the
target's hidden size B), a nested Gemma-4 ``text_config`` (the assistant's own width h, layers,
heads, ``layer_types``, RoPE per layer type), ``tie_word_embeddings``, ``block_size`` (verify
width, anchor included) and, for the E2B/E4B assistants, ``use_ordered_embeddings`` with
``num_centroids`` / ``centroid_intermediate_top_k``. Tensors (``model.`` prefix optional):

=====================================  ===========  ==============================================
``embed_tokens.weight``                (V, h)       the assistant's LM head (tied); not its input
``layers.{i}.self_attn.q_proj/q_norm/o_proj``       queries only: keys and values are the target's
``layers.{i}.mlp.*``, the four norms, ``layer_scalar``  Gemma-4's sandwich block
``norm.weight``                        (h,)         final norm
``pre_projection.weight``              (h, 2B)      ``[target embedding of the token ; feature]``
``post_projection.weight``             (B, h)       the next step's feature
``lm_head.weight``                     (V, h)       only when ``tie_word_embeddings`` is false
``masked_embedding.centroids.weight``  (C, h)       ordered embeddings: cluster scores
``masked_embedding.token_ordering``    (V,)         ordered embeddings: the tokens of each cluster
=====================================  ===========  ==============================================

One draft step at the last committed position t (the one whose target logits gave the pending
token x): ``z = pre_projection([embed_target(x) * sqrt(B) ; f])`` with ``f`` the target's
final-normed hidden state at t, then every layer over ``z`` with its queries at position t and
the target's cached keys/values of the *last* target layer of the same type (full attention: the
whole context; sliding: the newest ``window - 1`` rows, what Gemma-4's sliding cache keeps), ``o
= norm(z)``, logits ``= head(o)``, and ``post_projection(o)`` is the next step's ``f``; the next
step feeds the drawn token, at the same position t, over the same keys and values. The assistant
has no cache of its own, so nothing of it is rolled back: every round it reads the target's cache
as the loop left it (:class:`~mlx_specdec_plugin.contract.DraftContext` ``cache``).

The layers are mlx-lm's own ``gemma4_text.DecoderLayer`` built with every layer KV-shared (no
``k_proj``/``v_proj``), fed the target's keys/values as its ``shared_kv``. The ordered-embedding
head scores ``C`` clusters, takes the ``k`` best, scores their ``V / C`` tokens each against the
embedding and gives every other token the lowest selected score minus one (as Hugging Face and
mlx-vlm do), so sampling at T > 0 draws from that full-vocabulary distribution; the proposer
reports it as q, which keeps every acceptor exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.models import gemma4_text

from .. import caches
from ..target import TargetAdapter, text_model
from .config import PathLike, check_weights, read_weights

KIND = "assistant"
MODEL_TYPE = "gemma4_assistant"
TARGET_TYPES = ("gemma4_text", "gemma4")


def is_assistant(raw: dict) -> bool:
    return raw.get("model_type") == MODEL_TYPE


@dataclass(frozen=True)
class AssistantConfig:
    backbone_hidden_size: int
    text: gemma4_text.ModelArgs
    tie_word_embeddings: bool
    ordered_embeddings: bool
    num_centroids: int
    centroid_top_k: int
    block_size: int
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def default_proposals(self) -> int:
        return self.block_size - 1


def _positive(raw: dict, key: str, default: Any = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"gemma4_assistant config: '{key}' must be a positive integer, got {value!r}")
    return value


def normalize_config(raw: dict) -> AssistantConfig:
    """The assistant's config; one ``ValueError`` naming the key for anything malformed."""
    text = raw.get("text_config")
    if not isinstance(text, dict):
        raise ValueError("gemma4_assistant config: 'text_config' (the assistant's Gemma-4 text config) is missing")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        _positive(text, key)
    n = text["num_hidden_layers"]
    text = dict(text, model_type="gemma4_text", num_kv_shared_layers=n)  # every layer reads the target's K/V
    args = gemma4_text.ModelArgs.from_dict(text)
    if len(args.layer_types) != n or set(args.layer_types) - {"full_attention", "sliding_attention"}:
        raise ValueError(f"gemma4_assistant config: text_config.layer_types must name {n} layers, each "
                         f"full_attention or sliding_attention, got {args.layer_types}")
    ordered = bool(raw.get("use_ordered_embeddings", False))
    centroids, top_k = int(raw.get("num_centroids", 2048)), int(raw.get("centroid_intermediate_top_k", 32))
    if ordered:
        centroids, top_k = _positive(raw, "num_centroids"), _positive(raw, "centroid_intermediate_top_k")
        if args.vocab_size % centroids or top_k > centroids:
            raise ValueError(f"gemma4_assistant config: ordered embeddings need num_centroids ({centroids}) to divide "
                             f"the vocabulary ({args.vocab_size}) and centroid_intermediate_top_k ({top_k}) <= it")
    block = _positive(raw, "block_size", 4)
    if block < 2:
        raise ValueError(f"gemma4_assistant config: block_size must be >= 2 (anchor included), got {block}")
    return AssistantConfig(_positive(raw, "backbone_hidden_size"), args, bool(raw.get("tie_word_embeddings", True)),
                           ordered, centroids, top_k, block, raw)


class CentroidHead(nn.Module):
    """The ordered-embedding LM head: ``C`` cluster scores pick ``k`` clusters of ``V / C`` tokens."""

    def __init__(self, c: AssistantConfig):
        super().__init__()
        h, self.vocab = c.text.hidden_size, c.text.vocab_size
        self.top_k, self.per_cluster = c.centroid_top_k, c.text.vocab_size // c.num_centroids
        self.centroids = nn.Linear(h, c.num_centroids, bias=False)
        self.token_ordering = mx.zeros((self.vocab,), dtype=mx.int32)
        self.freeze(keys=["token_ordering"], recurse=False)

    def __call__(self, h: mx.array, embedding: mx.array) -> mx.array:
        """``h`` (..., h), ``embedding`` (V, h) -> logits (..., V)."""
        scores = self.centroids(h)
        best = mx.argpartition(-scores, kth=self.top_k - 1, axis=-1)[..., : self.top_k]  # (..., k)
        tokens = self.token_ordering.reshape(-1, self.per_cluster)[best].reshape(*h.shape[:-1], -1)  # (..., k * V/C)
        selected = (embedding[tokens] @ h[..., None])[..., 0]  # (..., k * V/C)
        floor = mx.min(selected, axis=-1, keepdims=True) - 1.0
        out = mx.broadcast_to(floor, (*h.shape[:-1], self.vocab))
        return mx.put_along_axis(out, tokens, selected, axis=-1)


class AssistantModule(nn.Module):
    def __init__(self, c: AssistantConfig):
        super().__init__()
        t = c.text
        self.embed_tokens = nn.Embedding(t.vocab_size, t.hidden_size)
        self.layers = [gemma4_text.DecoderLayer(t, i) for i in range(t.num_hidden_layers)]
        self.norm = nn.RMSNorm(t.hidden_size, eps=t.rms_norm_eps)
        self.pre_projection = nn.Linear(2 * c.backbone_hidden_size, t.hidden_size, bias=False)
        self.post_projection = nn.Linear(t.hidden_size, c.backbone_hidden_size, bias=False)
        if not c.tie_word_embeddings:
            self.lm_head = nn.Linear(t.hidden_size, t.vocab_size, bias=False)
        if c.ordered_embeddings:
            self.masked_embedding = CentroidHead(c)

    def __call__(self, inputs: mx.array, shared: Dict[str, Tuple[mx.array, mx.array]], position: int):
        """``inputs`` (1, L, 2B) at query position ``position``; ``shared``: keys/values per layer
        type ``(1, n_kv, n, d)`` -> ``(next feature (1, L, B), logits (1, L, V))``."""
        z = self.pre_projection(inputs)
        for layer in self.layers:
            z, _, _ = layer(z, None, None, shared_kv=shared[layer.layer_type], offset=position)
        o = self.norm(z)
        if "masked_embedding" in self:
            logits = self.masked_embedding(o, self.embed_tokens.weight)
        elif "lm_head" in self:
            logits = self.lm_head(o)
        else:
            logits = self.embed_tokens.as_linear(o)
        return self.post_projection(o), logits


def _kv_geometry(layer: nn.Module) -> Tuple[int, int]:
    attn = layer.self_attn
    return int(attn.n_kv_heads), int(attn.head_dim)


def target_kv_layers(target_model: nn.Module, owners: Optional[int] = None) -> Dict[str, int]:
    """Per layer type, the index of the target's last cache-owning layer of that type (whose keys
    and values the KV-shared layers after it reuse): the layer an assistant layer of that type reads.
    ``owners``: how many layers own a cache (the length of the target's cache list; default: a
    fresh cache is made to count them)."""
    layers = list(target_model.layers)
    if owners is None:
        owners = len(TargetAdapter(target_model).make_cache())
    return {l.layer_type: i for i, l in enumerate(layers[:owners])}


def _text_config(target_model: nn.Module) -> Any:
    """The target's text config: an mlx-lm model's ``args``, an mlx-vlm language model's ``config``."""
    tm = text_model(target_model)
    return getattr(tm, "args", None) or getattr(tm, "config", None)


def validate_against_target(c: AssistantConfig, module: AssistantModule, target_model: nn.Module) -> None:
    t = TargetAdapter(target_model)
    if t.model_type not in TARGET_TYPES:
        raise ValueError(f"assistant: a gemma4_assistant drafter reads a Gemma-4 target's keys and values; the target "
                         f"is '{t.model_type}'")
    cfg = _text_config(target_model)
    hidden, vocab = int(getattr(cfg, "hidden_size", 0)), int(getattr(cfg, "vocab_size", 0))
    if (c.backbone_hidden_size, c.text.vocab_size) != (hidden, vocab):
        raise ValueError(f"assistant: the drafter belongs to a target of hidden size {c.backbone_hidden_size} and "
                         f"vocabulary {c.text.vocab_size}; this target has {hidden} and {vocab}")
    owners = target_kv_layers(target_model)
    layers = list(target_model.layers)
    for i, layer in enumerate(module.layers):
        kind = layer.layer_type
        if kind not in owners:
            raise ValueError(f"assistant: draft layer {i} is {kind}, and the target has no {kind} layer")
        want, have = _kv_geometry(layer), _kv_geometry(layers[owners[kind]])
        if want != have:
            raise ValueError(f"assistant: draft layer {i} ({kind}) expects keys of {want[0]} heads x {want[1]}; the "
                             f"target's {kind} layers hold {have[0]} x {have[1]} (a drafter of another model, or a "
                             "sharded target)")


@dataclass
class AssistantDrafter:
    """A gemma4_assistant checkpoint bound to a Gemma-4 target (``module`` owned, no cache)."""

    config: AssistantConfig
    module: AssistantModule
    target_model: nn.Module
    path: Optional[Path] = None
    kind: str = KIND

    @property
    def tap_layers(self) -> Tuple[int, ...]:
        return (TargetAdapter(self.target_model).num_layers - 1,)

    @property
    def default_proposals(self) -> int:
        return self.config.default_proposals

    def feature(self, tapped: mx.array) -> mx.array:
        """The last decoder layer's output -> the target's final-normed hidden state."""
        return text_model(self.target_model).model.norm(tapped)

    def embed(self, tokens: mx.array) -> mx.array:
        """The target's own input embedding of ``tokens`` (1, L), scaled as the target scales it."""
        inner = text_model(self.target_model).model
        return inner.embed_tokens(tokens) * inner.embed_scale

    def shared_kv(self, cache: Sequence[Any]) -> Tuple[Dict[str, Tuple[mx.array, mx.array]], int]:
        """The target's keys/values the draft layers read, from the target's cache list (committed
        tokens only, as the loop leaves it between rounds): per layer type, the last cache-owning
        layer's rows (a sliding layer's newest ``window - 1``); and the position of the last
        committed token (the draft queries' position)."""
        out, position = {}, None
        for kind, i in target_kv_layers(self.target_model, len(cache)).items():
            c = cache[i]
            out[kind] = caches.committed_kv(c, self.window - 1 if kind == "sliding_attention" else None)
            position = caches.offset_of(c) - 1
        return out, position

    @property
    def window(self) -> int:
        """The target's sliding window."""
        return int(_text_config(self.target_model).sliding_window)

    def step(self, inputs: mx.array, shared: Dict[str, Tuple[mx.array, mx.array]], position: int):
        return self.module(inputs, shared, position)

    def bind(self, target_model: nn.Module) -> "AssistantDrafter":
        if isinstance(target_model, TargetAdapter):
            target_model = target_model.model
        validate_against_target(self.config, self.module, target_model)
        return replace(self, target_model=target_model)


def _rename(weights: Dict[str, mx.array]) -> Dict[str, mx.array]:
    out = {}
    for k, v in weights.items():
        if k == "masked_embedding.token_ordering":
            v = v.astype(mx.int32)
        out[k] = v
    return out


def build(c: AssistantConfig, weights: Dict[str, mx.array], what: str = "gemma4_assistant checkpoint") -> AssistantModule:
    module = AssistantModule(c)
    expected = dict(tree_flatten(module.parameters()))
    if c.tie_word_embeddings:
        weights = {k: v for k, v in weights.items() if k != "lm_head.weight"}  # a tied copy, as mlx-vlm drops it
    check_weights(expected, weights, what)
    module.load_weights(list(weights.items()), strict=True)
    mx.eval(module.parameters())
    return module


def load_assistant(path: PathLike, target_model: nn.Module, *, raw: dict, dtype: Optional[mx.Dtype] = None) -> AssistantDrafter:
    path = Path(path)
    c = normalize_config(raw)
    weights = _rename(read_weights(path))
    if dtype is not None:
        weights = {k: v.astype(dtype) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
    module = build(c, weights, f"gemma4_assistant checkpoint {path}")
    validate_against_target(c, module, target_model)
    return AssistantDrafter(c, module, target_model, path)
