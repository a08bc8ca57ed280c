"""mlx-vlm with exact speculative decoding: ``generate`` / ``stream_generate`` mirror mlx-vlm's
Python API (:mod:`.generation`); ``mlx-specdec vlm`` is its command line."""

from .generation import generate, stream_generate

__all__ = ["generate", "stream_generate"]
