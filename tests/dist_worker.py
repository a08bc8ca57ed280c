"""One rank of a distributed test (run by tests/test_distributed.py, two ranks on loopback).

``python dist_worker.py MODE JSON_ARGS``; prints one JSON line ``{"rank": r, ...}`` on stdout.

- ``parity``: the target folder loaded with mlx-lm's ``sharded_load`` (tensor parallel); greedy
  tokens for each strategy, and the largest difference between the tapped hidden states of the
  sharded target and of the same target loaded whole in this process.
- ``chi2``: a tiny llama built in process and sharded with ``model.shard(group)``; ``n`` seeded
  generations of 3 tokens at T=1 (acceptor rejection, a draft model), then the same with a planted
  wrong acceptor (accepts every draft); rank seeds differ on purpose.
- ``pipeline``: the target loaded in pipeline stages; greedy tokens per strategy, and the refusals.
- ``kill``: a long greedy generation; prints ``started`` on stderr after the first token.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MLX_SPECDEC_BLAS", "bundled")

import mlx_specdec_plugin  # noqa: E402,F401  first (BLAS choice)
import mlx.core as mx  # noqa: E402
import mlx_lm  # noqa: E402
from mlx_lm.utils import load_tokenizer  # noqa: E402
from mlx_lm.utils import sharded_load  # noqa: E402

from mlx_specdec_plugin import SpecStats, stream_generate  # noqa: E402
from mlx_specdec_plugin.distributed import LockstepProposer, lockstep_acceptor  # noqa: E402
from mlx_specdec_plugin.contract import Verdict  # noqa: E402
from mlx_specdec_plugin.generate import prepare  # noqa: E402
from mlx_specdec_plugin.loop import speculative_generate_step  # noqa: E402
from mlx_specdec_plugin.sampling import make_sampler  # noqa: E402
from mlx_specdec_plugin.target import TargetAdapter  # noqa: E402
from mlx_specdec_plugin.testing.tiny import make_tiny_model, tiny_config  # noqa: E402


def parity(group, a):
    model, tok = sharded_load(a["target"], tensor_group=group)
    draft, _ = mlx_lm.load(a["draft"])
    whole, _ = mlx_lm.load(a["target"])
    out, accepted = {}, {}
    runs = {"draft-model": dict(draft_model=draft), "lookup": dict(draft_strategy="lookup"),
            "draft-model-self": dict(draft_model=whole)}  # the whole target drafting: every draft accepted
    for name in ("dspark", "dflash"):
        if a.get(name):
            runs[name] = dict(draft_model=a[name], draft_strategy=name)
    for name, kw in runs.items():
        stats = SpecStats()
        out[name] = [r.token for r in stream_generate(model, tok, a["prompt"], max_tokens=a["max_tokens"],
                                                      num_draft_tokens=a["k"], stats=stats, **kw)]
        accepted[name] = sum(r.accepted for r in stats.rounds)
    ids = mx.array([tok.encode(a["prompt"])], dtype=mx.uint32)
    taps = tuple(a["taps"])
    _, h_sharded = TargetAdapter(model)(ids, model.make_cache(), taps)
    _, h_whole = TargetAdapter(whole)(ids, whole.make_cache(), taps)
    diff = float(mx.abs(h_sharded - h_whole).max().item()) / (1.0 + float(mx.abs(h_whole).max().item()))
    return {"tokens": out, "accepted": accepted, "tap_diff": diff, "sharded": len(model.layers[0].self_attn.q_proj.weight)}


def accept_always(draft, scores):
    return Verdict(len(draft), int(scores.sample()[len(draft)].item()))


def chi2(group, a):
    cfg = tiny_config("llama", vocab_size=6, hidden_size=16, num_hidden_layers=1)
    target = make_tiny_model(cfg, seed=1, sharpness=3)
    draft = make_tiny_model(cfg, seed=2, sharpness=3)
    target.shard(group)
    mx.eval(target.parameters())
    tok = load_tokenizer(Path(a["tokenizer"]))
    prompt = mx.array(a["prompt"])
    mx.random.seed(1234 + 1000 * group.rank())  # the ranks' seeds differ: rank 0 decides
    right = []
    for _ in range(a["n"]):
        gen = stream_generate(target, tok, prompt, max_tokens=3, draft_model=draft, acceptor="rejection",
                              num_draft_tokens=2, sampler=make_sampler(temp=1.0))
        right.append([r.token for r in gen])
    wrong = []
    adapter = None
    for _ in range(a["n"]):
        adapter, proposer, _, sampling, _, _ = prepare(target, draft, sampler=make_sampler(temp=1.0),
                                                       acceptor="rejection", num_draft_tokens=2, target=adapter)
        gen = speculative_generate_step(prompt, adapter, LockstepProposer(proposer, group),
                                        lockstep_acceptor(accept_always, group), num_draft_tokens=2,
                                        max_tokens=3, sampling=sampling)
        wrong.append([t for t, _, _ in gen])
    return {"right": right, "wrong": wrong}


def refusals(group, a):
    """Each refusal as the one-line message every rank raises (before any generation)."""
    model, tok = sharded_load(a["target"], tensor_group=group)
    sharded_draft, _ = sharded_load(a["draft"], tensor_group=group)
    out = {}
    cases = {
        "sharded-draft": dict(prompt=a["prompt"], draft_model=sharded_draft),
        "different-prompts": dict(prompt=a["prompt"] + ("!" if group.rank() == 1 else ""), draft_strategy="lookup"),
    }
    for name, kw in cases.items():
        try:
            list(stream_generate(model, tok, max_tokens=4, **kw))
            out[name] = None
        except (ValueError, RuntimeError) as e:
            out[name] = f"{type(e).__name__}: {e}"
    return out


def pipeline(group, a):
    """The target in pipeline stages (mlx-lm's ``sharded_load(pipeline_group=...)``): greedy tokens
    of plain decoding, lookup and draft models (a small one, and the whole target: every draft
    accepted), and each refusal (DSpark, DFlash: taps; a tree drafter) as the one line it raises."""
    model, tok = sharded_load(a["target"], pipeline_group=group)
    draft, _ = mlx_lm.load(a["draft"])
    whole, _ = mlx_lm.load(a["target"])
    inner = model.model
    out, accepted, refused = {}, {}, {}
    runs = {"plain": {}, "lookup": dict(draft_strategy="lookup"), "draft-model": dict(draft_model=draft),
            "draft-model-self": dict(draft_model=whole)}
    for name, kw in runs.items():
        stats = SpecStats()
        out[name] = [r.token for r in stream_generate(model, tok, a["prompt"], max_tokens=a["max_tokens"],
                                                      num_draft_tokens=a["k"], stats=stats, **kw)]
        accepted[name] = sum(r.accepted for r in stats.rounds)
    for name in ("dspark", "dflash"):
        try:
            list(stream_generate(model, tok, a["prompt"], max_tokens=4, draft_model=a[name], draft_strategy=name))
            refused[name] = None
        except ValueError as e:
            refused[name] = str(e)
    return {"tokens": out, "accepted": accepted, "refused": refused,
            "layers": [inner.start_idx, inner.end_idx]}


def kill(group, a):
    model, tok = sharded_load(a["target"], tensor_group=group)
    for i, _ in enumerate(stream_generate(model, tok, a["prompt"], max_tokens=-1, draft_strategy="lookup",
                                          num_draft_tokens=2)):
        if i == 0:
            print("started", file=sys.stderr, flush=True)
    return {}


def main():
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    group = mx.distributed.init()
    result = {"parity": parity, "chi2": chi2, "refusals": refusals, "kill": kill, "pipeline": pipeline}[mode](group, args)
    print(json.dumps({"rank": group.rank(), **result}), flush=True)


if __name__ == "__main__":
    main()
