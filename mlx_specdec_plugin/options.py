"""The command-line flags every front end shares (generate, vlm, server, bench, calibrate).

``--draft-strategy`` (one name in every command; ``vlm --draft`` is a hidden alias), ``--acceptor``,
``--block-size``, ``--strategy-option KEY=VALUE`` (repeatable, validated by the chosen strategy's
:attr:`~.contract.Strategy.options`; ``--lookup-max-ngram N`` is kept as an alias of
``--strategy-option max_ngram=N``) and ``--num-draft-tokens`` taking ``auto``. :func:`say` prints
the one ``[mlx-specdec]`` line a front end has for the user. No strategy name is tested here: what
a strategy needs (a drafter, its options) is read from its :class:`~.contract.Strategy`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .fetch import SHIPPED_DRAFTERS
from .loading import LoadError
from .plugins import registry

ACCEPTOR_CHOICES_HELP = "auto (greedy at T=0, rejection otherwise), rejection, block, greedy, match, or a plugin's"
STRATEGY_HELP = ("auto, dspark, dflash, draft-model, lookup, none, or any installed plugin (`mlx-specdec strategies` "
                 "lists them). auto: from --draft-model's config, else lookup. none: plain decoding.")


SAY = {"enabled": True}  # False on ranks other than 0 under mlx.launch: rank 0 speaks for the group


def say(message: str, always: bool = False) -> None:
    """One line on stderr, as every front end reports (``strategy: ...``, ``error: ...``);
    ``always``: even on a rank that is not the group's speaker (an error of its own)."""
    if SAY["enabled"] or always:
        print(f"[mlx-specdec] {message}", file=sys.stderr, flush=True)


def option_pair(value: str) -> Tuple[str, str]:
    """``KEY=VALUE`` of ``--strategy-option`` (the value is typed by the strategy, not here)."""
    key, sep, raw = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key.strip(), raw.strip()


class _OptionAlias(argparse.Action):
    """An old per-strategy flag (``--lookup-max-ngram N``) kept as ``--strategy-option KEY=N``."""

    def __call__(self, parser, namespace, values, option_string=None):
        pairs = list(getattr(namespace, self.dest, None) or [])
        pairs.append((self.const, str(values)))
        setattr(namespace, self.dest, pairs)


def add_strategy_option_args(group) -> None:
    """``--strategy-option KEY=VALUE`` (repeatable) and its old alias, into ``args.strategy_options``."""
    group.add_argument("--strategy-option", dest="strategy_options", action="append", type=option_pair, default=None,
                       metavar="KEY=VALUE", help="an option of the chosen strategy (repeatable), e.g. "
                       "max_ngram=4 for lookup; `mlx-specdec strategies` lists each strategy's options")
    group.add_argument("--lookup-max-ngram", dest="strategy_options", action=_OptionAlias, const="max_ngram",
                       metavar="N", help="alias of --strategy-option max_ngram=N")


def add_speculative_args(parser: argparse.ArgumentParser, strategy_aliases: Iterable[str] = ()) -> None:
    """Our flags, added to upstream's parser (``--draft-model``/``--num-draft-tokens`` are upstream's).
    ``strategy_aliases``: old names of ``--draft-strategy`` still accepted (hidden from ``--help``)."""
    group = parser.add_argument_group("speculative decoding (mlx-specdec)")
    group.add_argument("--draft-strategy", default="auto", help=STRATEGY_HELP)
    for alias in strategy_aliases:
        group.add_argument(alias, dest="draft_strategy", help=argparse.SUPPRESS)
    group.add_argument("--acceptor", default="auto", help=ACCEPTOR_CHOICES_HELP)
    group.add_argument(
        "--block-size",
        type=int,
        default=None,
        help="DFlash/DSpark verify width per round, anchor included (short for chat, 16 for code/math)",
    )
    add_strategy_option_args(group)


def strategy_options(name: Optional[str], pairs: Optional[List[Tuple[str, str]]]) -> Dict[str, Any]:
    """``--strategy-option`` pairs typed and checked by strategy ``name`` (:meth:`Strategy.parse_options`);
    one :class:`~.loading.LoadError` line for an option the strategy does not have or a bad value."""
    if not pairs:
        return {}
    if name in (None, "auto", "none"):
        if name == "auto":
            return {}  # checked once the strategy is chosen
        raise LoadError(f"--strategy-option {pairs[0][0]}=...: plain decoding has no strategy to take it")
    try:
        return registry().strategy(name).parse_options(dict(pairs))
    except ValueError as e:
        raise LoadError(f"--strategy-option: {e}") from None


def draft_tokens_type(value: str):
    """``--num-draft-tokens``: an int (upstream's meaning) or ``auto`` (our per-round scheduler)."""
    if str(value).lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {value!r}") from None


def allow_auto_draft_tokens(parser: argparse.ArgumentParser) -> None:
    """Let upstream's ``--num-draft-tokens`` (type=int) also take ``auto``; its default is kept.
    Upstream's ``--draft-model`` help names what else we accept there."""
    for action in parser._actions:
        if "--draft-model" in action.option_strings:
            action.help = (action.help or "") + " mlx-specdec: also a DSpark/DFlash drafter folder or hub id, " \
                f"or a drafter shipped in the package: {', '.join(sorted(SHIPPED_DRAFTERS))}."
        if "--num-draft-tokens" in action.option_strings:
            action.type = draft_tokens_type
            action.default = None  # resolved per strategy: 3 (upstream's) unless the drafter has a block
            action.help = (action.help or "") + " Default: 3 (upstream's), or a DSpark/DFlash drafter's " \
                "trained block (--block-size caps it). 'auto': choose per round from this machine's " \
                "calibrated cost curve and the running acceptance (mlx-specdec)."
