"""``mlx-specdec bench``: measure speculative decoding against plain decoding, in one process.

Every method runs on the same prompts, seeds and token budget (EOS ignored, so every method
decodes exactly ``--max-tokens`` tokens per prompt):

* ``plain``       - mlx-lm's own ``stream_generate`` without a drafter (the baseline);
* ``mlx-lm-spec`` - mlx-lm's own speculative loop, when a classic draft model is given;
* ``mlx-vlm``     - mlx-vlm's DFlash/DSpark loop: reported ``unsupported`` with the reason when the
                    drafter kind / target cannot run there (mlx-lm targets never can);
* ours            - each strategy x acceptor x draft length (``auto`` = the adaptive scheduler).

Decode throughput excludes prefill and the first round for every method alike: tokens after the
first round's last token, divided by the time since it. For our runs the cost model's ideal
speedup is ``sum(tau) * T_step / sum(T_draft + T_verify(w))`` over the same rounds, with
``T_step`` the plain run's seconds per token, ``T_draft`` the drafter time measured in the round
and ``T_verify(w)`` the target's forward of ``w`` tokens calibrated in this run; loop efficiency =
measured speedup / ideal (the share of the ideal the loop's own overhead leaves).

Outputs: a table on stdout, ``--json PATH``, and PNG plots in ``--plot-dir`` when matplotlib is
installed. ``--random-weights qwen3-4b`` builds a random model of that real shape (no download),
which is what runs on a GPU machine; ``--random-draft layerskip:N`` drafts with the target's first
N layers (shared weights), ``oracle:A`` strategies draft the target's own greedy continuation
corrupted with probability 1 - A (``oracle:0`` = every proposal rejected).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm import load as mlx_lm_load
from mlx_lm.generate import stream_generate as mlx_lm_stream_generate
from mlx_lm.utils import load_tokenizer

from ..contract import Strategy
from ..costs import CostCurve, Progress, blas_id, device_name, measure_verify_curve, quantization_of
from ..drafters import Drafter
from ..generate import auto_scheduler, resolve_strategy, stream_generate
from ..loading import LoadError, check_draft, load_draft, resolve
from ..plugins import Registered, registry
from ..sampling import SamplingParams
from ..scheduler import AdaptiveScheduler
from ..stats import SpecStats
from ..target import model_type_of, vocab_size_of
from ..testing.tiny import SHAPES, layerskip_draft, random_model, write_byte_tokenizer
from .oracle import OracleProposer

PROMPT_SETS = ("chat", "code", "math")

def byte_tokenizer():
    with tempfile.TemporaryDirectory() as d:
        write_byte_tokenizer(Path(d))
        return load_tokenizer(Path(d))


@dataclass
class Models:
    model: nn.Module
    tokenizer: Any
    name: str
    draft: Any = None  # a loaded Drafter, an mlx-lm model, or None
    draft_name: str = ""
    config: dict = field(default_factory=dict)
    draft_strategy: Optional[str] = None  # the strategy that claims ``draft``


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("models")
    g.add_argument("--model", help="target: an mlx-lm model path or hub id")
    g.add_argument("--random-weights", metavar="SHAPE", help=f"target: random weights of a real shape ({', '.join(SHAPES)})")
    g.add_argument("--draft-model", help="classic draft model (mlx-lm path) or a DFlash/DSpark checkpoint folder")
    g.add_argument("--random-draft", metavar="SHAPE|layerskip:N",
                   help="draft: random weights of a shape with the target's vocabulary, or the target's first N layers")
    g.add_argument("--dtype", default="float32", help="random weights: float32, bfloat16, float16")
    g.add_argument("--quantize", type=int, default=None, choices=[2, 3, 4, 5, 6, 8], help="random weights: bits")
    g.add_argument("--weights-seed", type=int, default=0)


def load_models(args) -> Models:
    if bool(args.model) == bool(args.random_weights):
        raise SystemExit("give exactly one of --model PATH or --random-weights SHAPE")
    if args.model:
        try:
            args.model = resolve(args.model, "--model")
        except LoadError as e:
            raise SystemExit(f"[mlx-specdec] error: {e}") from None
        model, tokenizer = mlx_lm_load(args.model)
        models = Models(model, tokenizer, args.model)
    else:
        model, config = random_model(args.random_weights, args.dtype, args.quantize, args.weights_seed)
        name = f"random:{args.random_weights}:{args.dtype}" + (f":q{args.quantize}" if args.quantize else "")
        models = Models(model, byte_tokenizer(), name, config=config)
    if args.draft_model:
        try:
            path = check_draft(args.draft_model)
            choice = load_draft(path, models.model, model_path=args.model)
        except LoadError as e:
            raise SystemExit(f"[mlx-specdec] error: {e}") from None
        models.draft, models.draft_name, models.draft_strategy = choice.draft, path, choice.strategy
    elif args.random_draft:
        spec = args.random_draft
        if spec.startswith("layerskip:"):
            if not models.config:
                raise SystemExit("--random-draft layerskip:N needs --random-weights")
            models.draft = layerskip_draft(models.model, models.config, int(spec.split(":", 1)[1]))
        else:
            models.draft, _ = random_model(spec, args.dtype, args.quantize, args.weights_seed + 1,
                                           vocab_size=vocab_size_of(models.model))
        models.draft_name = f"random:{spec}"
    return models


# ---- prompts -------------------------------------------------------------------------------
def load_prompts(sets: Sequence[str], per_set: int) -> List[Tuple[str, str]]:
    """``(set, prompt)`` pairs; a set is a shipped name (chat, code, math) or a .jsonl/.txt path."""
    out = []
    for s in sets:
        path = Path(s)
        if path.is_file():
            text = path.read_text()
        else:
            if s not in PROMPT_SETS:
                raise SystemExit(f"unknown prompt set '{s}' (shipped: {', '.join(PROMPT_SETS)}, or a file)")
            text = resources.files("mlx_specdec_plugin").joinpath("prompts", f"{s}.jsonl").read_text()
        items = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            items.append(json.loads(line)["prompt"] if line.startswith("{") else line)
        out.extend((path.stem if path.is_file() else s, p) for p in items[:per_set])
    return out


def encode(tokenizer, prompt: str, chat: bool) -> List[int]:
    if chat and getattr(tokenizer, "has_chat_template", False):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode(prompt))


# ---- bench-only drafters -------------------------------------------------------------------
def _register_oracle() -> None:
    reg = registry()
    if "oracle" not in reg.strategies:
        def build(target, draft, options):
            e = options.extra
            return OracleProposer(e["reference"], e["prompt_len"], float(e["accept"]), target.vocab_size, e.get("seed", 0))

        reg.strategies["oracle"] = Registered(
            Strategy("oracle", build, "bench only: the target's greedy continuation, corrupted"), "bench",
            "mlx-specdec-plugin", "bench")


# ---- methods -------------------------------------------------------------------------------
def _needs_draft(strategy: str) -> bool:
    return registry().strategy(strategy).needs_draft


@dataclass
class Method:
    name: str
    kind: str  # plain | mlx-lm-spec | mlx-vlm | ours
    strategy: Optional[str] = None
    acceptor: Optional[str] = None
    k: Any = None
    accept: Optional[float] = None  # oracle acceptance


def plan_methods(strategies: Sequence[str], acceptors: Sequence[str], ks: Sequence[Any], has_classic_draft: bool,
                 block_draft: bool, greedy: bool) -> List[Method]:
    methods = [Method("plain", "plain")]
    fixed = [k for k in ks if k != "auto"]
    if has_classic_draft:
        for k in fixed:
            methods.append(Method(f"mlx-lm-spec k={k}", "mlx-lm-spec", "draft-model", "match", k))
    methods.append(Method("mlx-vlm dflash/dspark", "mlx-vlm"))
    for s in strategies:
        accept = None
        if s.startswith("oracle:"):
            accept, s_name = float(s.split(":", 1)[1]), "oracle"
        else:
            s_name = s
        for a in acceptors:
            if a == "auto":
                a = "greedy" if greedy else "rejection"
            for k in ks:
                label = f"{s} {a} k={k}"
                methods.append(Method(label, "ours", s_name, a, k, accept))
    return methods


def mlx_vlm_support(models: Models) -> str:
    """Why mlx-vlm's DFlash/DSpark loop can or cannot run this pair (it is never run on mlx-lm targets)."""
    if not isinstance(models.draft, Drafter):
        return "n/a: no DFlash/DSpark drafter given (mlx-vlm's loop has no classic draft-model kind)"
    mt = model_type_of(models.model)
    return (f"unsupported: mlx-vlm's dflash loop needs an mlx-vlm LanguageModel target with capture_layer_ids and "
            f"rollback_speculative_cache; this is an mlx-lm '{mt}' model (dense qwen3 lacks both in mlx-vlm "
            f"0.7.10: DSpark refuses, DFlash crashes; see docs/benchmarks.md)")


@dataclass
class Run:
    tokens: List[int]
    times: List[float]
    from_draft: List[bool]
    stats: Any = None
    slot: int = 0


def _timed(gen) -> Run:
    toks, times, fd, stats = [], [], [], None
    for r in gen:
        times.append(time.perf_counter())
        toks.append(int(r.token))
        fd.append(bool(getattr(r, "from_draft", False)))
        stats = getattr(r, "spec", stats)
    return Run(toks, times, fd, stats)


def _first_round_end(run: Run) -> int:
    """Index of the first round's last token (the first token not taken from a draft)."""
    for i, d in enumerate(run.from_draft):
        if not d:
            return i
    return len(run.tokens) - 1


def _rounds_from_flags(flags: Sequence[bool]) -> List[int]:
    """Accepted drafts per round from from_draft flags (a run of True, then one False)."""
    out, run = [], 0
    for f in flags:
        if f:
            run += 1
        else:
            out.append(run)
            run = 0
    return out


def run_bench(
    models: Models,
    prompts: Sequence[Tuple[str, str]],
    methods: Sequence[Method],
    *,
    max_tokens: int = 64,
    temp: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    chat: bool = True,
    calib_width: Optional[int] = None,
    progress: bool = True,
    repeats: int = 3,
    passes: int = 1,
) -> dict:
    tokenizer = models.tokenizer
    tokenizer.eos_token_ids = set()  # fixed budget: every method decodes max_tokens tokens
    encoded = [encode(tokenizer, p, chat) for _, p in prompts]
    ks = [m.k for m in methods if m.kind == "ours" and isinstance(m.k, int)]
    width = calib_width or (max(ks + [8]) + 1)
    if any(m.strategy == "oracle" for m in methods):
        _register_oracle()
    bar = Progress((sum(m.kind != "mlx-vlm" for m in methods) + 1) * len(encoded) * passes + repeats, "bench",
                   enabled=progress)

    # warm-up (compilation, allocator) so that the first method is not penalised
    for _ in mlx_lm_stream_generate(models.model, tokenizer, encoded[0], max_tokens=4,
                                    sampler=SamplingParams(temp).sampler()):
        pass
    context = int(statistics.mean(len(e) for e in encoded)) + max_tokens // 2
    verify = measure_verify_curve(models.model, width, context, repeats=repeats, progress=bar)
    curve = CostCurve(verify)

    # Slots = (prompt, pass). In each slot plain decoding runs first and last (its mean is the
    # slot's baseline) and the other methods run in between, in an order rotated per slot, so
    # that every ratio compares runs made side by side under the same machine load.
    runnable = [m for m in methods if m.kind != "mlx-vlm"]
    auto_cap = width - 1
    for m in runnable:  # auto's one-time calibration (cached) happens here, not inside a timed run
        if m.kind == "ours" and m.k == "auto" and m.strategy != "oracle":
            auto_scheduler(models.model, models.draft if _needs_draft(m.strategy) else None, m.strategy, auto_cap)
    others = [m for m in runnable if m.kind != "plain"]
    runs: Dict[str, List[Run]] = {m.name: [] for m in runnable}
    schedulers: Dict[str, list] = {m.name: [] for m in runnable}
    references: Dict[int, List[int]] = {}
    plain = next(m for m in runnable if m.kind == "plain")
    slot = 0
    for p in range(passes):
        for i, prompt in enumerate(encoded):
            order = others[slot % len(others):] + others[: slot % len(others)] if others else []
            for m in [plain] + order + [plain]:
                sampling = SamplingParams(temp, top_p)
                sampler = sampling.sampler()  # for mlx-lm's loops: draws what mlx-lm's make_sampler draws
                mx.random.seed(seed + i)
                if m.kind == "plain":
                    gen = mlx_lm_stream_generate(models.model, tokenizer, prompt, max_tokens=max_tokens,
                                                 sampler=sampler)
                elif m.kind == "mlx-lm-spec":
                    gen = mlx_lm_stream_generate(models.model, tokenizer, prompt, max_tokens=max_tokens,
                                                 sampler=sampler, draft_model=models.draft, num_draft_tokens=m.k)
                else:
                    kw: Dict[str, Any] = {}
                    draft = None
                    if m.strategy == "oracle":
                        if temp != 0:
                            raise SystemExit("oracle drafters need --temp 0 (they replay the greedy continuation)")
                        kw["strategy_options"] = {"reference": references[i], "prompt_len": len(prompt),
                                                  "accept": m.accept, "seed": seed + i + 1000 * p}
                    elif _needs_draft(m.strategy):
                        draft = models.draft
                        if draft is None:
                            raise SystemExit(f"strategy '{m.strategy}' needs --draft-model or --random-draft")
                    k = m.k
                    if k == "auto":  # exactly what num_draft_tokens="auto" gives a user: the cached calibration
                        sched = (AdaptiveScheduler(curve) if m.strategy == "oracle" else  # oracles: no drafter to time
                                 auto_scheduler(models.model, draft, m.strategy, auto_cap))
                        schedulers[m.name].append(sched)
                        kw["draft_length"] = sched
                        k = auto_cap
                    gen = stream_generate(models.model, tokenizer, prompt, max_tokens=max_tokens, draft_model=draft,
                                          draft_strategy=m.strategy, acceptor=m.acceptor, num_draft_tokens=k,
                                          sampling=sampling, stats=SpecStats(), **kw)
                run = _timed(gen)
                run.slot = slot
                runs[m.name].append(run)
                if m.kind == "plain":
                    references.setdefault(i, run.tokens)
                bar.update(1, m.name)
            slot += 1

    baseline: Dict[int, float] = {}
    for s_id in range(slot):
        rates = [_decode_rate(r)[0] / _decode_rate(r)[1] for r in runs[plain.name] if r.slot == s_id]
        baseline[s_id] = statistics.mean(rates)
    results = []
    plain_tps = None
    for m in methods:
        if m.kind == "mlx-vlm":
            results.append({"method": m.name, "kind": m.kind, "status": mlx_vlm_support(models)})
            continue
        results.append(summarise(m, runs[m.name], curve, baseline, schedulers[m.name]))
        if m.kind == "plain":
            plain_tps = results[-1]["tokens_per_s"]
    bar.close()
    return {
        "machine": {"device": device_name(), "mlx": mx.__version__, "blas": blas_id()},
        "model": models.name,
        "quantization": quantization_of(models.model),
        "draft": models.draft_name,
        "temp": temp,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "seed": seed,
        "prompts": [{"set": s, "tokens": len(e)} for (s, _), e in zip(prompts, encoded)],
        "verify_curve_s": verify,
        "calibration_context": context,
        "passes": passes,
        "slots": slot,
        "t_step_s": 1.0 / plain_tps if plain_tps else None,
        "methods": results,
    }


def _decode_rate(run: Run) -> Tuple[float, float]:
    """(tokens, seconds) after the first round's last token."""
    start = _first_round_end(run)
    return len(run.tokens) - 1 - start, run.times[-1] - run.times[start]


def summarise(m: Method, runs: Sequence[Run], curve: CostCurve, baseline: Dict[int, float], schedulers) -> dict:
    """Pooled tokens/s; speedup, ideal and efficiency are medians over slots of paired ratios."""
    toks = secs = 0.0
    speedups, ideals, effs = [], [], []
    for run in runs:
        t, dt = _decode_rate(run)
        toks, secs = toks + t, secs + dt
        base = baseline[run.slot]
        speedups.append(t / dt / base)
        if run.stats is not None and len(run.stats.rounds) > 1:
            # ideal: tau * T_step / (T_draft + T_step * T_verify(w) / T_verify(1)), T_step from this slot
            t_step = 1.0 / base
            later = run.stats.rounds[1:]
            tau = sum(r.accepted + 1 for r in later)
            cost = sum(r.draft_time + t_step * curve.verify_time(r.proposed + 1) / curve.verify_time(1) for r in later)
            ideals.append(tau * t_step / cost)
            effs.append(speedups[-1] / ideals[-1])
    tps = toks / secs if secs > 0 else 0.0
    row: Dict[str, Any] = {"method": m.name, "kind": m.kind, "strategy": m.strategy, "acceptor": m.acceptor,
                           "num_draft_tokens": m.k, "tokens": int(sum(len(r.tokens) for r in runs)) // (
                               2 if m.kind == "plain" else 1),
                           "tokens_per_s": tps, "speedup": statistics.median(speedups),
                           "speedup_min": min(speedups), "speedup_max": max(speedups)}
    if m.kind == "plain":
        return row
    if m.kind == "mlx-lm-spec":
        rounds = [a for run in runs for a in _rounds_from_flags(run.from_draft)]
        row["mean_accepted_length"] = (sum(rounds) + len(rounds)) / len(rounds) if rounds else None
        by_pos = []
        for j in range(1, int(m.k) + 1):
            reached = [a for a in rounds if a >= j - 1]
            by_pos.append(sum(a >= j for a in reached) / len(reached) if reached else 0.0)
        row["acceptance_by_position"] = by_pos  # rounds cut by the budget count as full-length
        return row
    merged = SpecStats(runs[0].stats.strategy, runs[0].stats.acceptor)
    later = SpecStats()
    for run in runs:
        merged.rounds.extend(run.stats.rounds)
        later.rounds.extend(run.stats.rounds[1:])  # the rounds the throughput counts
    d = merged.as_dict()
    row.update({k: d[k] for k in ("rounds", "mean_accepted_length", "acceptance_rate", "acceptance_by_position")})
    row["draft_s"], row["verify_s"] = later.draft_time, later.verify_time
    row["draft_share"] = later.draft_time / max(later.draft_time + later.verify_time, 1e-12)
    row["round_split_ms"] = round_split(runs)
    if ideals:
        row["ideal_speedup"] = statistics.median(ideals)
        row["loop_efficiency"] = statistics.median(effs)
    if schedulers:
        lengths = [k for s in schedulers for k in s.history]
        row["auto_lengths"] = {str(k): lengths.count(k) for k in sorted(set(lengths))}
    return row


def round_split(runs: Sequence[Run]) -> Dict[str, float]:
    """Where a round's wall time goes, in ms per round (first rounds left out): ``draft`` (the
    proposer, up to its one host sync), ``verify`` (the target's forward and the acceptor, up to
    the verdict), ``commit`` (rollback and proposer update), ``other`` (emitting, detokenizing and
    the caller's loop: the rest of the wall time between the first round's end and the last token)."""
    rounds = wall = draft = verify = commit = 0.0
    for run in runs:
        later = run.stats.rounds[1:]
        if not later:
            continue
        rounds += len(later)
        wall += run.times[-1] - run.times[_first_round_end(run)]
        draft += sum(r.draft_time for r in later)
        verify += sum(r.verify_time for r in later)
        commit += sum(r.commit_time for r in later)
    if not rounds:
        return {}
    ms = 1e3 / rounds
    return {"draft": draft * ms, "verify": verify * ms, "commit": commit * ms,
            "other": (wall - draft - verify - commit) * ms, "round": wall * ms}


# ---- output --------------------------------------------------------------------------------
def _f(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)


def format_table(result: dict) -> str:
    head = (f"{'method':<32} {'tok/s':>8} {'speedup':>7} {'tau':>5} {'ideal':>6} {'eff':>5} {'draft%':>6}  "
            f"acceptance by position")
    lines = [f"model={result['model']} ({result['quantization']}) draft={result['draft'] or '-'} "
             f"T={result['temp']} max_tokens={result['max_tokens']} prompts={len(result['prompts'])} "
             f"device={result['machine']['device']} mlx={result['machine']['mlx']}",
             "T_verify(w) ms: " + " ".join(f"{w}:{t * 1e3:.2f}" for w, t in enumerate(result["verify_curve_s"], 1)),
             head, "-" * len(head)]
    for r in result["methods"]:
        if "status" in r:
            lines.append(f"{r['method']:<32} {r['status']}")
            continue
        pos = " ".join(f"{a:.2f}" for a in r.get("acceptance_by_position") or [])
        draft_share = _f(r.get("draft_share"), "{:.0%}") if r.get("draft_share") is not None else "-"
        lines.append(f"{r['method']:<32} {_f(r['tokens_per_s'], '{:.1f}'):>8} {_f(r.get('speedup')):>7} "
                     f"{_f(r.get('mean_accepted_length')):>5} {_f(r.get('ideal_speedup')):>6} "
                     f"{_f(r.get('loop_efficiency')):>5} {draft_share:>6}  {pos}"
                     + (f"  lengths={r['auto_lengths']}" if r.get("auto_lengths") else ""))
    return "\n".join(lines)


def plot(result: dict, out_dir: Path) -> List[Path]:
    """acceptance_by_position.png, verify_cost.png, speedup.png (needs matplotlib; [] without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for r in result["methods"] if "status" not in r]
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        pos = r.get("acceptance_by_position")
        if pos:
            ax.plot(range(1, len(pos) + 1), pos, marker="o", label=r["method"])
    ax.set_xlabel("draft position k")
    ax.set_ylabel("P(accept k | accepted 1..k-1)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Conditional acceptance by draft position")
    ax.legend(fontsize=6)
    fig.tight_layout()
    paths.append(out_dir / "acceptance_by_position.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    v = result["verify_curve_s"]
    ax.plot(range(1, len(v) + 1), [t * 1e3 for t in v], marker="o")
    ax.set_xlabel("verify width w (tokens)")
    ax.set_ylabel("T_verify(w) ms")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Verify cost: {result['model']} on {result['machine']['device']}", fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "verify_cost.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    names = [r["method"] for r in rows]
    ax.barh(names, [r.get("speedup") or 0 for r in rows], label="measured")
    ax.scatter([r.get("ideal_speedup") or float("nan") for r in rows], names, color="k", marker="|", s=200,
               label="cost-model ideal")
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("speedup over plain mlx-lm decoding")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    paths.append(out_dir / "speedup.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _k(value: str):
    return "auto" if value == "auto" else int(value)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mlx-specdec bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    parser.add_argument("--strategies", nargs="+", default=None,
                        help="ours to run: draft-model, lookup, dspark, dflash, oracle:A (A = acceptance, T=0 only). "
                        "Default: draft-model when a draft is given, and lookup")
    parser.add_argument("--acceptors", nargs="+", default=["auto"],
                        help="auto (greedy at T=0, rejection otherwise), greedy, rejection, block, match")
    parser.add_argument("--num-draft-tokens", nargs="+", type=_k, default=[3, "auto"], help="ints and/or auto")
    parser.add_argument("--prompts", nargs="+", default=list(PROMPT_SETS), help="chat code math, or .jsonl/.txt files")
    parser.add_argument("--num-prompts", type=int, default=2, help="prompts per set (default 2)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temp", type=float, default=0.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw-prompt", action="store_true", help="do not apply the chat template")
    parser.add_argument("--calib-width", type=int, default=None, help="verify widths to calibrate (default max k + 1)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per calibrated width")
    parser.add_argument("--passes", type=int, default=1, help="run every prompt this many times (more slots)")
    parser.add_argument("--json", dest="json_path", help="write the results as JSON here")
    parser.add_argument("--plot-dir", help="write PNG plots here (needs matplotlib)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    models = load_models(args)
    strategies = args.strategies
    if not strategies:
        strategies = ["lookup"]
        if models.draft is not None:
            strategies.insert(0, models.draft_strategy or resolve_strategy(models.draft, "auto").name)
    classic = isinstance(models.draft, nn.Module)
    methods = plan_methods(strategies, args.acceptors, args.num_draft_tokens, classic, isinstance(models.draft, Drafter),
                           args.temp == 0)
    prompts = load_prompts(args.prompts, args.num_prompts)
    result = run_bench(models, prompts, methods, max_tokens=args.max_tokens, temp=args.temp, top_p=args.top_p,
                       seed=args.seed, chat=not args.raw_prompt, calib_width=args.calib_width,
                       progress=not args.no_progress, repeats=args.repeats, passes=args.passes)
    result["command"] = "mlx-specdec bench " + " ".join(sys.argv[1:] if argv is None else argv)
    print(format_table(result))
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(result, indent=1))
        print(f"json: {args.json_path}")
    if args.plot_dir:
        paths = plot(result, Path(args.plot_dir))
        print("plots: " + (", ".join(map(str, paths)) if paths else "skipped (matplotlib is not installed)"))
    return 0


