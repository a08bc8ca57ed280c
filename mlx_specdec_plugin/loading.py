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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from huggingface_hub import snapshot_download
from mlx_lm import load as mlx_lm_load

from .contract import Strategy
from .drafters import folder_drafter_kind, is_drafter_config, load_drafter
from .fetch import SHIPPED_DRAFTERS, shipped_drafter
from .generate import resolve_strategy
from .plugins import registry

HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]


class LoadError(ValueError):
    """A user-facing load error: one line, naming the value and what is wrong."""


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
    shipped = SHIPPED_DRAFTERS
    if value in shipped:
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


# --------------------------------------------------------------------------- the drafter, once


@dataclass
class DraftChoice:
    """What ``--draft-model`` / ``--draft-strategy`` resolved to, loaded once for every generation.

    ``strategy``: a registered strategy name, or ``None`` for plain decoding. ``draft``: what to pass
    as ``draft_model=`` (a loaded :class:`~.drafters.Drafter` bound to the target, an mlx-lm model,
    or ``None`` when the strategy drafts without weights). ``reason``: one line for the user.
    ``path``: the drafter's folder, when one was named and used.
    """

    strategy: Optional[str]
    draft: Any = None
    reason: str = ""
    path: Optional[str] = None


def _strategy(name: str) -> Strategy:
    try:
        return registry().strategy(name)
    except ValueError as e:
        raise LoadError(f"--draft-strategy {name}: {e}") from None


def check_draft(draft_model: Optional[str], strategy: str = "auto", fetch: bool = True) -> Optional[str]:
    """Before the target is loaded: the folder ``--draft-model`` names (or ``None``), and a check that
    ``--draft-strategy`` is installed and has the drafter it needs; one :class:`LoadError` line."""
    path = resolve(draft_model, "--draft-model", fetch) if draft_model else None
    if strategy not in ("auto", "none") and _strategy(strategy).needs_draft and path is None:
        raise LoadError(f"--draft-strategy {strategy} needs --draft-model (a drafter folder, a shipped drafter such "
                        "as smollm2-dspark, or a small mlx-lm model)")
    return path


def _load_weights(path: str, target_model, trust_remote_code: bool, model_path: Optional[str] = None):
    """A drafter folder (DSpark, DFlash, EAGLE-3, or the target's own MTP heads when ``path`` is the
    target's folder ``model_path``) as a :class:`Drafter` bound to ``target_model``, else an mlx-lm model."""
    config = read_config(Path(path), "--draft-model")
    own = model_path is not None and Path(path).resolve() == Path(model_path).resolve()
    if is_drafter_config(config) or folder_drafter_kind(config, own) is not None:
        try:
            return load_drafter(path, target_model, trust_remote_code=trust_remote_code)
        except ValueError as e:
            raise LoadError(f"--draft-model {path}: {e}") from None
    model, _ = mlx_lm_load(path, tokenizer_config={"trust_remote_code": trust_remote_code})
    return model


def _describe(draft) -> str:
    kind = getattr(draft, "kind", None)
    return f"{'an' if kind[:1] in 'aeio' else 'a'} {kind} checkpoint" if isinstance(kind, str) else "an mlx-lm model"


def load_draft(path: Optional[str], target_model, strategy: str = "auto",
               trust_remote_code: bool = False, model_path: Optional[str] = None) -> DraftChoice:
    """Load what ``--draft-model`` names once (``path`` from :func:`check_draft`) and choose the
    strategy. ``target_model``: the model the drafter reads (a VLM's language model). ``auto``: the
    installed strategy that claims the loaded drafter (:attr:`Strategy.claims`), or the engine's
    default without one (:func:`~.generate.resolve_strategy`). A strategy that does not need a
    drafter (:attr:`Strategy.needs_draft` false) gets none, and nothing is loaded for it.
    ``model_path``: the target's folder (``--draft-model`` naming it reads the target's MTP heads)."""
    if strategy == "none":
        return DraftChoice(None, None, "requested")
    if strategy != "auto":
        chosen = _strategy(strategy)
        if not chosen.needs_draft:
            return DraftChoice(chosen.name, None, "requested" + ("; it drafts without --draft-model" if path else ""))
        return DraftChoice(chosen.name, _load_weights(path, target_model, trust_remote_code, model_path), "requested", path)
    if path is None:
        try:
            default = resolve_strategy(None, "auto")
        except ValueError:
            return DraftChoice(None, None, "no drafter available: plain decoding")
        return DraftChoice(default.name, None, f"no --draft-model given: {default.description}")
    draft = _load_weights(path, target_model, trust_remote_code, model_path)
    try:
        claimed = resolve_strategy(draft, "auto")
    except ValueError:
        claimed = None
    if claimed is not None:
        return DraftChoice(claimed.name, draft, f"--draft-model is {_describe(draft)}", path)
    fallback = DraftChoice(None, None, f"--draft-model is {_describe(draft)} but no installed strategy drafts with "
                           "it: plain decoding")
    try:
        default = resolve_strategy(None, "auto")
    except ValueError:
        return fallback
    return DraftChoice(default.name, None, f"--draft-model is {_describe(draft)} but no installed strategy drafts "
                       f"with it; using {default.name}")
