#!/usr/bin/env python3
"""Train the SmolLM2 drafters on the lent H200 over several time-limited device calls (issue 16).

Device calls last at most 10 minutes, carry at most 64 MiB in and bring at most 8 files of 16 MB
back, and the machine goes cold ~30 s after a call. This driver splits the work into phases, each
made to fit one call; everything between calls lives in ``$WORK`` (default ``$HOME/drafters``),
which survives while the machine is warm. Run from the project root, after ``. $HOME/mlxenv.sh``:

    python3 docs/scripts/h200_drafters.py prepare     # join + check the GGUF pieces, convert, prompts,
                                                      # self-distilled answers (greedy and T=1)
    python3 docs/scripts/h200_drafters.py ablate      # short runs on the same data and step budget,
                                                      # several at once on the GPU; evals to $OUT
    python3 docs/scripts/h200_drafters.py final --budget S --chunk S2
                                                      # DSpark and DFlash with the chosen recipe, side
                                                      # by side; a chunk per call (the same command
                                                      # resumes); the results go to $OUT when done
    python3 docs/scripts/h200_drafters.py state --first K
                                                      # the packed training state (<= 7 pieces a call)

Locally, ``docs/scripts/h200_stage.sh`` splits the GGUF into the carried pieces, and
``docs/scripts/h200_unpack.sh`` unpacks what came back. Nothing here is H200-specific: it runs
wherever MLX runs (slowly on a CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
# The targets this driver trains for (``DRAFTERS_TARGET``, default smollm2). The GGUF travels in pieces
# (``h200_stage.sh`` / ``h200_stage_qwen.sh``); ``convert`` names how it becomes an mlx-lm folder.
TARGETS = {
    "smollm2": {  # SmolLM2-135M-Instruct.Q4_1, llama: our own converter, float32
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "convert": "ours", "kinds": ("dspark", "dflash"), "shares": None, "recipe": {}, "bf16_copy": True,
        "gen_memory_gb": "40", "train_memory_gb": "26"},
    "qwen-1.5b": {  # Qwen2.5-Coder-1.5B-Instruct Q4_K_M, qwen2: ../shared/models/gguf2hf.py (carried), bf16
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "convert": "gguf2hf", "kinds": ("dspark",), "shares": "code=0.7,chat=0.2,math=0.1",
        # a 2-layer drafter with a narrower MLP than the target's 8,960: ~37 MB at 4 bits, so it comes
        # back in one call, and its forward costs ~1/30 of the target's
        "recipe": {"--intermediate-size": "4096"}, "bf16_copy": False,
        "gen_memory_gb": "50", "train_memory_gb": "100"},
}
TARGET = os.environ.get("DRAFTERS_TARGET", "smollm2")
if TARGET not in TARGETS:
    sys.exit(f"DRAFTERS_TARGET must be one of {sorted(TARGETS)}, got {TARGET!r}")
PROFILE = TARGETS[TARGET]
WORK = Path(os.environ.get("WORK") or Path.home() / ("drafters" if TARGET == "smollm2" else f"drafters-{TARGET}"))
OUT = Path(os.environ.get("OUT") or WORK / "out")
GGUF_SHA256 = PROFILE["sha256"]

# What every run shares (the shipped drafters' shape: 3 taps, block 7, float32 target).
SEQ_LEN, EVAL_FRACTION = 512, 0.03  # what the earlier runs held out (split_old repeats it)
COMMON = ["--seq-len", "512", "--batch-size", "16", "--num-anchors", "64", "--eval-fraction", "0.03",
          "--save-every", "200", "--no-progress"]
if os.environ.get("DRAFTERS_SMOKE"):  # a CPU rehearsal of every phase: tiny batches, same code paths
    COMMON = ["--seq-len", "64", "--batch-size", "2", "--num-anchors", "4", "--eval-fraction", "0.2",
              "--save-every", "0", "--no-progress", "--max-sequences", "40"]
BASE = {"--num-draft-layers": "2", "--block-size": "7", "--markov-rank": "64", "--lr": "1e-3", **PROFILE["recipe"]}
# name -> (strategy, overrides of BASE, data); one change each, the same data and step budget
ABLATIONS = {
    "base": ("dspark", {}, "all"),
    "layers4": ("dspark", {"--num-draft-layers": "4"}, "all"),
    "rank256": ("dspark", {"--markov-rank": "256"}, "all"),
    "lr3e-3": ("dspark", {"--lr": "3e-3"}, "all"),
    "lr_linear": ("dspark", {"--lr-schedule": "linear"}, "all"),
    "ce0.5": ("dspark", {"--ce-weight": "0.5", "--tv-weight": "0.5"}, "all"),
    "block4": ("dspark", {"--block-size": "4"}, "all"),
    "greedy_data": ("dspark", {}, "t0"),
    "half_data": ("dspark", {}, "half"),
    "dflash": ("dflash", {}, "all"),
}
# options a winning ablation carries into the final recipe (block size and data stay as in BASE)
RECIPE_KNOBS = ("layers4", "rank256", "lr3e-3", "lr_linear", "ce0.5")


def stamp(msg: str) -> None:
    print(f"[h200_drafters {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, log: Path, env=None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([str(c) for c in cmd], stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}", **(env or {})})


def train_cmd(strategy: str, overrides: dict, data: list, out: Path, extra=()) -> list:
    knobs = {**BASE, **overrides}
    return [PY, "-m", "mlx_specdec_plugin", "train", "--target", WORK / "model", "--strategy", strategy,
            "--data", *data, "--out", out, *COMMON, *[x for kv in knobs.items() for x in kv],
            # MLX keeps freed buffers cached per process: a limit lets several share the GPU
            # (MEM_GB=0: no limit and no RAM feature cache: the target's features are recomputed)
            *([] if os.environ.get("MEM_GB") == "0" else
              ["--memory-budget", os.environ.get("MEM_GB", PROFILE["train_memory_gb"])]), *extra]


def data_files(which: str) -> list:
    t0, t1 = WORK / "gen_t0" / "generated.jsonl", WORK / "gen_t1" / "generated.jsonl"
    old = WORK / "old_train.jsonl"  # an earlier run's answers, its held-out windows taken out
    if which == "all" and old.is_file():
        return [old, t0, t1]
    if which == "t0":
        return [t0]
    if which == "half":
        half = WORK / "half.jsonl"
        if not half.is_file():
            lines = [l for f in (t0, t1) for l in f.read_text().splitlines()[::2]]
            half.write_text("\n".join(lines) + "\n")
        return [half]
    return [t0, t1]


# --------------------------------------------------------------------------- phases


def prepare(a) -> None:
    """Join and check the carried GGUF pieces, convert to float32, write prompts, answer them."""
    pieces = sorted(Path(a.pieces).glob("gguf.part*"))
    gguf = WORK / f"{TARGET}.gguf"
    WORK.mkdir(parents=True, exist_ok=True)
    if not (WORK / "model" / "config.json").is_file():
        with gguf.open("wb") as f:
            for p in pieces:
                f.write(p.read_bytes())
        digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
        if digest != GGUF_SHA256:
            sys.exit(f"GGUF sha256 {digest} != {GGUF_SHA256}: {len(pieces)} pieces ({[p.name for p in pieces]})")
        if PROFILE["convert"] == "ours":
            cmd = [PY, "-c", "import sys; from pathlib import Path; from mlx_specdec_plugin.fetch import "
                   "convert_gguf; convert_gguf(Path(sys.argv[1]), Path(sys.argv[2]), 'float32', "
                   "manifest={'name': 'smollm2'})", gguf, WORK / "model"]
        else:  # qwen2 K-quants: the shared converter, carried next to the pieces
            cmd = [PY, Path(a.pieces) / "gguf2hf.py", gguf, WORK / "model", "--dtype", "bf16"]
        subprocess.run(cmd, check=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"})
        gguf.unlink()
        stamp("target converted")
    prompts = WORK / "prompts.jsonl"
    subprocess.run([PY, ROOT / "tools/make_train_prompts.py", "--out", prompts, "--n", str(a.prompts),
                    "--seed", str(a.seed), *(["--shares", PROFILE["shares"]] if PROFILE["shares"] else [])],
                   check=True)
    lines = prompts.read_text().splitlines()
    if a.old:
        lines = split_old(Path(a.old), lines)
    half = len(lines) // 2
    (WORK / "prompts_t0.jsonl").write_text("\n".join(lines[:half]) + "\n")
    (WORK / "prompts_t1.jsonl").write_text("\n".join(lines[half:]) + "\n")
    stamp(f"answering {len(lines)} prompts, greedy and T=1 side by side, {a.gen_seconds}s cap")
    procs = [run([PY, "-m", "mlx_specdec_plugin", "train", "--target", WORK / "model", "--generate", "--generate-only",
                  "--gen-temp", str(t), "--gen-batch", str(a.gen_batch), "--max-new-tokens", str(a.max_new),
                  "--data", WORK / f"prompts_t{t}.jsonl", "--out", WORK / f"gen_t{t}", "--no-progress",
                  "--memory-budget", PROFILE["gen_memory_gb"]],
                 WORK / f"gen_t{t}.log") for t in (0, 1)]
    deadline = time.time() + a.gen_seconds
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(2)
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait()
    summary = {}
    for t in (0, 1):  # a run stopped by the cap may leave a torn last line
        f = WORK / f"gen_t{t}" / "generated.jsonl"
        good = []
        for line in (f.read_text().splitlines() if f.is_file() else []):
            try:
                good.append(json.loads(line))
            except ValueError:
                pass
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(json.dumps(r) + "\n" for r in good))
        summary[f"t{t}"] = {"responses": len(good), "tokens": sum(len(r["response_ids"]) for r in good)}
    stamp(f"answers: {summary}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "data.json").write_text(json.dumps(summary, indent=1))


def split_old(folder: Path, prompt_lines: list) -> list:
    """An earlier run's answers (``folder/generated_t{0,1}.jsonl.gz``) join the training data without
    their held-out windows: those are the ones ``mlx-specdec train`` held out in that run (same data
    order, ``--seq-len``, ``--eval-fraction``, seed), kept in ``old_heldout.jsonl`` as this run's
    ``--eval-data``, so old and new drafters are scored on the same text, which neither trained on.
    New prompts whose templated ids equal a held-out prompt's are dropped. Returns the kept prompts."""
    import gzip

    from mlx_lm.utils import load_tokenizer

    from mlx_specdec_plugin.train.trainer import _chat, build_sequences, split_heldout

    records = [json.loads(l) for t in (0, 1) for l in gzip.open(folder / f"generated_t{t}.jsonl.gz", "rt")
               if l.strip()]
    owner = []  # window -> record
    for i, rec in enumerate(records):
        owner += [i] * len(build_sequences([rec], None, SEQ_LEN))
    _, held = split_heldout(list(range(len(owner))), EVAL_FRACTION, 0)
    held_recs = sorted({owner[w] for w in held})
    (WORK / "old_heldout.jsonl").write_text("".join(json.dumps(records[i]) + "\n" for i in held_recs))
    keep = set(range(len(records))) - set(held_recs)
    (WORK / "old_train.jsonl").write_text("".join(json.dumps(records[i]) + "\n" for i in sorted(keep)))
    tok = load_tokenizer(WORK / "model")
    held_prompts = {tuple(records[i]["prompt_ids"]) for i in held_recs}
    kept = [l for l in prompt_lines
            if tuple(_chat(tok, [{"role": "user", "content": json.loads(l)["prompt"]}], True)) not in held_prompts]
    stamp(f"old answers: {len(keep)} train, {len(held_recs)} held out ({len(held)} windows); "
          f"{len(prompt_lines) - len(kept)} new prompts dropped as held-out duplicates")
    return kept


def ablate(a) -> None:
    """Every ablation on the same data and step budget, ``--parallel`` at a time on the GPU."""
    names = list(ABLATIONS)
    results = {}
    for i in range(0, len(names), a.parallel):
        group = names[i : i + a.parallel]
        stamp(f"ablations {group} ({a.steps} steps each)")
        procs = {}
        for n in group:
            strategy, over, data = ABLATIONS[n]
            out = WORK / "ablations" / n
            procs[n] = run(train_cmd(strategy, over, data_files(data), out,
                                     ["--steps", str(a.steps), "--eval-blocks", str(a.eval_blocks), "--no-resume"]),
                           WORK / "ablations" / f"{n}.log")
        for n, p in procs.items():
            p.wait()
            ev = WORK / "ablations" / n / "eval.json"
            state = WORK / "ablations" / n / "checkpoint" / "trainer_state.json"
            results[n] = {"eval": json.loads(ev.read_text()) if ev.is_file() else None, "rc": p.returncode,
                          "log_tail": (WORK / "ablations" / f"{n}.log").read_text()[-600:]}
            if state.is_file():
                st = json.loads(state.read_text())
                results[n]["final_loss"] = st["log"][-1] if st["log"] else None
                results[n]["elapsed_s"] = st["log"][-1]["elapsed_s"] if st["log"] else None
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "ablations.json").write_text(json.dumps({"steps": a.steps, "base": BASE, "results": results}, indent=1))
    stamp("ablations written")


def tau3(ev: dict, key: str) -> float:
    """tau of the first 3 proposals (what k=3 can reach), from the conditional acceptance by position."""
    acc = ev.get(f"accept_{key}_by_position") or []
    tau, reach = 1.0, 1.0
    for x in acc[:3]:
        reach *= x
        tau += reach
    return tau


def chosen_recipe() -> dict:
    """BASE plus every knob whose ablation beat the base run at T=0 and T=1 (held-out tau)."""
    ab = json.loads((OUT / "ablations.json").read_text())["results"]
    base = ab["base"]["eval"]
    recipe, why = dict(BASE), {}
    for n in RECIPE_KNOBS:
        ev = (ab.get(n) or {}).get("eval")
        if not ev:
            continue
        better = ev["tau_t0"] > base["tau_t0"] * 1.01 and ev["tau_t1"] > base["tau_t1"] * 1.01
        why[n] = {"tau_t0": ev["tau_t0"], "tau_t1": ev["tau_t1"], "taken": better}
        if better:
            recipe.update(ABLATIONS[n][1])
    return {"recipe": recipe, "base": {"tau_t0": base["tau_t0"], "tau_t1": base["tau_t1"]}, "knobs": why}


def final(a) -> None:
    """DSpark and DFlash with the chosen recipe, side by side, one chunk per call."""
    pick = chosen_recipe() if (OUT / "ablations.json").is_file() else {"recipe": dict(BASE), "knobs": {}}
    for kv in a.set or []:  # a recipe chosen by hand (say why in docs/training.md)
        k, v = kv.split("=", 1)
        pick["recipe"]["--" + k.lstrip("-")] = v
        pick.setdefault("set_by_hand", []).append(kv)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "recipe.json").write_text(json.dumps(pick, indent=1))
    stamp(f"recipe {pick['recipe']}")
    over = {k: v for k, v in pick["recipe"].items() if BASE.get(k) != v}
    procs = {}
    for kind in PROFILE["kinds"]:
        extra = ["--steps", "100000", "--time-budget", str(a.budget), "--chunk-seconds", str(a.chunk),
                 "--eval-blocks", "4096", "--quantize", "4", "--pack-to", WORK / "state" / kind]
        if (WORK / "old_heldout.jsonl").is_file():
            extra += ["--eval-data", WORK / "old_heldout.jsonl", "--eval-fraction", "0"]
        procs[kind] = run(train_cmd(kind, over if kind == "dspark" else
                                    {k: v for k, v in over.items() if k not in ("--markov-rank", "--ce-weight", "--tv-weight")},
                                    data_files("all"), WORK / "final" / kind, extra),
                          WORK / "final" / f"{kind}-{int(time.time())}.log")
    rcs = {k: p.wait() for k, p in procs.items()}
    stamp(f"exit codes {rcs} (75: a chunk, run again)")
    if all(rc == 0 for rc in rcs.values()):
        ship()


def ship() -> None:
    """The 4-bit and bf16 drafters, evals, configs, loss logs and the answers, as <= 15 MB pieces."""
    import mlx.core as mx
    from mlx_lm import load

    from mlx_specdec_plugin.drafters import load_drafter
    from mlx_specdec_plugin.train.trainer import write_drafter

    model, _ = load(str(WORK / "model"))
    ship_dir = WORK / "ship"
    shutil.rmtree(ship_dir, ignore_errors=True)
    ship_dir.mkdir(parents=True)
    for kind in PROFILE["kinds"]:
        src = WORK / "final" / kind
        if (WORK / "final" / f"{kind}-4bit").is_dir():
            if PROFILE["bf16_copy"]:
                write_drafter(load_drafter(src, model, unpack=False), ship_dir / f"{kind}-bf16", dtype=mx.bfloat16)
            shutil.copytree(WORK / "final" / f"{kind}-4bit", ship_dir / f"{kind}-4bit")
        else:  # the calls ran out first: the last saved step, quantized here later (say so)
            write_drafter(load_drafter(src / "checkpoint" / "drafter", model, unpack=False),
                          ship_dir / f"{kind}-bf16-unfinished", dtype=mx.bfloat16)
        for f in ("eval.json", "train_config.json"):
            if (src / f).is_file():
                shutil.copy(src / f, ship_dir / f"{kind}-{f}")
        shutil.copy(src / "checkpoint" / "trainer_state.json", ship_dir / f"{kind}-trainer_state.json")
    for f in ("recipe.json", "ablations.json", "data.json"):
        if (OUT / f).is_file():
            shutil.copy(OUT / f, ship_dir / f)
    tar = WORK / "ship.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(ship_dir, arcname="ship")
        for t_ in (0, 1):
            t.add(WORK / f"gen_t{t_}" / "generated.jsonl", arcname=f"ship/generated_t{t_}.jsonl")
        if (WORK / "old_heldout.jsonl").is_file():
            t.add(WORK / "old_heldout.jsonl", arcname="ship/old_heldout.jsonl")
    blob = tar.read_bytes()
    for i in range(0, len(blob), 15_000_000):
        (OUT / f"ship.tar.gz.part{i // 15_000_000:02d}").write_bytes(blob[i : i + 15_000_000])
    stamp(f"shipped {len(blob)} bytes in {(len(blob) + 14_999_999) // 15_000_000} piece(s)")


def state(a) -> None:
    """Bring the packed training state back: manifest + up to 7 pieces from ``--first``."""
    for kind in PROFILE["kinds"]:
        src = WORK / "state" / kind
        if not (src / "checkpoint.json").is_file():
            continue
        manifest = json.loads((src / "checkpoint.json").read_text())
        dest = OUT / f"state-{kind}"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "checkpoint.json", dest / "checkpoint.json")
        for piece in manifest["pieces"][a.first : a.first + a.count]:
            shutil.copy(src / piece["name"], dest / piece["name"])
        stamp(f"{kind}: pieces {a.first}..{min(len(manifest['pieces']), a.first + a.count) - 1} "
              f"of {len(manifest['pieces'])}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="phase", required=True)
    s = sub.add_parser("prepare")
    s.add_argument("--pieces", default=str(Path.home() / "stage" / "model"))
    s.add_argument("--prompts", type=int, default=16000)
    s.add_argument("--gen-batch", type=int, default=512)
    s.add_argument("--gen-seconds", type=float, default=150)
    s.add_argument("--max-new", type=int, default=256, help="response length cap")
    s.add_argument("--seed", type=int, default=0, help="prompt generator seed")
    s.add_argument("--old", default=None, help="an earlier run's results folder: its answers join the data")
    s = sub.add_parser("ablate")
    s.add_argument("--steps", type=int, default=500)
    s.add_argument("--parallel", type=int, default=5)
    s.add_argument("--eval-blocks", type=int, default=2048)
    s = sub.add_parser("final")
    s.add_argument("--budget", type=float, required=True, help="seconds of training per drafter, all chunks")
    s.add_argument("--chunk", type=float, required=True, help="seconds of training in this call")
    s.add_argument("--set", action="append", metavar="FLAG=VALUE", help="recipe by hand, e.g. markov-rank=256")
    sub.add_parser("ship")
    s = sub.add_parser("state")
    s.add_argument("--first", type=int, default=0)
    s.add_argument("--count", type=int, default=7)
    a = p.parse_args()
    {"prepare": prepare, "ablate": ablate, "final": final, "ship": lambda _: ship(), "state": state}[a.phase](a)


if __name__ == "__main__":
    main()
