"""``mlx-specdec generate``: a strict superset of ``mlx_lm.generate``. Its parser is built from
upstream's own ``setup_arg_parser()`` (every upstream flag keeps its name, default and meaning),
plus ours; under ``mlx.launch`` the target is sharded (tensor parallel)."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import mlx.core as mx
from mlx_lm.generate import DEFAULT_MODEL, setup_arg_parser
from mlx_lm.models.cache import load_prompt_cache
from mlx_lm.utils import load

from ..distributed import DistributedError, Watchdog, active_group, load_sharded, timeout_s
from ..generate import generate
from ..loading import LoadError, check_draft, default_model_hint, load_draft, resolve
from ..options import SAY, add_speculative_args, allow_auto_draft_tokens, say as _say, strategy_options
from ..sampling import SamplingParams


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
