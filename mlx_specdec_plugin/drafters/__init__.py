"""Drafter checkpoints: block drafters (DSpark, DFlash), Gemma-4 DSpark, EAGLE-3 and MTP heads.

:mod:`.checkpoint` reads and validates a drafter folder and binds it to a target
(:func:`load_drafter`); :mod:`.gemma4`, :mod:`.eagle3` and :mod:`.mtp` hold each kind's modules.
"""

from .checkpoint import (KINDS, OTHER_KINDS, TARGET_FOLDER_KINDS, BlockDrafterModel, ConfidenceHead, ContextAttention,
                         DecoderLayer, Drafter, DrafterConfig, MarkovHead, MLP, as_drafter, build_module, check_weights,
                         claims, detect_kind, drafter_embed_scale, folder_drafter_kind, is_drafter_config, load_drafter,
                         normalize_config, read_config, read_weights, rope_settings, save_drafter, unpack_by_default,
                         unpack_quantized, validate_against_target)

__all__ = ["KINDS", "OTHER_KINDS", "TARGET_FOLDER_KINDS", "BlockDrafterModel", "ConfidenceHead", "ContextAttention",
           "DecoderLayer", "Drafter", "DrafterConfig", "MarkovHead", "MLP", "as_drafter", "build_module", "check_weights",
           "claims", "detect_kind", "drafter_embed_scale", "folder_drafter_kind", "is_drafter_config", "load_drafter",
           "normalize_config", "read_config", "read_weights", "rope_settings", "save_drafter", "unpack_by_default",
           "unpack_quantized", "validate_against_target"]
