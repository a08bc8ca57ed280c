"""A deliberately cheap language model that follows mlx-lm's model protocol (``model(x, cache=)``,
``layers``, ``make_cache``, ``args``), for statistical tests that need tens of thousands of
generations. Its next-token distribution depends on the whole prefix through a real mlx-lm
``KVCache`` (mean of the cached token embeddings), so a wrong rollback changes the output."""

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.cache import KVCache


@dataclass
class Args:
    vocab_size: int
    hidden_size: int
    model_type: str = "context_lm"
    num_hidden_layers: int = 1


class ContextLM(nn.Module):
    def __init__(self, vocab_size: int = 6, dim: int = 8, seed: int = 0, sharpness: float = 2.0):
        super().__init__()
        self.args = Args(vocab_size, dim)
        mx.random.seed(seed)
        self.embed = mx.random.normal((vocab_size, dim))
        self.out = mx.random.normal((dim, vocab_size)) * sharpness
        self.layers = [self]  # one cache slot

    def make_cache(self):
        return [KVCache()]

    def __call__(self, inputs: mx.array, cache=None) -> mx.array:
        e = self.embed[inputs]  # (1, L, D)
        if cache is None:
            cache = self.make_cache()
        keys, _ = cache[0].update_and_fetch(e[:, None], e[:, None])  # (1, 1, T, D)
        seen = keys[0, 0]
        T, L = seen.shape[0], inputs.shape[1]
        running_mean = mx.cumsum(seen, axis=0) / mx.arange(1, T + 1)[:, None]
        h = mx.tanh(e[0] + running_mean[T - L :])
        return (h @ self.out)[None]


def perturbed(model: ContextLM, seed: int, noise: float = 0.5) -> ContextLM:
    """A draft model that resembles ``model`` (same shapes, noisy weights)."""
    d = ContextLM(model.args.vocab_size, model.args.hidden_size, seed=seed)
    d.embed = model.embed + noise * mx.random.normal(model.embed.shape)
    d.out = model.out + noise * mx.random.normal(model.out.shape)
    return d
