"""Spec: speculative decoding over a target sharded on 2 ranks (mlx.distributed ring backend, loopback).

Rank 0 drafts and decides, the other rank follows (``mlx_specdec_plugin.distributed``). Each test
starts two processes (``tests/dist_worker.py`` or the CLI under ``mlx.launch``) with a timeout, so
a hang fails the test instead of stalling CI. Marked ``distributed``: ``pytest -m distributed``.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import mlx_lm
import pytest
from mlx_lm.generate import generate_step

from exactness import CONFIGS, chi_square_pvalue, exact_joint
from mlx_specdec_plugin.testing.drafters import write_dflash, write_dspark
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_tiny_model, tiny_config

pytestmark = [pytest.mark.distributed,
              pytest.mark.skipif(not mx.distributed.is_available(), reason="mlx.distributed unavailable")]
HERE = Path(__file__).parent
PY = sys.executable
PROMPT = "the cat sat on the mat. the cat sat on the"
MAX_TOKENS = 24
TAPS = [0, 2]
TIMEOUT = 240


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def spawn_ranks(tmp_path, argv, extra_env=None):
    """Two ranks of ``argv`` on loopback (the ring backend's hostfile, as mlx.launch writes it)."""
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([[f"127.0.0.1:{p}"] for p in free_ports(2)]))
    procs = []
    for rank in range(2):
        env = {**os.environ, "MLX_RANK": str(rank), "MLX_HOSTFILE": str(hostfile), "MLX_SPECDEC_BLAS": "bundled",
               "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)]), **(extra_env or {})}
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, timeout=TIMEOUT):
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a rank did not finish in time (hang)")
        outs.append((p.returncode, out, err))
    return outs


def run_worker(tmp_path, mode, args):
    outs = finish(spawn_ranks(tmp_path, [PY, str(HERE / "dist_worker.py"), mode, json.dumps(args)]))
    for rc, out, err in outs:
        assert rc == 0, "\n".join(e[-2500:] for _, _, e in outs)
    return [json.loads(out.strip().splitlines()[-1]) for _, out, _ in outs]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    target = save_tiny_model(root / "t", "llama", seed=1, sharpness=6, num_hidden_layers=4)
    draft = save_tiny_model(root / "d", "llama", seed=2, sharpness=6, hidden_size=16)
    dspark = write_dspark(root / "ds", target, target_layer_ids=TAPS, seed=11)
    dflash = write_dflash(root / "df", target, target_layer_ids=TAPS, seed=12)
    model, tok = mlx_lm.load(str(target))
    ids = mx.array(tok.encode(PROMPT))
    ref = [t for t, _ in generate_step(ids, model, max_tokens=MAX_TOKENS)]
    return dict(target=str(target), draft=str(draft), dspark=str(dspark), dflash=str(dflash), ref=ref, root=root)


def test_two_ranks_greedy_equal_single_process_plain_decoding(folders, tmp_path):
    ranks = run_worker(tmp_path, "parity", dict(target=folders["target"], draft=folders["draft"],
                                                  dspark=folders["dspark"], dflash=folders["dflash"], prompt=PROMPT, max_tokens=MAX_TOKENS,
                                                  k=3, taps=TAPS))
    ref = folders["ref"]
    for r in ranks:
        assert r["sharded"] == 16  # q_proj is really split: 32 output rows / 2 ranks
        assert set(r["tokens"]) == {"draft-model", "draft-model-self", "lookup", "dspark", "dflash"}
        assert r["accepted"]["draft-model-self"] >= MAX_TOKENS // 2  # accepted drafts are committed too
        for strategy, tokens in r["tokens"].items():
            assert tokens == ref[: len(tokens)] and len(tokens) >= min(len(ref), MAX_TOKENS - 1), strategy
        # tensor parallel all-reduces the residual stream: the taps a DSpark/DFlash drafter reads are whole
        assert r["tap_diff"] < 1e-5  # relative to the largest feature
    assert ranks[0]["tokens"] == ranks[1]["tokens"]


def test_pipeline_stages_greedy_equal_single_process_plain_decoding(tmp_path):
    """A qwen2 of 5 layers in 2 pipeline stages (3 + 2 layers; mlx-lm's ``pipeline_load`` machinery):
    plain decoding, lookup and draft models give the single-process plain tokens on both ranks;
    a drafter that reads hidden states (DSpark, DFlash) is refused in one line on every rank."""
    target = save_tiny_model(tmp_path / "t", "qwen2", seed=1, sharpness=6, num_hidden_layers=5)
    names = sorted(mx.load(str(target / "model.safetensors")))  # pipeline loading reads the index
    (target / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: "model.safetensors"
                                                                                   for k in names}}))
    draft = save_tiny_model(tmp_path / "d", "qwen2", seed=2, sharpness=6, hidden_size=16)
    dspark = write_dspark(tmp_path / "ds", target, target_layer_ids=TAPS, seed=11)
    dflash = write_dflash(tmp_path / "df", target, target_layer_ids=TAPS, seed=12)
    model, tok = mlx_lm.load(str(target))
    ref = [t for t, _ in generate_step(mx.array(tok.encode(PROMPT)), model, max_tokens=MAX_TOKENS)]
    ranks = run_worker(tmp_path, "pipeline", dict(target=str(target), draft=str(draft), dspark=str(dspark),
                                                  dflash=str(dflash), prompt=PROMPT, max_tokens=MAX_TOKENS, k=3))
    assert [r["layers"] for r in ranks] == [[2, 5], [0, 2]]  # rank 0 runs the last layers
    for r in ranks:
        assert r["accepted"]["draft-model-self"] >= MAX_TOKENS // 2
        for strategy, tokens in r["tokens"].items():
            assert tokens == ref[: len(tokens)] and len(tokens) >= min(len(ref), MAX_TOKENS - 1), strategy
        for name, message in r["refused"].items():
            assert message is not None and "pipeline-sharded" in message, (name, message)
    assert ranks[0]["tokens"] == ranks[1]["tokens"] and ranks[0]["refused"] == ranks[1]["refused"]


def test_two_ranks_are_exact_at_temperature_1(tmp_path):
    """Rejection sampling, a draft model, a llama sharded on 2 ranks whose seeds differ: the joint of
    3 tokens over N=2,000 generations against the exact joint (216 cells). At the same N the planted
    wrong acceptor (accept every draft) must fail."""
    n = 2000
    cfg = tiny_config("llama", vocab_size=6, hidden_size=16, num_hidden_layers=1)
    whole = make_tiny_model(cfg, seed=1, sharpness=3)
    tok_dir = save_tiny_model(tmp_path / "tok", "llama", hidden_size=8, num_hidden_layers=1)
    prompt = [1, 2, 3]
    ranks = run_worker(tmp_path, "chi2", dict(n=n, prompt=prompt, tokenizer=str(tok_dir)))
    assert ranks[0]["right"] == ranks[1]["right"] and ranks[0]["wrong"] == ranks[1]["wrong"]
    joint = exact_joint(whole, prompt, 3, 6, *CONFIGS["T1"])
    assert chi_square_pvalue([tuple(s) for s in ranks[0]["right"]], joint) > 1e-3
    assert chi_square_pvalue([tuple(s) for s in ranks[0]["wrong"]], joint) < 1e-6


def test_cli_under_mlx_launch_prints_once_and_matches(folders, tmp_path):
    port = free_ports(1)[0]
    cmd = [str(Path(PY).parent / "mlx.launch"), "-n", "2", "--backend", "ring", "--starting-port", str(port),
           "--", str(Path(PY).parent / "mlx-specdec"), "generate", "--model", folders["target"],
           "--draft-model", folders["draft"], "--prompt", PROMPT, "--max-tokens", str(MAX_TOKENS),
           "--ignore-chat-template", "--num-draft-tokens", "3"]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "MLX_SPECDEC_BLAS": "bundled"}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count(f"Generation: {MAX_TOKENS} tokens") == 1, p.stdout  # rank 0 alone prints
    assert p.stderr.count("strategy: draft-model") == 1


def test_mismatched_model_files_are_one_line_on_every_rank(folders, tmp_path):
    other = save_tiny_model(tmp_path / "other", "llama", seed=3, sharpness=6, num_hidden_layers=4)
    script = ("import os,sys; from mlx_specdec_plugin.commands.cli import main; "
              "m=[sys.argv[1], sys.argv[2]][int(os.environ['MLX_RANK'])]; "
              "sys.exit(main(['generate','--model',m,'--prompt','hi','--max-tokens','4','--ignore-chat-template']))")
    outs = finish(spawn_ranks(tmp_path, [PY, "-c", script, folders["target"], str(other)]), timeout=120)
    for rc, out, err in outs:
        assert rc == 2, err[-2000:]
        lines = [l for l in err.splitlines() if "error" in l]
        assert len(lines) == 1 and "model files" in lines[0] and "differ across ranks" in lines[0], err[-2000:]
        assert "Traceback" not in err


def test_refusals_are_one_line_on_every_rank_before_generation(folders, tmp_path):
    """A draft model loaded sharded (it would run on rank 0 alone and wait on the other ranks), and
    ranks given different prompts: the same one-line error on every rank, no hang."""
    ranks = run_worker(tmp_path, "refusals", dict(target=folders["target"], draft=folders["draft"], prompt=PROMPT))
    for r in ranks:
        assert r["sharded-draft"].startswith("ValueError: the draft model is sharded"), r
        assert r["different-prompts"].startswith("DistributedError: prompts or generation settings differ "
                                                 "across ranks: rank 1"), r
    assert ranks[0]["sharded-draft"] == ranks[1]["sharded-draft"]


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_a_dead_or_frozen_rank_is_a_clear_error_not_a_hang(folders, tmp_path, how):
    """The CLI on 2 ranks; rank 1 is SIGKILLed (its sockets close: mlx raises a lost peer) or SIGSTOPped
    (its sockets stay open: mlx's ring would wait forever, the watchdog ends rank 0 after
    MLX_SPECDEC_DIST_TIMEOUT=5 s) mid-generation. Rank 0 ends with one error line, within a minute."""
    script = ("import sys; from mlx_specdec_plugin.commands.cli import main; sys.exit(main(['generate','--model',sys.argv[1],"
              "'--prompt',sys.argv[2],'--max-tokens','1000000','--ignore-chat-template','--draft-strategy','lookup']))")
    procs = spawn_ranks(tmp_path, [PY, "-c", script, folders["target"], PROMPT],
                        extra_env={"MLX_SPECDEC_DIST_TIMEOUT": "5"})
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and procs[0].poll() is None:
        if "strategy:" in procs[0].stderr.readline():
            break
    time.sleep(1.0)
    procs[1].send_signal(signal.SIGKILL if how == "killed" else signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        _, err = procs[0].communicate(timeout=60)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        pytest.fail("the surviving rank hung")
    finally:
        procs[1].kill()
        procs[1].communicate()
    assert time.monotonic() - t0 < 60
    lines = [l for l in err.splitlines() if l.startswith("[mlx-specdec] error")]
    assert len(lines) == 1 and "rank 0" in lines[0], err[-2000:]
    if how == "frozen":
        assert procs[0].returncode == 75 and "no progress from the process group in 5 s" in lines[0]
    else:
        assert procs[0].returncode != 0 and ("process group failed" in lines[0] or "no progress" in lines[0])
    assert "Traceback" not in err
