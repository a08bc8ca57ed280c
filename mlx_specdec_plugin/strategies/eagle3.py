"""``eagle3``: EAGLE-3 (Li et al. 2025, arXiv:2503.01840): a one-layer head on fused
low/mid/high target features, with its own (smaller) draft vocabulary.

Drafting is :class:`~.feature_chain.FeatureChainProposer`'s: the head's pairs are (token t + 1,
``fc([h_low ; h_mid ; h_high]_t)``); speculative steps feed the head's own pre-norm output back.
The head's logits are spread over the target vocabulary (``-inf`` outside a reduced draft
vocabulary, see :mod:`..drafters.eagle3`), so the reported q is over target tokens.
"""

from __future__ import annotations

from ..drafters import as_drafter, claims as _claims
from ..contract import StrategyOptions
from ..target import TargetAdapter
from .feature_chain import FeatureChainProposer

KIND = "eagle3"


def build(target: TargetAdapter, draft, options: StrategyOptions) -> FeatureChainProposer:
    return FeatureChainProposer(as_drafter(draft, target.model, KIND), KIND, options)


def claims(draft) -> bool:
    return _claims(draft, KIND)
