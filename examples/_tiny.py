"""Tiny random models and drafter checkpoints for the examples (offline, seconds to build).

The drafter checkpoints are written in the published on-disk layouts by the fixtures in
:mod:`mlx_specdec_plugin.testing.drafters`."""

import tempfile
from pathlib import Path


def tiny_target(model_type="qwen3"):
    from mlx_specdec_plugin.testing.tiny import save_tiny_model

    return save_tiny_model(Path(tempfile.mkdtemp()) / "target", model_type, seed=1, sharpness=6, num_hidden_layers=4)


def tiny_dspark(target_dir):
    from mlx_specdec_plugin.testing.drafters import write_dspark  # DeepSpec-native layout (deepseek-ai/dspark_qwen3_*)

    return write_dspark(Path(tempfile.mkdtemp()) / "dspark", target_dir, target_layer_ids=(0, 2), seed=11)


def tiny_dflash(target_dir):
    from mlx_specdec_plugin.testing.drafters import write_dflash  # z-lab layout (z-lab/Qwen3-*-DFlash-b16)

    return write_dflash(Path(tempfile.mkdtemp()) / "dflash", target_dir, target_layer_ids=(0, 2), seed=7)
