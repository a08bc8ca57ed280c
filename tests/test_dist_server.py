"""Spec: ``mlx-specdec server`` on a target sharded over 2 ranks (mlx.distributed ring, loopback).

Rank 0 serves HTTP and broadcasts each request; rank 1 runs the same generation in lockstep
(``mlx_specdec_plugin.server.lockstep``). Every process has a timeout and is killed in teardown, so a
hang fails the test instead of stalling CI. Marked ``distributed`` (``pytest -m distributed``).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlx.core as mx
import pytest

from tools.server_load import ServerProcess, request_json, stream_events
from mlx_specdec_plugin.testing.tiny import EOS_ID, save_tiny_model
from test_distributed import HERE, PY, free_ports, spawn_ranks

pytestmark = [pytest.mark.distributed,
              pytest.mark.skipif(not mx.distributed.is_available(), reason="mlx.distributed unavailable")]
BIN = Path(PY).parent
TEXT = "the cat sat on the mat. the cat sat on the"
CHAT = [{"role": "user", "content": "one two three one two three one two"}]
NO_EOS = {str(EOS_ID): -100}
STARTUP = 240


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist-server")
    target = save_tiny_model(root / "t", "llama", seed=1, sharpness=6, num_hidden_layers=4)
    draft = save_tiny_model(root / "d", "llama", seed=2, sharpness=6, hidden_size=16)
    return str(target), str(draft)


def pids_of_rank(port: int, rank: int) -> list:
    """Processes of this test's server (its ``--port``) with ``MLX_RANK=rank`` (as mlx.launch sets it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mlx_specdec_plugin.server" in cmd and str(port).encode() in cmd and f"MLX_RANK={rank}".encode() in env:
            found.append(int(entry.name))
    return found


def wait_until_serving(proc, port, deadline):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if request_json(f"http://127.0.0.1:{port}", "GET", "/health", timeout=5)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def completion(url, **body):
    status, out = request_json(url, "POST", "/v1/completions", body=body, timeout=120)
    assert status == 200, out
    return out["choices"][0]["text"]


def chat_stream(url, **body):
    status, events = stream_events(url, "/v1/chat/completions", {**body, "stream": True}, timeout=120)
    assert status == 200, events
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict)
                   and e.get("choices"))


def requests_and_answers(url):
    """The same requests, asked of any server: greedy text for each strategy, a stop string, a
    sampled request (only its being answered is compared), a chat stream."""
    out = {}
    for strategy in ("draft-model", "lookup", "none"):
        out[strategy] = completion(url, prompt=TEXT, max_tokens=24, draft_strategy=strategy, logit_bias=NO_EOS)
    out["stop"] = completion(url, prompt=TEXT, max_tokens=24, stop=[out["lookup"][5:8]], logit_bias=NO_EOS)
    out["sampled"] = len(completion(url, prompt=TEXT, max_tokens=8, temperature=1.0, seed=3)) > 0
    out["chat"] = chat_stream(url, messages=CHAT, max_tokens=16, logit_bias=NO_EOS)
    return out


def test_server_under_mlx_launch_answers_as_a_single_process_server(folders, tmp_path):
    """``mlx.launch -n 2 --backend ring -- ... server``: the answers of rank 0's HTTP server equal a
    single-process server's; a client that goes away mid-stream is cancelled on both ranks (the next
    answer is unchanged); SIGTERM to rank 0 stops both ranks cleanly (exit 0 everywhere)."""
    target, draft = folders
    with ServerProcess(target, "--draft-model", draft) as single:
        expected = requests_and_answers(single.url)
    ring, port = free_ports(2)
    cmd = [str(BIN / "mlx.launch"), "-n", "2", "--backend", "ring", "--starting-port", str(ring), "--",
           PY, "-m", "mlx_specdec_plugin.server", "--model", target, "--draft-model", draft, "--port", str(port),
           "--log-level", "WARNING"]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "MLX_SPECDEC_BLAS": "bundled"}
    launcher = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_serving(launcher, port, time.monotonic() + STARTUP), launcher.communicate(timeout=30)
        assert requests_and_answers(url) == expected
        # a streaming client that goes away after 3 events: both ranks stop that generation together
        status, body = request_json(url, "GET", "/health", timeout=10)
        import socket

        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        data = json.dumps({"prompt": TEXT, "max_tokens": 3000, "stream": True, "logit_bias": NO_EOS}).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
        got = b""
        while got.count(b"data: ") < 3:
            chunk = sock.recv(4096)
            assert chunk, got
            got += chunk
        sock.close()
        deadline = time.monotonic() + 60
        while request_json(url, "GET", "/health", timeout=10)[1]["cancelled"] <= body["cancelled"]:
            assert time.monotonic() < deadline, "the cancelled stream was not dropped"
            time.sleep(0.1)
        assert completion(url, prompt=TEXT, max_tokens=24, draft_strategy="draft-model",
                          logit_bias=NO_EOS) == expected["draft-model"]
        leaders, followers = pids_of_rank(port, 0), pids_of_rank(port, 1)
        assert len(leaders) == 1 and len(followers) == 1, (leaders, followers)
        os.kill(leaders[0], signal.SIGTERM)
        out, err = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.communicate()
    assert launcher.returncode == 0, err[-3000:]
    assert "error" not in err and "Traceback" not in err and "exited with code" not in err, err[-3000:]
    assert out.count("[mlx-specdec] serving") == 1  # rank 0 alone serves and speaks


def test_a_follower_that_dies_mid_request_ends_the_server_with_one_line(folders, tmp_path):
    """Rank 1 is SIGKILLed during a long streaming request: the client's stream ends (an error event
    or a closed connection, never a hang) and rank 0 exits 3 with one line naming the lost peer."""
    target, draft = folders
    port = free_ports(1)[0]
    procs = spawn_ranks(tmp_path, [PY, "-m", "mlx_specdec_plugin.server", "--model", target, "--draft-model", draft,
                                   "--port", str(port), "--log-level", "WARNING"],
                        extra_env={"MLX_SPECDEC_DIST_TIMEOUT": "20"})
    url = f"http://127.0.0.1:{port}"
    try:
        for p in procs:  # stdout is a pipe: read it so that no rank blocks on it
            threading.Thread(target=p.stdout.read, daemon=True).start()
        assert wait_until_serving(procs[0], port, time.monotonic() + STARTUP), procs[0].stderr.read()[-3000:]
        result = {}

        def stream():
            try:
                result["events"] = stream_events(url, "/v1/completions", {"prompt": TEXT, "max_tokens": 100000,
                                                                         "stream": True, "logit_bias": NO_EOS},
                                                 timeout=60)
            except Exception as e:  # the connection closed under it (reset, incomplete read)
                result["error"] = e

        client = threading.Thread(target=stream, daemon=True)
        client.start()
        time.sleep(3.0)
        procs[1].kill()
        t0 = time.monotonic()
        err = procs[0].stderr.read()  # to its exit
        procs[0].wait(timeout=60)
        client.join(timeout=60)
        assert not client.is_alive(), "the client hung"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert time.monotonic() - t0 < 60
    # mlx's ring raises a lost peer (exit 3); were it to wait instead, the watchdog ends rank 0 (exit 75)
    assert procs[0].returncode in (3, 75), err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("[mlx-specdec] error")]
    assert len(lines) == 1 and "rank 0" in lines[0], err[-3000:]
    assert "process group failed" in lines[0] or "no progress" in lines[0], err[-3000:]
