"""The block drafters' modules (DSpark, DFlash): Qwen3-style decoder layers whose attention reads the
projected target features as extra keys/values (the context), the Markov and confidence heads, and
:class:`BlockDrafterModel`, named as in the checkpoints."""

from __future__ import annotations

from typing import List, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.cache import KVCache
from mlx_lm.models.rope_utils import initialize_rope

from .config import DrafterConfig


class MLP(nn.Module):
    """Gated MLP ``down(act(gate(x)) * up(x))``: SwiGLU (Qwen3) or, with ``nn.gelu_approx``,
    Gemma-4's GeGLU."""

    def __init__(self, dim: int, hidden: int, activation=nn.silu):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)
        self.activation = activation

    def __call__(self, x: mx.array) -> mx.array:
        return self.down_proj(self.activation(self.gate_proj(x)) * self.up_proj(x))



class ContextAttention(nn.Module):
    """Block queries attend to [cached context K/V ; block K/V] (bidirectional unless ``causal``)."""

    def __init__(self, c: DrafterConfig, sliding: bool):
        super().__init__()
        H, hd = c.hidden_size, c.head_dim
        self.n_heads, self.n_kv, self.head_dim = c.num_attention_heads, c.num_key_value_heads, hd
        self.scale = hd**-0.5
        self.window = c.sliding_window if sliding else None
        self.causal = c.causal
        bias = c.attention_bias
        self.q_proj = nn.Linear(H, self.n_heads * hd, bias=bias)
        self.k_proj = nn.Linear(H, self.n_kv * hd, bias=bias)
        self.v_proj = nn.Linear(H, self.n_kv * hd, bias=bias)
        self.o_proj = nn.Linear(self.n_heads * hd, H, bias=False)
        self.q_norm = nn.RMSNorm(hd, eps=c.rms_norm_eps)
        self.k_norm = nn.RMSNorm(hd, eps=c.rms_norm_eps)
        if c.attention_sink_bias:
            self.attention_sink_bias = mx.zeros((self.n_heads,))

    def _kv(self, x: mx.array, offset: int, rope) -> Tuple[mx.array, mx.array]:
        B, L, _ = x.shape
        k = self.k_norm(self.k_proj(x).reshape(B, L, self.n_kv, -1)).transpose(0, 2, 1, 3)
        v = self.v_proj(x).reshape(B, L, self.n_kv, -1).transpose(0, 2, 1, 3)
        return rope(k, offset=offset), v

    def context_kv(self, h_ctx: mx.array, offset: int, rope) -> Tuple[mx.array, mx.array]:
        """Keys (roped at target positions ``offset..``) and values of projected context rows."""
        return self._kv(h_ctx, offset, rope)

    def __call__(self, x: mx.array, ctx_k: Optional[mx.array], ctx_v: Optional[mx.array], offset: int, rope):
        B, L, _ = x.shape
        q = self.q_norm(self.q_proj(x).reshape(B, L, self.n_heads, -1)).transpose(0, 2, 1, 3)
        q = rope(q, offset=offset)
        k, v = self._kv(x, offset, rope)
        if ctx_k is not None:
            if self.window is not None:
                keep = max(self.window - 1, 0)
                ctx_k, ctx_v = ctx_k[:, :, ctx_k.shape[2] - min(keep, ctx_k.shape[2]) :], ctx_v[:, :, ctx_v.shape[2] - min(keep, ctx_v.shape[2]) :]
            k = mx.concatenate([ctx_k, k], axis=2)
            v = mx.concatenate([ctx_v, v], axis=2)
        mask = None
        if self.causal:
            S = k.shape[2] - L
            qpos = mx.arange(L)[:, None] + S
            kpos = mx.arange(k.shape[2])[None, :]
            mask = kpos <= qpos
            if self.window is not None:
                mask = mask & (kpos > qpos - self.window)
        kwargs = {}
        if "attention_sink_bias" in self:
            kwargs["sinks"] = self.attention_sink_bias
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask=mask, **kwargs)
        return self.o_proj(o.transpose(0, 2, 1, 3).reshape(B, L, -1))



class DecoderLayer(nn.Module):
    def __init__(self, c: DrafterConfig, sliding: bool):
        super().__init__()
        self.self_attn = ContextAttention(c, sliding)
        self.mlp = MLP(c.hidden_size, c.intermediate_size)
        self.input_layernorm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)

    def __call__(self, x, ctx_k, ctx_v, offset, rope):
        h = x + self.self_attn(self.input_layernorm(x), ctx_k, ctx_v, offset, rope)
        return h + self.mlp(self.post_attention_layernorm(h))



class MarkovHead(nn.Module):
    """DSpark's rank-r first-order bias: ``bias(prev) = W2 @ W1[prev]``, ``(.., V)``."""

    def __init__(self, vocab: int, rank: int):
        super().__init__()
        self.markov_w1 = nn.Embedding(vocab, rank)
        self.markov_w2 = nn.Linear(rank, vocab, bias=False)

    def rows(self, prev: mx.array) -> mx.array:
        """``W1[prev]``, ``prev.shape + (r,)``; a scalar ``prev`` is fine (a quantized table needs >= 1-d ids)."""
        return self.markov_w1(prev.reshape(-1)).reshape(*prev.shape, -1)

    def __call__(self, prev: mx.array) -> mx.array:
        return self.markov_w2(self.rows(prev))



class ConfidenceHead(nn.Module):
    """``sigmoid(w . [h_i ; W1[prev]] + b)``: DSpark's estimate that proposal i survives."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, 1, bias=True)

    def __call__(self, features: mx.array) -> mx.array:
        return mx.sigmoid(self.proj(features)[..., 0].astype(mx.float32))



class BlockDrafterModel(nn.Module):
    """The drafter's weights, named as in the checkpoints (``model.`` prefix stripped).

    ``embed_tokens`` / ``lm_head`` exist only if the checkpoint ships them (DeepSpec-native);
    otherwise the target's are used (see :class:`Drafter`).
    """

    def __init__(self, c: DrafterConfig, own_embed: bool = False, own_head: bool = False):
        super().__init__()
        H = c.hidden_size
        self.fc = nn.Linear(len(c.target_layer_ids) * H, H, bias=False)
        self.hidden_norm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        self.layers = [DecoderLayer(c, t == "sliding_attention") for t in c.layer_types]
        self.norm = nn.RMSNorm(H, eps=c.rms_norm_eps)
        if own_embed:
            self.embed_tokens = nn.Embedding(c.vocab_size, H)
        if own_head:
            self.lm_head = nn.Linear(H, c.vocab_size, bias=False)
        if c.kind == "dspark":
            self.markov_head = MarkovHead(c.vocab_size, c.markov_rank)
            if c.enable_confidence_head:
                self.confidence_head = ConfidenceHead(H + (c.markov_rank if c.confidence_head_with_markov else 0))
        self.rope = initialize_rope(
            c.head_dim, c.rope_theta, c.rope_traditional, c.rope_scaling, c.max_position_embeddings
        )

    def extend_context(self, caches: List[KVCache], hidden: mx.array) -> None:
        """Append target features ``(1, S, n_t*H)`` as context K/V to every layer's cache."""
        h_ctx = self.hidden_norm(self.fc(hidden))
        offset = caches[0].offset
        for layer, cache in zip(self.layers, caches):
            cache.update_and_fetch(*layer.self_attn.context_kv(h_ctx, offset, self.rope))

    def block(self, x: mx.array, caches: List[KVCache]) -> mx.array:
        """Block embeddings ``(1, L, H)`` -> final-normed hidden ``(1, L, H)``; slot 0 sits at the
        next target position (the cache's offset). Nothing is cached."""
        offset = caches[0].offset
        for layer, cache in zip(self.layers, caches):
            ctx_k, ctx_v = cache.keys_and_values() if cache.offset else (None, None)
            x = layer(x, ctx_k, ctx_v, offset, self.rope)
        return self.norm(x)
