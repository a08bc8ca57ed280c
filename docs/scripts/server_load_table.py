"""Side-by-side load table: ``mlx_lm.server`` against ``mlx-specdec server`` on SmolLM2-135M.

    python docs/scripts/server_load_table.py                  # 1, 2, 4, 8 clients; writes docs/bench/server_load/
    python docs/scripts/server_load_table.py --clients 1 4 --requests 2 --max-tokens 32   # a quick look

Three servers, one after the other, on 127.0.0.1, each measured with the repo's own load client
(:func:`tools.server_load.run_load`: the same prompts, half of them streamed, one in four
sampled at T=0.8, top-p 0.95):

- ``mlx_lm.server`` (mlx-lm's own; continuous batching through ``BatchGenerator``),
- ``mlx-specdec server --draft-strategy none`` (ours, no drafting: the batch for every request),
- ``mlx-specdec server --draft-model smollm2-dspark`` (ours with the shipped DSpark drafter: a request
  alone speculates, overlapping requests decode together).

Every server process imports ``mlx_specdec_plugin`` before ``mlx_lm``, so all three use the same CPU
BLAS (MKL by default; ``MLX_SPECDEC_BLAS`` chooses); the library serving ``cblas_sgemm`` in each
server is recorded, and so is each server's CPU time over a run (``/proc``): on a shared machine,
tokens per server CPU-second vary less than wall-clock rates. Writes one JSON per server and client
count plus ``table.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.server_load import ServerProcess, request_json, run_load  # noqa: E402

# mlx_lm.server behind our package import (the BLAS choice), with the BLAS it got printed first
MLX_LM_SERVER = (
    "import sys, mlx_specdec_plugin.blas as b; import mlx.core; "
    "print('blas:', b.serving_library(), flush=True); "
    "from mlx_lm.server import main; sys.argv = ['mlx_lm.server'] + sys.argv[1:]; main()"
)
OUR_BLAS = "import mlx_specdec_plugin.blas as b, mlx.core; print(b.serving_library())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlxLmServer:
    def __init__(self, model: str):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="mlx-lm-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, "-c", MLX_LM_SERVER, "--model", model, "--host", "127.0.0.1",
                                      "--port", str(self.port), "--log-level", "WARNING"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 300
        while True:
            try:
                if request_json(self.url, "GET", "/health", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("mlx_lm.server did not start:\n" + Path(self.log.name).read_text()[-4000:])
            time.sleep(0.5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def blas(self) -> str:
        for line in Path(self.log.name).read_text(errors="replace").splitlines():
            if line.startswith("blas:"):
                return line.split(":", 1)[1].strip()
        return "unknown"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)


def fetch(name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mlx_specdec_plugin", "fetch", name], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return out.stdout.strip().splitlines()[-1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--requests", type=int, default=4, help="requests per client")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--out", default=str(ROOT / "docs" / "bench" / "server_load"))
    a = p.parse_args()
    model = fetch("smollm2")
    os.environ["PYTHONPATH"] = str(ROOT)
    our_blas = subprocess.run([sys.executable, "-c", OUR_BLAS], capture_output=True, text=True).stdout.strip()
    servers = [  # (name, file name, start)
        ("mlx_lm.server", "mlx_lm_server", lambda: MlxLmServer(model)),
        ("mlx-specdec, no drafter", "mlx_specdec_none", lambda: ServerProcess(model, "--draft-strategy", "none")),
        ("mlx-specdec + smollm2-dspark", "mlx_specdec_dspark",
         lambda: ServerProcess(model, "--draft-model", "smollm2-dspark")),
    ]
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, slug, start in servers:
        server = start()
        try:
            blas = server.blas() if isinstance(server, MlxLmServer) else our_blas
            for clients in a.clients:
                r = run_load(server.url, clients, a.requests, a.max_tokens, server.pid, warmup=2)
                r.update(server=name, blas=blas, max_tokens=a.max_tokens, requests_per_client=a.requests,
                         model="SmolLM2-135M-Instruct", machine=f"{platform.machine()}, {os.cpu_count()} cores")
                (out_dir / f"{slug}-{clients}clients.json").write_text(json.dumps(r, indent=1) + "\n")
                rows.append(r)
                print(f"{name:30s} {clients} clients: {r['tokens_per_s']:7.1f} tok/s  p50 {r['latency_p50_s']:6.2f} s  "
                      f"p95 {r['latency_p95_s']:6.2f} s  failed {r['failed']}", flush=True)
        finally:
            server.close()
    lines = ["| server | clients | aggregate tok/s | p50 latency (s) | p95 latency (s) | tokens per server CPU-s "
             "| failed |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cpu = r["server_cpu_s"]
        per_cpu = f"{r['completion_tokens'] / cpu:.1f}" if cpu else "n/a"
        lines.append(f"| {r['server']} | {r['clients']} | {r['tokens_per_s']:.1f} | {r['latency_p50_s']:.2f} | "
                     f"{r['latency_p95_s']:.2f} | {per_cpu} | {r['failed']} |")
    lines.append("")
    lines.append(f"Load average (1 min) at the end: {os.getloadavg()[0]:.1f}. "
                 f"SmolLM2-135M-Instruct, {a.requests} requests per client, max_tokens {a.max_tokens}; "
                 f"BLAS: {rows[0]['blas'] if rows else '?'}; {platform.machine()}, {os.cpu_count()} cores.")
    (out_dir / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
