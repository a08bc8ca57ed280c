#!/usr/bin/env bash
# Device side, after the calls `bash docs/scripts/h200_stage.sh qwen-pair` prints: the tree bench on
# the H200 with Qwen2.5-Coder-1.5B-Instruct (target) and -0.5B-Instruct (draft), both bf16.
#   bash docs/scripts/h200_trees.sh convert      # join the pieces, GGUF -> bf16 (once per warm machine)
#   bash docs/scripts/h200_trees.sh bench        # plain / mlx-lm / ours chain, then chain vs trees
# Results go to $OUT (the device tool's folder): bench_t0.json, bench_t1.json, trees.json.
set -euo pipefail
HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
. $HOME/mlxenv.sh
W=$HOME/trees; mkdir -p "$W"
OUT=${OUT:-$W/out}; mkdir -p "$OUT"
case ${1:-bench} in
  convert)
    if [ ! -f "$W/q15/config.json" ]; then
      cat $HOME/stage/model/gguf.part* > "$W/pair.tar"
      tar -xf "$W/pair.tar" -C "$W" && rm "$W/pair.tar"
      python3 $HOME/stage/gguf2hf.py "$W/qwen2.5-coder-0.5b-instruct-q4km.gguf" "$W/q05" --dtype bf16
      python3 $HOME/stage/gguf2hf.py "$W/qwen2.5-coder-1.5b-instruct-q4km.gguf" "$W/q15" --dtype bf16
      rm -f "$W"/*.gguf
    fi
    ls -la "$W/q05" "$W/q15" ;;
  bench)
    [ -d /tmp/eps/mlx_specdec_plugin-0.1.0.dist-info ] || python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/eps .
    export PYTHONPATH=/tmp/eps:$PWD:${PYTHONPATH:-}
    for T in ${TEMPS:-0 1}; do
      python3 -m mlx_specdec_plugin bench --model "$W/q15" --draft-model "$W/q05" --num-draft-tokens ${KS:-3 7} \
        --prompts code --num-prompts ${PROMPTS:-3} --max-tokens ${TOKENS:-128} --temp "$T" --no-progress \
        --json "$OUT/bench_t$T.json" 2>&1 | grep -v "CPU BLAS" | tail -25
    done
    python3 docs/scripts/draft_tree_vs_chain.py --target "$W/q15" --draft "$W/q05" --widths ${WIDTHS:-4,8,16} \
      --temps ${TREE_TEMPS:-0.0,1.0} --prompts ${PROMPTS:-3} --max-tokens ${TOKENS:-128} ${TREE_ARGS:-} \
      --json "$OUT/trees.json" 2>&1 | tail -40 ;;
  *) echo "usage: h200_trees.sh convert|bench" >&2; exit 2 ;;
esac
