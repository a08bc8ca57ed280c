"""The contract between the loop, drafters (proposers) and acceptors: :class:`Draft`,
:class:`DraftContext`, :class:`Proposer`, :class:`Strategy`, :class:`Verdict`, :class:`TargetScores`
and :class:`AcceptorSpec`.

A round of speculative decoding, as the loop sees it::

    draft   = proposer.propose(ctx, n)          # up to n tokens after ctx.pending, with q
    logits  = target([pending, *draft.tokens])  # one verify forward
    verdict = acceptor(draft, scores)           # tau accepted + one more token
    proposer.extend([pending, *accepted], hidden_states_of_those_positions)

*Committed* tokens are the ones whose keys/values are in the target cache. The *pending* token
has been emitted (or is the prompt's last token) but not yet run through the target; every
proposal continues after it.

Trees (:mod:`~mlx_specdec_plugin.tree`) use the same round: a draft with ``parents`` is a tree
whose nodes are verified in one forward with a tree attention mask; the verdict's ``path`` names
the accepted nodes, and the loop keeps the verify rows ``verdict.rows`` (the pending token and
that path), in the cache, the hidden states and the emitted log-probabilities. A chain is the tree
``parents = (-1, 0, 1, ...)`` and ``path = (0 .. accepted - 1)``; both default to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import mlx.core as mx

from . import tree as _tree
from .sampling import Sampling, greedy_tokens, normalise, sample_from


@dataclass
class Draft:
    """Proposed tokens and the distribution each was drawn from.

    ``tokens``: uint32 ``(g,)``. ``q``: float32 ``(g, V)`` probabilities with ``tokens[i] ~ q[i]``
    (given the context and ``tokens[:i]``), or ``None``. ``deterministic``: the tokens are a
    function of the context (q is a point mass), as for prompt lookup or argmax drafting.
    Acceptors that need q refuse a draft with ``q is None and not deterministic``.

    ``parents`` (a tree draft, else ``None`` = a chain): node ``i``'s parent index, ``-1`` for the
    pending token, parents before children, siblings in the order they were drawn. Then ``q[i]``
    is the distribution node ``i``'s sibling group was drawn from *without replacement* (the same
    row for every sibling), or ``deterministic`` says every node is a function of the context.
    Only acceptors registered with ``trees=True`` take tree drafts.
    """

    tokens: mx.array
    q: Optional[mx.array] = None
    deterministic: bool = False
    parents: Optional[Tuple[int, ...]] = None

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @classmethod
    def empty(cls) -> "Draft":
        return cls(mx.array([], dtype=mx.uint32), None, True)

    @classmethod
    def concat(cls, parts: Sequence["Draft"]) -> "Draft":
        """Join per-position drafts (all drawn the same way) into one."""
        if not parts:
            return cls.empty()
        qs = [p.q for p in parts if p.q is not None]
        return cls(
            mx.concatenate([p.tokens for p in parts]),
            mx.concatenate(qs) if len(qs) == len(parts) else None,
            all(p.deterministic for p in parts),
        )


def draw(sampling: Sampling, logits: mx.array, history: Sequence[int]) -> Draft:
    """Draw one token per row of drafter logits ``(n, V)`` the way every drafter must, through the
    user's chain (``history`` as for :meth:`Sampling.processed`): the argmax at temperature 0
    (deterministic; no normalisation needed), else a draw from the reported
    ``q = sampling.distribution(...)``, or the user's own draw for an opaque sampler (q unknown)."""
    processed = sampling.processed(logits, history)
    if sampling.greedy:
        return Draft(mx.argmax(processed, axis=-1).astype(mx.uint32), None, True)
    if sampling.known:
        q = sampling.distribution(processed)
        return Draft(sample_from(q), q, False)
    return Draft(sampling.sample(normalise(processed)), None, False)


@dataclass
class DraftContext:
    """What a proposer may read when proposing.

    ``history``: every committed token plus the pending one (list of ints; the prompt included).
    ``sampling``: the user's sampling chain; a proposer that samples must draw from
    ``sampling.distribution(sampling.processed(...))`` (what :func:`draw` does) and report that q,
    so the acceptor stays exact.
    ``cache``: the target's cache list (the loop owns it; read it, never write it), holding exactly
    the committed tokens (``history`` without the pending one), or ``None`` where a caller has none
    to give; for drafters that attend to the target's own keys and values.
    """

    history: List[int]
    sampling: Sampling
    cache: Optional[List[Any]] = None

    @property
    def pending(self) -> int:
        return self.history[-1]


@runtime_checkable
class Proposer(Protocol):
    """One generation's drafter state. Built per generation by a :class:`Strategy`.

    ``tap_layers``: target decoder layers whose outputs it needs (empty: none). The loop passes
    their concatenation, ``(1, L, len(tap_layers) * H)``, to :meth:`extend`. An optional ``cap``
    attribute (int) is the natural number of proposals per round, used when the caller does not
    set ``num_draft_tokens``. An optional ``drafts_trees`` attribute (bool) says it proposes
    tree drafts (``Draft.parents``): caches are then checked for tree compaction before generation
    and only a tree acceptor is accepted.
    """

    tap_layers: Tuple[int, ...]

    def extend(self, tokens: Sequence[int], hidden: Optional[mx.array]) -> None:
        """``tokens`` were committed to the target cache (prefill chunks, then per round the
        pending token plus the accepted drafts); ``hidden`` holds their tapped features."""

    def propose(self, ctx: DraftContext, max_tokens: int) -> Draft:
        """Return at most ``max_tokens`` (>= 1) proposals continuing ``ctx.history``."""


@dataclass(frozen=True)
class StrategyOptions:
    """Options every strategy receives (unknown ones are kept in ``extra``)."""

    num_draft_tokens: int = 3
    prefill_step_size: int = 2048
    block_size: Optional[int] = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StrategyOption:
    """One option a strategy takes in ``strategy_options`` (``--strategy-option NAME=VALUE``).
    ``type`` turns the command line's string into the value (``int``, ``float``, ``str``)."""

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class Strategy:
    """A drafter kind, registered through the ``register_strategies`` hook.

    ``build(target, draft, options)`` makes a fresh :class:`Proposer` for one generation;
    ``target`` is a :class:`~mlx_specdec_plugin.target.TargetAdapter`, ``draft`` whatever the user
    passed as ``draft_model`` (an mlx-lm model, a loaded drafter, or ``None``). It may raise
    ``ValueError`` with one clear message for incompatible input; it runs before any generation.
    ``claims(draft)`` tells ``auto`` whether this strategy is the natural one for a draft object.
    ``needs_draft``: the strategy cannot run without a ``draft_model`` (front ends load one for it,
    and only for it). ``options``: the keys it reads from ``strategy_options`` (``options.extra``),
    which :meth:`parse_options` types and checks for the command line.
    """

    name: str
    build: Callable[[Any, Any, StrategyOptions], Proposer]
    description: str = ""
    claims: Optional[Callable[[Any], bool]] = None
    needs_draft: bool = False
    options: Tuple[StrategyOption, ...] = ()

    def parse_options(self, raw: Dict[str, Any]) -> Dict[str, Any]:
        """``raw`` (strings from the command line, or values) typed by :attr:`options`; one
        ``ValueError`` naming the key for an option this strategy does not have or a bad value."""
        known = {o.name: o for o in self.options}
        out = {}
        for key, value in raw.items():
            if key not in known:
                have = f"its options: {', '.join(known)}" if known else "it takes none"
                raise ValueError(f"strategy '{self.name}' has no option '{key}' ({have})")
            option = known[key]
            try:
                out[key] = option.type(value) if isinstance(value, str) else value
            except (TypeError, ValueError):
                kind = getattr(option.type, "__name__", "value")
                raise ValueError(f"strategy '{self.name}': option {key}={value!r} is not a valid {kind}") from None
        return out


@dataclass(frozen=True)
class Verdict:
    """An acceptor's decision: the first ``accepted`` drafts are kept, then ``next_token``.

    ``path`` (tree drafts): the kept nodes, root to leaf (``accepted`` of them); ``None`` means
    the chain's first ``accepted`` nodes."""

    accepted: int
    next_token: int
    path: Optional[Tuple[int, ...]] = None

    @property
    def nodes(self) -> Tuple[int, ...]:
        """The kept draft nodes, in order."""
        return tuple(range(self.accepted)) if self.path is None else tuple(self.path)

    @property
    def rows(self) -> Tuple[int, ...]:
        """The kept verify rows: 0 (the pending token) and ``1 + node`` for each kept node; row
        ``rows[i]``'s distribution is the one emitted token ``i`` was decided from."""
        return (0,) + tuple(1 + n for n in self.nodes)


@dataclass
class TargetScores:
    """The target's verify pass over ``[pending, x1..xg]``.

    ``logprobs``: ``(g+1, V)`` processed (logits processors applied with each row's own history)
    and normalised; row ``i`` is the target's view of the token after ``x_i`` (row 0: after the
    pending token). ``processed``: the same rows before normalisation, when known
    (:meth:`from_logits`); then ``logprobs`` stays a lazy graph that runs only if someone reads
    it, and the acceptors' distributions and argmaxes skip it. Distributions are cached.
    """

    logprobs: mx.array
    sampling: Sampling
    _probs: Optional[mx.array] = None
    processed: Optional[mx.array] = None

    @classmethod
    def from_logits(
        cls, logits: mx.array, history: Sequence[int], sampling: Sampling, parents: Optional[Sequence[int]] = None
    ) -> "TargetScores":
        """Scores of verify logits ``(g+1, V)``; ``history`` as for :meth:`Sampling.processed`.
        With ``parents`` (a tree draft; ``history`` ends with its g nodes) row ``1 + i``'s
        processors see the committed tokens and node i's own root-to-node path."""
        if parents is None:
            processed = sampling.processed(logits, history)
        else:
            g = len(parents)
            base, nodes = list(history[: len(history) - g]), list(history[len(history) - g :])
            rows = [base] + [base + [nodes[j] for j in _tree.path_to(parents, i)] for i in range(g)]
            processed = sampling.processed_rows(logits, rows)
        return cls(normalise(processed), sampling, None, processed)

    def probs(self) -> mx.array:
        """``(g+1, V)`` float32 sampling distributions p_i."""
        if self._probs is None:
            self._probs = (self.sampling.distribution(self.processed) if self.processed is not None
                           else self.sampling.probs(self.logprobs))
        return self._probs

    def argmax(self) -> mx.array:
        return mx.argmax(self.logprobs, axis=-1).astype(mx.uint32)

    def greedy_tokens(self) -> List[int]:
        """Each row's argmax of ``logprobs``, exactly as mlx-lm's greedy sampler picks it (one sync)."""
        if self.processed is None:
            return self.argmax().tolist()
        return greedy_tokens(self.processed)

    def sample(self) -> mx.array:
        """One independent draw per row with the user's own sampler."""
        return self.sampling.sample(self.logprobs)


@dataclass(frozen=True)
class AcceptorSpec:
    """An acceptor as registered. ``needs_distribution``: needs p (a known sampler);
    ``needs_q``: needs the draft's q (or a deterministic draft); ``greedy_only``: exact only at
    temperature 0; ``trees``: takes tree drafts (``Draft.parents``), chains included."""

    name: str
    accept: Callable[[Draft, TargetScores], Verdict]
    description: str = ""
    needs_distribution: bool = False
    needs_q: bool = False
    greedy_only: bool = False
    trees: bool = False
