"""A bounded load test for ``mlx-specdec server``: N concurrent clients x M requests on loopback.

    python -m tools.server_load                       # tiny model, 8 clients x 20 requests
    python -m tools.server_load --model PATH --draft-strategy lookup --max-tokens 64
    python -m tools.server_load --url http://127.0.0.1:8080 --clients 4 --requests 10

Without ``--url`` it starts the server itself (``--port 0``, 127.0.0.1 only) on ``--model`` or a
tiny random model, and stops it at the end. Half the requests stream. It prints p50/p95 latency,
aggregate completion tokens/s, the speculative mean accepted length, and the server's resident
memory after a warm-up and at the end; the exit status is 1 on any failed request or if memory
grew by more than ``--rss-bound-mb``. Only the standard library is used on the client side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple
from urllib.parse import urlparse

PROMPTS = [
    "the cat sat on the mat. the cat sat on the mat. the cat sat on the",
    "def add(a, b):\n    return a + b\n\ndef add(a, b):\n",
    "one two three four five one two three four five one two",
    "Write a haiku about the sea.",
    "abcabcabcabcabcabc",
    "Hello! How are you today?",
]


class ServerProcess:
    """``mlx-specdec server`` in a subprocess on 127.0.0.1 and a free port; a context manager that
    always kills it. ``url``, ``port``, ``pid``; ``log()`` returns what the server wrote to stderr."""

    def __init__(self, model: str, *args: str, startup_timeout: float = 180.0, env: Optional[dict] = None):
        self._dir = tempfile.TemporaryDirectory(prefix="mlx-specdec-server-")
        self._log_path = Path(self._dir.name) / "server.log"
        self._log = open(self._log_path, "wb")
        cmd = [sys.executable, "-m", "mlx_specdec_plugin.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", "0", "--log-level", "WARNING", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})})
        self.port: Optional[int] = None
        found = threading.Event()

        def read_stdout():
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                if self.port is None and "http://127.0.0.1:" in line:
                    self.port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
                    found.set()
            found.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        try:
            if not found.wait(startup_timeout) or self.port is None:
                raise RuntimeError(f"the server did not start:\n{self.log()}")
            deadline = time.monotonic() + 30
            while True:
                try:
                    status, _ = request_json(self.url, "GET", "/health", timeout=5)
                    if status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the server is not healthy:\n{self.log()}")
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        self._log.flush()
        return self._log_path.read_text(errors="replace")[-20000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        self._dir.cleanup()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rss_bytes(pid: int) -> Optional[int]:
    """Resident memory of ``pid`` (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU time of ``pid``, all its threads (Linux ``/proc``; ``None`` elsewhere). On a
    shared machine the server's CPU seconds per token vary less than wall time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _connection(url: str, timeout: float) -> http.client.HTTPConnection:
    u = urlparse(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the load test only talks to loopback addresses")
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def request_json(url: str, method: str, path: str, body=None, timeout: float = 60.0) -> Tuple[int, object]:
    conn = _connection(url, timeout)
    try:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


def stream_events(url: str, path: str, body: dict, timeout: float = 120.0) -> Tuple[int, List[object]]:
    """POST a streaming request; ``(status, [decoded data events..., "[DONE]"])``."""
    conn = _connection(url, timeout)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return resp.status, [json.loads(resp.read())]
        events = []
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
            if data == "[DONE]":
                break
        return resp.status, events
    finally:
        conn.close()


def one_request(url: str, i: int, max_tokens: int, stream: bool) -> dict:
    prompt = PROMPTS[i % len(PROMPTS)]
    chat = i % 3 != 2
    path = "/v1/chat/completions" if chat else "/v1/completions"
    body = {"model": "default_model", "max_tokens": max_tokens, "stream": stream}
    if stream:  # usage on a stream (mlx_lm.server sends it only when asked)
        body["stream_options"] = {"include_usage": True}
    body.update({"messages": [{"role": "user", "content": prompt}]} if chat else {"prompt": prompt})
    if i % 4 == 3:
        body.update(temperature=0.8, top_p=0.95, seed=i)
    t0 = time.perf_counter()
    try:
        if stream:
            status, events = stream_events(url, path, body)
            final = [e for e in events if isinstance(e, dict) and e.get("usage")]
            ok = status == 200 and events and events[-1] == "[DONE]" and bool(final)
            result = final[-1] if final else (events[0] if events else None)
        else:
            status, result = request_json(url, "POST", path, body)
            ok = status == 200 and isinstance(result, dict) and "usage" in result
    except Exception as e:  # a failed request is data, not a crash of the load test
        return {"ok": False, "error": f"{type(e).__name__}: {e}", "latency": time.perf_counter() - t0}
    latency = time.perf_counter() - t0
    if not ok:
        return {"ok": False, "error": f"status {status}: {str(result)[:200]}", "latency": latency}
    return {
        "ok": True,
        "latency": latency,
        "tokens": result["usage"]["completion_tokens"],
        "tau": result.get("speculative", {}).get("mean_accepted_length", 0.0),
    }


def run_load(url: str, clients: int = 8, requests: int = 20, max_tokens: int = 32, pid: Optional[int] = None,
             warmup: int = 4) -> dict:
    """Run ``clients`` threads x ``requests`` requests each; returns the measurements."""
    for i in range(warmup):
        one_request(url, i, max_tokens, stream=bool(i % 2))
    rss_start = rss_bytes(pid) if pid else None
    cpu_start = cpu_seconds(pid) if pid else None
    _, health_start = request_json(url, "GET", "/health")
    results: List[dict] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        for r in range(requests):
            i = c * requests + r
            out = one_request(url, i, max_tokens, stream=bool((c + r) % 2))
            with lock:
                results.append(out)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rss_end = rss_bytes(pid) if pid else None
    cpu_end = cpu_seconds(pid) if pid else None
    _, health_end = request_json(url, "GET", "/health")
    ok = [r for r in results if r["ok"]]
    latencies = sorted(r["latency"] for r in results)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(p * (len(latencies) - 1))))] if latencies else 0.0

    tokens = sum(r["tokens"] for r in ok)
    return {
        "clients": clients,
        "requests": len(results),
        "failed": len(results) - len(ok),
        "errors": [r["error"] for r in results if not r["ok"]][:5],
        "wall_s": wall,
        "latency_p50_s": pct(0.50),
        "latency_p95_s": pct(0.95),
        "latency_max_s": latencies[-1] if latencies else 0.0,
        "completion_tokens": tokens,
        "tokens_per_s": tokens / wall if wall > 0 else 0.0,
        "server_cpu_s": (cpu_end - cpu_start) if cpu_start is not None and cpu_end is not None else None,
        "mean_accepted_length": statistics.fmean(r["tau"] for r in ok) if ok else 0.0,
        "rss_start_bytes": rss_start,
        "rss_end_bytes": rss_end,
        "rss_growth_bytes": (rss_end - rss_start) if rss_start is not None and rss_end is not None else None,
        "mlx_active_memory_start": health_start.get("mlx_active_memory") if isinstance(health_start, dict) else None,
        "mlx_active_memory_end": health_end.get("mlx_active_memory") if isinstance(health_end, dict) else None,
    }


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.server_load", description=__doc__.split("\n")[0])
    p.add_argument("--url", default=None, help="a running server on loopback (default: start one)")
    p.add_argument("--model", default=None, help="model for the started server (default: a tiny random one)")
    p.add_argument("--draft-strategy", default="lookup")
    p.add_argument("--draft-model", default=None)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=20, help="requests per client")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--rss-bound-mb", type=float, default=64.0, help="allowed server RSS growth after warm-up")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    a = p.parse_args(argv)

    server = None
    tmp = None
    try:
        if a.url is None:
            model = a.model
            if model is None:
                from mlx_specdec_plugin.testing.tiny import save_tiny_model

                tmp = tempfile.TemporaryDirectory(prefix="mlx-specdec-load-")
                model = str(save_tiny_model(Path(tmp.name) / "tiny", "llama", seed=1, sharpness=6))
            extra = ["--draft-strategy", a.draft_strategy]
            if a.draft_model:
                extra += ["--draft-model", a.draft_model]
            server = ServerProcess(model, *extra)
            url, pid = server.url, server.pid
        else:
            url, pid = a.url, None
        out = run_load(url, a.clients, a.requests, a.max_tokens, pid)
    finally:
        if server is not None:
            server.close()
        if tmp is not None:
            tmp.cleanup()

    growth = out["rss_growth_bytes"]
    bad_memory = growth is not None and growth > a.rss_bound_mb * 2**20
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        mb = lambda b: "n/a" if b is None else f"{b / 2**20:.1f} MiB"  # noqa: E731
        print(f"{out['clients']} clients x {a.requests} requests ({out['requests']} total, max_tokens {a.max_tokens}) "
              f"in {out['wall_s']:.2f}s: {out['failed']} failed")
        print(f"latency p50 {out['latency_p50_s'] * 1000:.0f} ms, p95 {out['latency_p95_s'] * 1000:.0f} ms, "
              f"max {out['latency_max_s'] * 1000:.0f} ms")
        print(f"aggregate {out['tokens_per_s']:.1f} completion tokens/s ({out['completion_tokens']} tokens), "
              f"mean accepted length {out['mean_accepted_length']:.2f}")
        print(f"server RSS after warm-up {mb(out['rss_start_bytes'])}, at the end {mb(out['rss_end_bytes'])}, "
              f"growth {mb(growth)} (bound {a.rss_bound_mb:.0f} MiB); MLX active memory "
              f"{mb(out['mlx_active_memory_start'])} -> {mb(out['mlx_active_memory_end'])}")
        for e in out["errors"]:
            print(f"  error: {e}")
    return 1 if out["failed"] or bad_memory else 0


if __name__ == "__main__":
    sys.exit(main())
