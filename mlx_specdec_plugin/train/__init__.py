"""``mlx-specdec train``: distil a DSpark or DFlash drafter for an mlx-lm target on MLX
(:mod:`.trainer`)."""

from .trainer import TrainConfig, Trainer, train

__all__ = ["TrainConfig", "Trainer", "train"]
