"""Spec: the target adapter taps hidden states without changing the logits, and refuses when it
cannot do so exactly."""

import mlx.core as mx
import pytest

from mlx_specdec_plugin.target import FAMILIES, TargetAdapter
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "qwen3", "gemma3_text"])
def test_taps_reproduce_logits_and_layer_outputs(model_type):
    model = make_tiny_model(tiny_config(model_type, num_hidden_layers=3), seed=4)
    adapter = TargetAdapter(model)
    adapter.check_taps((0, 2))
    tokens = mx.array([[5, 9, 11, 3, 7]], dtype=mx.uint32)
    ref = model(tokens, cache=adapter.make_cache())
    logits, hidden = adapter(tokens, adapter.make_cache(), (0, 2))
    assert hidden.shape == (1, 5, 2 * model.args.hidden_size)
    assert mx.allclose(logits, ref, atol=1e-5).item()
    # tap 2 of a 3-layer model is the last layer's output: the final norm + head give the logits
    inner = model.model
    last = hidden[..., model.args.hidden_size :]
    head = model.lm_head if hasattr(model, "lm_head") else inner.embed_tokens.as_linear
    assert mx.allclose(head(inner.norm(last)), ref, atol=1e-5).item()


def test_tap_beyond_depth_is_refused():
    adapter = TargetAdapter(make_tiny_model(tiny_config("llama", num_hidden_layers=2)))
    with pytest.raises(ValueError, match=r"tap layer\(s\) \[2\] outside the target's 2 decoder layers"):
        adapter.check_taps((0, 2))


def test_unknown_family_is_refused():
    model = make_tiny_model(tiny_config("llama"))
    adapter = TargetAdapter(model)
    adapter.model_type, adapter._family = "mystery", None
    with pytest.raises(ValueError, match="not implemented for target model_type 'mystery'"):
        adapter.check_taps((0,))


def test_probe_refuses_a_forward_that_changes_logits(monkeypatch):
    model = make_tiny_model(tiny_config("llama"))
    adapter = TargetAdapter(model)
    good = FAMILIES["llama"]
    adapter._family = lambda m, t, c, taps: (lambda h, tapped: (h * 1.01, tapped))(*good(m, t, c, taps))
    with pytest.raises(ValueError, match="does not reproduce model"):
        adapter.check_taps((0,))


def test_without_taps_it_is_the_model_itself():
    model = make_tiny_model(tiny_config("qwen3"))
    adapter = TargetAdapter(model)
    tokens = mx.array([[1, 2, 3]], dtype=mx.uint32)
    logits, hidden = adapter(tokens, adapter.make_cache())
    assert hidden is None
    assert mx.array_equal(logits, model(tokens, cache=adapter.make_cache())).item()


def test_the_probe_runs_once_per_model_object_not_once_per_adapter(monkeypatch):
    # every generation builds a new adapter; the probe's forwards are paid once per model
    calls = []
    real = TargetAdapter._probe
    monkeypatch.setattr(TargetAdapter, "_probe", lambda self, taps: (calls.append(id(self.model)), real(self, taps)))
    model = make_tiny_model(tiny_config("llama"), seed=1)
    for _ in range(3):
        TargetAdapter(model).check_taps((0,))
    assert len(calls) == 1
    other = make_tiny_model(tiny_config("llama"), seed=2)
    TargetAdapter(other).check_taps((0,))
    assert len(calls) == 2  # another model is probed
    bad = TargetAdapter(model)  # the same model through another forward is probed again, and refused
    good = FAMILIES["llama"]
    bad._family = lambda m, t, c, taps: (lambda h, tapped: (h * 1.01, tapped))(*good(m, t, c, taps))
    with pytest.raises(ValueError, match="does not reproduce model"):
        bad.check_taps((0,))
