"""Resolve what a user names with ``--model`` / ``--draft-model`` before anything is loaded.

A value is a local folder, the name of a drafter shipped in the package (``smollm2-dspark``), or a
Hugging Face repo id (``org/name``, fetched: configs, weights and tokenizer files only, never
Python). Whatever is wrong with it is one :class:`LoadError` line that names the value and what is
wrong (a missing folder, a folder without ``config.json``, a ``config.json`` that is not JSON, a
near miss of a shipped name with "did you mean", a hub id that cannot be fetched), raised before
any generation. The front ends print it and exit 2.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Optional

HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]


class LoadError(ValueError):
    """A user-facing load error: one line, naming the value and what is wrong."""


def _shipped() -> dict:
    from .fetch import SHIPPED_DRAFTERS

    return SHIPPED_DRAFTERS


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value.count("/") != 1 or (Path(value).parent.exists() \
        and Path(value).parent != Path("."))


def read_config(folder: Path, flag: str = "--model") -> dict:
    """``folder/config.json`` as a dict, or one :class:`LoadError` line naming the file."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise LoadError(f"{flag} {folder}: no config.json in this folder (not an mlx-lm model or drafter)") from None
    except json.JSONDecodeError as e:
        raise LoadError(f"{flag} {folder}: {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") \
            from None
    if not isinstance(config, dict):
        raise LoadError(f"{flag} {folder}: {path} is not a JSON object")
    return config


def resolve(value: str, flag: str = "--model", fetch: bool = True) -> str:
    """The local folder ``value`` names (checked to hold a readable ``config.json``), or one
    :class:`LoadError` line. ``fetch``: download a hub id that is not on disk (else refuse it)."""
    shipped = _shipped()
    if value in shipped:
        from .fetch import shipped_drafter

        folder = str(shipped_drafter(value))
        read_config(Path(folder), flag)
        return folder
    path = Path(value).expanduser()
    if path.is_dir():
        read_config(path, flag)
        return str(path)
    if path.exists():
        raise LoadError(f"{flag} {value}: a file, not a model folder")
    near = difflib.get_close_matches(value, list(shipped), n=1, cutoff=0.75)
    if near:
        raise LoadError(f"{flag} {value}: no such folder or shipped drafter; did you mean {near[0]}?")
    if _looks_like_path(value):
        hint = f" (shipped drafters: {', '.join(sorted(shipped))})" if flag == "--draft-model" else ""
        raise LoadError(f"{flag} {value}: no such folder{hint}")
    if not fetch:
        raise LoadError(f"{flag} {value}: not a local folder (hub ids are not fetched here)")
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(value, allow_patterns=HUB_PATTERNS)
    except Exception as e:  # offline, no such repo, gated: one line, whatever the hub says
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise LoadError(f"{flag} {value}: not a local folder, and fetching it from the Hugging Face hub failed "
                        f"({type(e).__name__}: {reason})") from None
    read_config(Path(folder), flag)
    return folder


def default_model_hint(default: Optional[str]) -> str:
    """What to say when no ``--model`` was given and mlx-lm's default cannot be had."""
    return (f"no --model given, and mlx-lm's default ({default}) is not available offline: pass --model FOLDER, "
            "e.g. --model \"$(mlx-specdec fetch smollm2)\"")
