"""mlx-specdec: exact speculative decoding for mlx-lm and mlx-vlm.

Switch an mlx-lm script by changing one import::

    from mlx_specdec_plugin import generate, stream_generate

On Linux, importing the package first (before ``mlx.core``) gives MLX's CPU backend an optimised
BLAS when one is installed (:mod:`mlx_specdec_plugin.blas`; ``MLX_SPECDEC_BLAS=bundled`` opts out).
"""

from . import blas

blas.preload()  # before anything imports mlx.core  # noqa: E402

from .drafters import Drafter, load_drafter, save_drafter
from .contract import (AcceptorSpec, Draft, DraftContext, Proposer, Strategy, StrategyOptions, TargetScores,
                       Verdict)
from .generate import SpecGenerationResponse, generate, prepare, stream_generate
from .hookspecs import hookimpl
from .loop import speculative_generate_step
from .sampling import SamplingParams, make_sampler
from .stats import RoundStats, SpecStats
from .target import TargetAdapter

__version__ = "0.1.0"

__all__ = [
    "AcceptorSpec",
    "Draft",
    "Drafter",
    "DraftContext",
    "Proposer",
    "RoundStats",
    "SamplingParams",
    "SpecGenerationResponse",
    "SpecStats",
    "Strategy",
    "StrategyOptions",
    "TargetAdapter",
    "TargetScores",
    "Verdict",
    "generate",
    "hookimpl",
    "load_drafter",
    "make_sampler",
    "prepare",
    "save_drafter",
    "speculative_generate_step",
    "stream_generate",
]
