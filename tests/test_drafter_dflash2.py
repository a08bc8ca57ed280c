"""Spec: DFlash2 drafters (``architectures: ["DFlash2DraftModel"]``) load, draft like mlx-vlm
0.7.10's independent implementation and keep greedy output exact.

* Per-position draft distributions (the candidate selector's scores over its top-k candidates,
  zero elsewhere) equal mlx-vlm's ``DFlash2DraftModel`` on the same checkpoint files and target
  hidden states within 1e-4 in float32, over two rounds (the context cache carried between them),
  with non-trivial ``input_embedding_scale``, ``output_multiplier`` and soft-capping.
* Greedy output is token-identical to plain decoding for a good drafter (the selector's codebooks
  hold the references' bigrams), a random one and an always-rejected one (every proposal a token
  the references never contain).
* A checkpoint that does not fit its config or the target is one clear error before generation.
"""

from __future__ import annotations

from types import SimpleNamespace

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from references import greedy_tokens

from mlx_specdec_plugin.testing.drafters import write_dflash2
from mlx_specdec_plugin import SpecStats, load_drafter, stream_generate
from mlx_specdec_plugin.contract import DraftContext, StrategyOptions
from mlx_specdec_plugin.sampling import Sampling, make_sampler
from mlx_specdec_plugin.strategies import dflash2
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import save_tiny_model

TAPS = (0, 2)
PROMPT = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100]
PROMPTS = ["the cat sat on the mat. the cat sat on the", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"]
MAX_TOKENS = 40


def _reference(model, tok, prompt):
    return greedy_tokens(model, tok, prompt, MAX_TOKENS)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dflash2")
    save_tiny_model(root / "t", "qwen3", seed=3, sharpness=3.0, num_hidden_layers=4)
    model, tok = mlx_lm.load(str(root / "t"))
    return root, model, tok


def _vlm_target(model):
    # mlx-vlm's bind/validation duck-types the target; mlx-lm models lack the rollback marker.
    return SimpleNamespace(model=model.model, lm_head=getattr(model, "lm_head", None), args=model.args,
                           rollback_speculative_cache=lambda *a, **k: None)


def test_dflash2_matches_mlx_vlm(world):
    vlm = pytest.importorskip("mlx_vlm.speculative.drafters")
    root, model, _ = world
    path = write_dflash2(root / "xcheck", root / "t", target_layer_ids=TAPS, num_draft_layers=2, seed=5,
                         input_embedding_scale=1.5, output_multiplier=0.8,
                         config_overrides={"final_logit_softcapping": 20.0})
    ours = load_drafter(path, model)
    assert ours.kind == "dflash2" and ours.config.default_proposals == 4  # runtime_block_size min(5, 8)
    target = TargetAdapter(model)
    proposer = dflash2.build(target, ours, StrategyOptions())
    theirs, _ = vlm.load_drafter(str(path))
    assert type(theirs).__name__ == "DFlash2DraftModel"
    vlm_cache = theirs.reset(_vlm_target(model))
    top_k = theirs.candidate_selector.top_k
    sampling = Sampling.create(make_sampler(temp=1.0))
    cache = target.make_cache()
    rounds = [(PROMPT[:-1], PROMPT[-1]), ([PROMPT[-1], 33, 10], 65)]
    history, diffs, g = list(PROMPT), [], 4
    for committed, anchor in rounds:
        _, h = target(mx.array([committed], dtype=mx.uint32), cache, TAPS)
        proposer.extend(committed, h)
        if committed is not rounds[0][0]:
            history += committed[1:] + [anchor]
        mx.random.seed(0)
        draft = proposer.propose(DraftContext(list(history), sampling), g)
        tokens = draft.tokens.tolist()
        # mlx-vlm's candidates: its own logits through the same top-k (a fresh copy of its context)
        probe_cache = theirs.make_cache()
        for c, vc in zip(probe_cache, vlm_cache):
            if vc.keys is not None:
                c.update_and_fetch(vc.keys[..., : vc.offset, :], vc.values[..., : vc.offset, :])
        block = mx.array([[anchor] + [ours.config.mask_token_id] * g])
        cands = mx.argpartition(theirs._logits(theirs._hidden(block, h, probe_cache)[:, 1:]), -top_k, axis=-1)[0, :, -top_k:]
        seen = []

        class Follow:  # records mlx-vlm's selector scores, picks the candidate we drew
            def sample_proposal(self, scores):
                i = len(seen)
                seen.append(scores.reshape(-1))
                return mx.array([cands[i].tolist().index(tokens[i])])

        assert theirs.draft_block(anchor, h, vlm_cache, g + 1, Follow()).tolist() == [tokens]
        q_vlm = mx.zeros(draft.q.shape)
        for i, scores in enumerate(seen):
            q_vlm[i, cands[i]] = mx.softmax(scores)
        assert float(q_vlm.max().item()) > 0.2  # peaked rows, not a degenerate comparison
        assert int((draft.q > 0).sum(axis=-1).max().item()) <= top_k
        diffs.append(float(mx.abs(draft.q - q_vlm).max().item()))
    print(f"dflash2: max|q_ours - q_mlx_vlm| = {max(diffs):.2e} (per round {diffs})")
    assert max(diffs) < 1e-4


def _selector_drafter(root, name, model, successor):
    """Logits multiplied by 0 (every token a candidate, unary scores 0), residual branches zeroed so
    every mask slot's hidden state is the normed mask embedding h, ``hidden_projection`` mapping h
    to ones: the score of c after ``prev`` is ``successor[c, prev]``."""
    H = model.args.hidden_size
    V = model.args.vocab_size
    mask = V - 3  # the fixture's mask_token_id
    e = model.model.embed_tokens.weight[mask]
    h = e * mx.rsqrt(mx.mean(e * e) + 1e-6)
    over = {
        "norm.weight": mx.ones((H,)),
        "layers.0.self_attn.o_proj.weight": mx.zeros((H, H)),
        "layers.0.mlp.down_proj.weight": mx.zeros((H, 2 * H)),
        "candidate_selector.hidden_projection.weight": mx.broadcast_to(h / mx.sum(h * h), (V, H)),
        "candidate_selector.predecessor_codebook": mx.eye(V),
        "candidate_selector.successor_codebook": mx.array(successor),
    }
    return write_dflash2(root / name, root / "t", target_layer_ids=TAPS, selector_rank=V, selector_top_k=V,
                         output_multiplier=0.0, weight_overrides=over)


@pytest.mark.parametrize("kind", ["good", "random", "rejected"])
def test_greedy_equals_plain_decoding(world, kind):
    root, model, tok = world
    refs = {p: _reference(model, tok, p) for p in PROMPTS}
    V = model.args.vocab_size
    counts = np.bincount(np.concatenate([np.array(r) for r in refs.values()]), minlength=V)
    never = int(np.flatnonzero(counts == 0)[0])
    successor = np.zeros((V, V), np.float32)
    if kind == "good":  # the references' bigrams: the most frequent successor wins
        for seq in refs.values():
            for a, b in zip(seq, seq[1:]):
                successor[b, a] += 20.0
        path = _selector_drafter(root, "good", model, successor)
    elif kind == "rejected":
        successor[never] = 20.0
        path = _selector_drafter(root, "rej", model, successor)
    else:
        path = write_dflash2(root / "rand", root / "t", target_layer_ids=TAPS, seed=12)
    stats = SpecStats()
    for prompt in PROMPTS:
        out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, draft_model=str(path),
                                                num_draft_tokens=5, stats=stats)]
        assert out[: len(refs[prompt])] == refs[prompt], prompt
    assert stats.strategy == "dflash2" and stats.proposed > 0  # picked by auto from config.json
    if kind == "rejected":
        assert stats.accepted == 0
    if kind == "good":
        assert stats.accepted / stats.proposed > 0.3 and max(r.accepted for r in stats.rounds) >= 2


@pytest.mark.parametrize("kw, match", [
    (dict(drop_weights=["candidate_selector.successor_codebook"]), r"missing weight.*successor_codebook"),
    (dict(drop_weights=["layers.0.mlp_conv.base_kernel"]), r"missing weight.*mlp_conv.base_kernel"),
    (dict(weight_overrides={"layers.0.attention_conv.kernel_projection.weight": mx.zeros((5, 32))}),
     r"'layers.0.attention_conv.kernel_projection.weight' has shape \(5, 32\)"),
    (dict(conv_group_size=5), r"'hidden_size' 32 is not a multiple of 'conv_group_size' 5"),
    (dict(selector_top_k=300), r"'selector_top_k' 300 exceeds the vocabulary 258"),
    (dict(nested_overrides={"causal": True}), r"causal draft blocks are not supported"),
    (dict(nested_overrides={"conv_kernel_size": None}), r"DFlash2 drafter config: 'conv_kernel_size' must be a positive integer"),
    (dict(target_layer_ids=(0, 5)), r"'target_layer_ids' \[0, 5\] reach layer\(s\) \[5\]"),
])
def test_bad_checkpoints_are_one_clear_error(world, tmp_path, kw, match):
    root, model, tok = world
    path = write_dflash2(tmp_path / "d", root / "t", **{"target_layer_ids": TAPS, **kw})
    with pytest.raises(ValueError, match=match):
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(path)))
