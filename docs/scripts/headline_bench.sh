#!/usr/bin/env bash
# The headline table of docs/benchmarks.md: plain mlx-lm, mlx-lm's own speculative loop and ours,
# side by side in one `mlx-specdec bench` run per row group, on this CPU with the fast BLAS that
# mlx_specdec_plugin.blas loads (the JSON's machine.blas says which).
#   QWEN=~/.cache/specdec-models bash docs/scripts/headline_bench.sh qwen     # Qwen2.5-Coder 0.5B -> 1.5B
#   bash docs/scripts/headline_bench.sh smollm2                                 # SmolLM2 + shipped drafters
# Folders: ../shared/models/README.md (fetch_models.sh, then gguf2hf.py --dtype f32).
set -euo pipefail
OUT=${OUT:-docs/bench/headline}; mkdir -p "$OUT"
PASSES=${PASSES:-3}; N=${N:-2}; TOK=${TOK:-48}
run() { local name=$1; shift; mlx-specdec bench "$@" --num-prompts "$N" --max-tokens "$TOK" --passes "$PASSES" \
          --json "$OUT/$name.json" --no-progress | tee "$OUT/$name.txt"; }
case ${1:?qwen or smollm2} in
  qwen)
    Q=${QWEN:-$HOME/.cache/specdec-models}
    for set in ${QWEN_SETS:-code chat}; do
      [ "$set" = chat ] && [ -n "${QWEN_CHAT_T1_ONLY:-}" ] || \
      run "qwen_${set}_t0" --model "$Q/qwen-1.5b" --draft-model "$Q/qwen-0.5b" --strategies draft-model \
          --acceptors greedy --num-draft-tokens 3 auto --prompts "$set" --temp 0
      run "qwen_${set}_t1" --model "$Q/qwen-1.5b" --draft-model "$Q/qwen-0.5b" --strategies draft-model \
          --acceptors rejection block --num-draft-tokens 3 auto --prompts "$set" --temp 1
    done ;;
  smollm2)
    N=${SMOL_N:-1}
    M=$(mlx-specdec fetch smollm2)
    for d in ${SMOL_DRAFTERS:-dspark dflash}; do for set in ${SMOL_SETS:-chat code}; do
      run "smollm2_${d}_${set}_t0" --model "$M" --draft-model "smollm2-$d" --strategies "$d" --acceptors greedy \
          --num-draft-tokens 3 auto --prompts "$set" --temp 0
      run "smollm2_${d}_${set}_t1" --model "$M" --draft-model "smollm2-$d" --strategies "$d" --acceptors rejection block \
          --num-draft-tokens 3 auto --prompts "$set" --temp 1
    done; done
    # auto with an always-rejected drafter (oracle:0 drafts the greedy continuation, every token corrupted)
    run "smollm2_rejected_t0" --model "$M" --strategies oracle:0 --acceptors greedy --num-draft-tokens 3 auto \
        --prompts chat code --temp 0 ;;
esac
