"""``mtp``: the target's own multi-token-prediction heads (Qwen3.5 / Qwen3-Next ``mtp.*``;
DeepSeek-V3-style ``model.layers.{num_hidden_layers}.*`` with ``enorm``/``hnorm``/``eh_proj``),
read from the target's checkpoint folder (``draft_model=`` that folder; see :mod:`..drafters.mtp`).
Both families are one head kind (pairs of token t + 1 and the target's final-normed state at t,
chained on the head's own output), so they share this strategy; the family is the folder's
``config.json``'s.

Drafting is :class:`~.feature_chain.FeatureChainProposer`'s: pairs (token t + 1, the target's
final-normed hidden state at t), the head chained on its own output for further proposals, its KV
cache trimmed back to the committed pairs after every round (the target's caches are rolled back
by the loop, recurrent ones included).
"""

from __future__ import annotations

from ..drafters import as_drafter, claims as _claims
from ..contract import StrategyOptions
from ..target import TargetAdapter
from .feature_chain import FeatureChainProposer

KIND = "mtp"


def build(target: TargetAdapter, draft, options: StrategyOptions) -> FeatureChainProposer:
    return FeatureChainProposer(as_drafter(draft, target.model, KIND), KIND, options)


def claims(draft) -> bool:
    return _claims(draft, KIND)
