#!/usr/bin/env bash
# Train the SmolLM2-135M-Instruct DSpark and DFlash drafters with `mlx-specdec train` (issue 8): the
# run behind docs/training.md and the drafter shipped in mlx_specdec_plugin/assets/. Made for the lent
# H200 (mlx-cuda, staged by ../shared/gpu/); runs unchanged wherever MLX runs (slowly on a CPU).
#
#   bash docs/scripts/train_smollm2.sh            # from the project root; knobs below, as env vars
#
# MODEL      mlx-lm folder of the target (default: $WORK/smollm2-135m-instruct, made from $GGUF)
# GGUF       SmolLM2-135M-Instruct.Q4_1.gguf (what `mlx-specdec fetch smollm2` downloads)
# WORK       working folder (default ./smollm2-train); PYTHON (python3)
# N_PROMPTS  prompts from tools/make_train_prompts.py (12000): half answered greedily, half at T=1
# MAX_NEW    response cap (256)   GEN_BATCH  prompts answered at once (192)   GEN_TIMEOUT seconds (150; 0 = reuse $WORK/gen_t*)
# BUDGET     seconds of training per drafter at most (200); one drafter after the other
# TRAIN_ARGS extra/overriding `mlx-specdec train` flags for both drafters
# PACK_OUT   if set: bf16 + 4-bit drafters, evals, logs (tar, 15 MB pieces) and the responses go there
# The defaults are the run in docs/training.md.
set -euo pipefail
PY=${PYTHON:-python3}
WORK=${WORK:-$PWD/smollm2-train}
N_PROMPTS=${N_PROMPTS:-12000}; MAX_NEW=${MAX_NEW:-256}; GEN_BATCH=${GEN_BATCH:-192}
GEN_TIMEOUT=${GEN_TIMEOUT:-150}; BUDGET=${BUDGET:-200}
mkdir -p "$WORK"
T0=$(date +%s); stamp() { echo "[train_smollm2 +$(( $(date +%s) - T0 ))s] $*"; }

if [ -z "${MODEL:-}" ]; then
  MODEL=$WORK/smollm2-135m-instruct
  if [ ! -f "$MODEL/mlx_specdec_fetch.json" ]; then
    stamp "converting $GGUF -> $MODEL (float32)"
    $PY -c "import sys; from pathlib import Path; from mlx_specdec_plugin.fetch import convert_gguf; \
convert_gguf(Path(sys.argv[1]), Path(sys.argv[2]), 'float32', manifest={'name': 'smollm2'})" "$GGUF" "$MODEL"
  fi
fi

stamp "prompts"
$PY tools/make_train_prompts.py --out "$WORK/prompts.jsonl" --n "$N_PROMPTS"
half=$(( N_PROMPTS / 2 ))
head -n "$half" "$WORK/prompts.jsonl" > "$WORK/prompts_t0.jsonl"
tail -n +"$(( half + 1 ))" "$WORK/prompts.jsonl" > "$WORK/prompts_t1.jsonl"

stamp "self-distillation data: the target answers (greedy and T=1, side by side, ${GEN_TIMEOUT}s cap)"
for t in $( [ "$GEN_TIMEOUT" -gt 0 ] && echo 0 1 ); do
  timeout "$GEN_TIMEOUT" $PY -m mlx_specdec_plugin train --target "$MODEL" --generate --generate-only \
    --gen-temp "$t" --gen-batch "$GEN_BATCH" --max-new-tokens "$MAX_NEW" --data "$WORK/prompts_t$t.jsonl" \
    --out "$WORK/gen_t$t" --memory-budget 30 --no-progress > "$WORK/gen_t$t.log" 2>&1 &
done
wait || true
for t in 0 1; do  # a run stopped by the cap may leave a torn last line
  $PY -c "import json,sys; p=sys.argv[1]; ok=[l for l in open(p) if l.strip()]; good=[]
for l in ok:
    try: json.loads(l); good.append(l)
    except ValueError: pass
open(p,'w').writelines(good); print(p, len(good), 'responses', sum(len(json.loads(l)['response_ids']) for l in good), 'tokens')" \
    "$WORK/gen_t$t/generated.jsonl"
done

stamp "training DSpark and DFlash (${BUDGET}s each at most)"
COMMON=(--target "$MODEL" --data "$WORK/gen_t0/generated.jsonl" "$WORK/gen_t1/generated.jsonl"
        --seq-len 512 --batch-size 16 --num-anchors 64 --block-size 7 --num-draft-layers 2 --lr 1e-3
        --steps 2500 --time-budget "$BUDGET" --save-every 250 --eval-fraction 0.03 --eval-blocks 4096
        --quantize 4 ${TRAIN_ARGS:-})
# one after the other: two MLX processes side by side ran the H200 out of memory (each caches buffers)
for kind in dspark dflash; do
  $PY -m mlx_specdec_plugin train "${COMMON[@]}" --strategy $kind --out "$WORK/$kind" > "$WORK/$kind.log" 2>&1
  stamp "$kind: $(grep -o 'time budget.*steps' "$WORK/$kind.log" || true)"
done
stamp "done"

if [ -n "${PACK_OUT:-}" ]; then  # the device returns at most 8 files of 16 MiB, 64 MiB in all
  stamp "packing into $PACK_OUT"
  rm -rf "$WORK/ship"; mkdir -p "$WORK/ship"
  $PY - "$MODEL" "$WORK" <<'PY'
import shutil, sys
from pathlib import Path
import mlx.core as mx
from mlx_lm import load
from mlx_specdec_plugin.drafters import load_drafter
from mlx_specdec_plugin.train.trainer import write_drafter
model, _ = load(sys.argv[1]); work = Path(sys.argv[2]); ship = work / "ship"
for kind in ("dspark", "dflash"):
    src = work / kind
    write_drafter(load_drafter(src, model), ship / f"{kind}-bf16", dtype=mx.bfloat16)
    shutil.copytree(work / f"{kind}-4bit", ship / f"{kind}-4bit")
    for f in ("eval.json", "train_config.json"):
        shutil.copy(src / f, ship / f"{kind}-{f}")
    shutil.copy(src / "checkpoint" / "trainer_state.json", ship / f"{kind}-trainer_state.json")
    shutil.copy(work / f"{kind}.log", ship / f"{kind}.log")
for t in (0, 1):
    shutil.copy(work / f"gen_t{t}.log", ship / f"gen_t{t}.log")
PY
  tar -cf "$WORK/drafters.tar" -C "$WORK" ship
  mkdir -p "$PACK_OUT"; split -b 15000000 -d "$WORK/drafters.tar" "$PACK_OUT/drafters.tar.part"
  a=$(stat -c %s "$WORK/drafters.tar")
  tar -czf "$WORK/generated.tar.gz" -C "$WORK" gen_t0/generated.jsonl gen_t1/generated.jsonl
  b=$(stat -c %s "$WORK/generated.tar.gz"); echo "sizes: drafters $a, generated $b"
  if [ $(( a + b )) -lt 62000000 ]; then split -b 15000000 -d "$WORK/generated.tar.gz" "$PACK_OUT/generated.tar.gz.part"; fi
  ls -la "$PACK_OUT"
fi
