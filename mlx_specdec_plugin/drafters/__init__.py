"""Drafter checkpoints: block drafters (DSpark, DFlash), Gemma-4 DSpark, EAGLE-3 and MTP heads.

:mod:`.config` (the normalised config, shared checks) < :mod:`.layers` (the block drafters' modules)
< :mod:`.gemma4`, :mod:`.eagle3`, :mod:`.mtp` (each kind's modules) < :mod:`.checkpoint` (read and
validate a drafter folder, bind it to a target: :func:`load_drafter`) < :mod:`.dflash2` (a block
drafter variant, registered with :func:`.checkpoint.register_kind`). Every public name of the old
``drafters.py`` is importable from here.
"""

from .checkpoint import (KINDS, OTHER_KINDS, TARGET_FOLDER_KINDS, Drafter, as_drafter, build_module, claims, detect_kind,
                         drafter_embed_scale, folder_drafter_kind, is_drafter_config, load_drafter, normalize_config,
                         read_weights, save_drafter, unpack_by_default, unpack_quantized, validate_against_target)
from .config import DrafterConfig, check_weights, read_config, rope_settings
from .layers import MLP, BlockDrafterModel, ConfidenceHead, ContextAttention, DecoderLayer, MarkovHead

from . import dflash2  # noqa: E402,F401  registers the DFlash2 kind (it builds on .checkpoint)

__all__ = ["KINDS", "OTHER_KINDS", "TARGET_FOLDER_KINDS", "BlockDrafterModel", "ConfidenceHead", "ContextAttention",
           "DecoderLayer", "Drafter", "DrafterConfig", "MarkovHead", "MLP", "as_drafter", "build_module", "check_weights",
           "claims", "detect_kind", "drafter_embed_scale", "folder_drafter_kind", "is_drafter_config", "load_drafter",
           "normalize_config", "read_config", "read_weights", "rope_settings", "save_drafter", "unpack_by_default",
           "unpack_quantized", "validate_against_target"]
