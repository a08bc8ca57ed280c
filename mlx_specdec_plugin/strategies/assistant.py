"""``assistant``: Gemma-4's assistant drafter (``gemma4_assistant`` checkpoints; see
:mod:`..drafters.assistant`), which attends to the target's own keys and values.

The proposer keeps one thing between rounds: the target's final-normed hidden state at the last
committed position (the last row of the tapped features :meth:`AssistantProposer.extend` gets).
Each :meth:`~AssistantProposer.propose` reads the target's keys/values from ``ctx.cache`` (the
loop's cache after the previous round's rollback: exactly the committed tokens), then drafts left
to right: step 1 on (the pending token, that hidden state), each further step on (the previous
proposal, the assistant's own projected output), every step at the last committed position and
over the same keys/values. The assistant has no state of its own to roll back.

Every proposal is drawn through the user's sampling chain from the assistant's logits and that q
is reported, so every acceptor stays exact.

:class:`~.tree.AssistantTreeProposer` (strategy ``tree`` with an assistant checkpoint) grows a draft tree
instead. A node's children come from one assistant step on (the node's token, its parent's
projected output), and the steps of different nodes do not see each other (the assistant attends
to the target's keys/values only), so a depth's nodes run as rows of one call. At T = 0, or with
``mode=topk``, the tree is the best-first top-k tree by path log q (one step per expanded node);
otherwise (``mode=sampled``) the shape is fixed first and each sibling group is drawn without
replacement from q at its node (:mod:`.sampled_tree`), one call per depth.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import mlx.core as mx

from ..contract import Draft, DraftContext, StrategyOptions
from ..drafters import as_drafter, claims as _claims
from ..target import TargetAdapter
from .dflash import sample_sequential

KIND = "assistant"


class AssistantProposer:
    def __init__(self, drafter, options: StrategyOptions):
        self.drafter = drafter
        self.tap_layers: Tuple[int, ...] = tuple(drafter.tap_layers)
        if options.block_size is not None and int(options.block_size) < 2:
            raise ValueError(f"block_size (verify width, anchor included) must be >= 2, got {options.block_size}")
        self.cap = int(options.block_size) - 1 if options.block_size is not None else int(drafter.default_proposals)
        self._last: Optional[mx.array] = None  # (1, 1, B): the target's tapped state at the last committed position

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        if hidden is None:
            raise ValueError(f"strategy '{KIND}' needs the target's hidden states")
        if len(tokens):
            self._last = hidden[:, -1:]

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        g = min(max_tokens, self.cap)
        if g < 1 or self._last is None:  # nothing committed yet (a one-token prompt)
            return Draft.empty()
        if ctx.cache is None:
            raise ValueError(f"strategy '{KIND}' reads the target's cache, which this caller does not pass "
                             "(DraftContext.cache)")
        d = self.drafter
        shared, position = d.shared_kv(ctx.cache)
        state = {"f": d.feature(self._last)}

        def row(i: int, prev: mx.array) -> mx.array:
            inputs = mx.concatenate([d.embed(prev.reshape(1, 1)), state["f"]], axis=-1)
            state["f"], logits = d.step(inputs, shared, position)
            return logits[0, 0]

        return sample_sequential(row, g, ctx)


def build(target: TargetAdapter, draft, options: StrategyOptions) -> AssistantProposer:
    return AssistantProposer(as_drafter(draft, target.model, KIND), options)


def claims(draft) -> bool:
    return _claims(draft, KIND)
