"""Spec: Gemma-4's assistant drafter (``gemma4_assistant`` checkpoints) loads, drafts like mlx-vlm
0.7.10's independent implementation on the same files and target states, reads the target's own
keys/values as the loop leaves them (sliding layers: the newest ``window - 1`` rows, whatever the
ring holds), keeps greedy output equal to plain decoding for good, random and always-rejected
assistants, is picked by ``auto`` from its config, and refuses what does not fit in one line.
"""

from __future__ import annotations

import collections
import json
import shutil

import mlx.core as mx
import mlx_lm
import pytest
from references import greedy_tokens

from mlx_specdec_plugin import SpecStats, load_drafter, stream_generate
from mlx_specdec_plugin.commands.cli import main as cli_main
from mlx_specdec_plugin.contract import DraftContext, StrategyOptions
from mlx_specdec_plugin.drafters.assistant import target_kv_layers
from mlx_specdec_plugin.sampling import Sampling, make_sampler
from mlx_specdec_plugin.strategies import assistant
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.drafters import write_gemma4_assistant
from mlx_specdec_plugin.testing.tiny import save_tiny_model

MAX_TOKENS = 40
PROMPTS = [
    "the cat sat on the mat. the cat sat on the mat. the cat",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
    "def fib(n): return fib(n-1) + fib(n-2) if n > 1 else n\ndef fib",
]
# sliding + full layers, K/V shared by the last layer, per-layer inputs, sliding window 8
GEMMA4_TINY = dict(seed=1, sharpness=4, hidden_size=64, num_hidden_layers=4, head_dim=8, global_head_dim=16, num_kv_shared_layers=1,
                   hidden_size_per_layer_input=8, vocab_size_per_layer_input=258, sliding_window=8,
                   sliding_window_pattern=2, final_logit_softcapping=30.0, tie_word_embeddings=True)
# the 26B/31B geometry: full layers with one K=V projection of num_global_key_value_heads heads
K_EQ_V = dict(GEMMA4_TINY, attention_k_eq_v=True, num_global_key_value_heads=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("assistant")
    save_tiny_model(root / "g4", "gemma4_text", **GEMMA4_TINY)
    save_tiny_model(root / "kv1", "gemma4_text", **K_EQ_V)
    model, tok = mlx_lm.load(str(root / "g4"))
    refs = {p: greedy_tokens(model, tok, p, MAX_TOKENS) for p in PROMPTS}
    pairs = collections.defaultdict(collections.Counter)  # the references' bigrams, for a "good" assistant
    for p in PROMPTS:
        seq = tok.encode(p)[-1:] + refs[p]
        for a, b in zip(seq, seq[1:]):
            pairs[a][b] += 1
    successor = {a: c.most_common(1)[0][0] for a, c in pairs.items()}
    write_gemma4_assistant(root / "tied", root / "g4", seed=3)
    write_gemma4_assistant(root / "untied", root / "g4", seed=4, tie_word_embeddings=False,
                           layer_types=("full_attention", "sliding_attention", "full_attention"))
    write_gemma4_assistant(root / "ordered", root / "g4", seed=5, ordered_embeddings=True, num_centroids=6,
                           centroid_top_k=2)
    write_gemma4_assistant(root / "k_eq_v", root / "kv1", seed=6)
    write_gemma4_assistant(root / "good", root / "g4", successor=successor)
    write_gemma4_assistant(root / "rejected", root / "g4", seed=7,  # logits 0 after a zero norm: argmax token 0
                           weight_overrides={"norm.weight": mx.zeros((24,))})
    return root, model, tok, refs


def _prefill(target, drafter, n, start=3):
    """A target cache holding ``n`` context tokens, and the tapped state of the last one."""
    cache = target.make_cache()
    tokens = mx.array([[(7 * i + start) % 250 for i in range(n)]], dtype=mx.uint32)
    _, hidden = target(tokens, cache, drafter.tap_layers)
    mx.eval(hidden)
    return cache, hidden[:, -1:]


@pytest.mark.parametrize("ckpt", ["tied", "untied", "ordered", "k_eq_v"])
def test_assistant_matches_mlx_vlm(world, ckpt):
    vlm_drafters = pytest.importorskip("mlx_vlm.speculative.drafters")
    root, model, _, _ = world
    if ckpt == "k_eq_v":
        model, _ = mlx_lm.load(str(root / "kv1"))
    ours = load_drafter(root / ckpt, model)
    theirs, kind = vlm_drafters.load_drafter(str(root / ckpt), kind="mtp")
    theirs.bind(model)
    assert (ours.kind, kind) == ("assistant", "mtp")
    target = TargetAdapter(model)
    diffs = []
    for n in (5, 8, 13):  # shorter than, equal to and longer than the sliding window
        cache, tapped = _prefill(target, ours, n)
        shared, position = ours.shared_kv(cache)
        assert position == n - 1 and shared["full_attention"][0].shape[2] == n
        assert shared["sliding_attention"][0].shape[2] == min(n, 7)
        theirs.set_shared_kv(shared, n, position=n - 1, kv_valid_len=n)
        f_ours = f_theirs = ours.feature(tapped)
        token = mx.array([[42]], dtype=mx.uint32)
        for _ in range(3):  # the chained steps: token and feature fed back, position held
            f_ours, logits = ours.step(mx.concatenate([ours.embed(token), f_ours], -1), shared, position)
            f_theirs, ref = theirs(mx.concatenate([theirs._input_embed(token) * theirs._input_embed_scale, f_theirs], -1),
                                   theirs._shared_kv, mx.array([[n - 1]]))
            q, q_ref = mx.softmax(logits[0, 0], -1), mx.softmax(ref[0, 0].astype(mx.float32), -1)
            assert float(q_ref.max()) > 4 / q_ref.shape[-1]  # peaked rows, not a degenerate comparison
            diffs.append(float(mx.abs(q - q_ref).max()))
            token = mx.argmax(logits, -1).astype(mx.uint32)
        # the keys/values matter: another context moves q
        other, _ = _prefill(target, ours, n, start=11)
        moved = ours.step(mx.concatenate([ours.embed(token), f_ours], -1), ours.shared_kv(other)[0], position)[1]
        same = ours.step(mx.concatenate([ours.embed(token), f_ours], -1), shared, position)[1]
        assert float(mx.abs(mx.softmax(moved, -1) - mx.softmax(same, -1)).max()) > 1e-3
    print(f"assistant {ckpt}: max|q_ours - q_mlx_vlm| = {max(diffs):.2e}")
    assert max(diffs) < 1e-4


def test_sliding_layers_read_the_newest_window_minus_one_rows_however_the_ring_was_filled(world):
    """Gemma-4's sliding cache keeps ``window - 1`` rows (Hugging Face's ``DynamicSlidingWindowLayer``),
    so that is what the assistant reads: a ring filled by one long prefill (13 rows stored) and one
    filled token by token (8 rows, wrapped) give the same keys and the same draft."""
    root, model, _, _ = world
    drafter = load_drafter(root / "tied", model)
    target = TargetAdapter(model)
    tokens = [(5 * i + 1) % 250 for i in range(13)]
    whole, stepped = target.make_cache(), target.make_cache()
    target(mx.array([tokens], dtype=mx.uint32), whole)
    for t in tokens:
        target(mx.array([[t]], dtype=mx.uint32), stepped)
    ring = stepped[target_kv_layers(model)["sliding_attention"]]
    assert ring.keys.shape[2] == 8 and whole[target_kv_layers(model)["sliding_attention"]].keys.shape[2] == 13
    (a, pa), (b, pb) = drafter.shared_kv(whole), drafter.shared_kv(stepped)
    assert pa == pb == 12
    for kind in a:
        assert a[kind][0].shape == b[kind][0].shape
        assert float(mx.abs(a[kind][0] - b[kind][0]).max()) < 1e-5 and float(mx.abs(a[kind][1] - b[kind][1]).max()) < 1e-5


@pytest.mark.parametrize("head", ["good", "tied", "rejected"])
def test_greedy_equals_plain_decoding(world, head):
    root, model, tok, refs = world
    stats = SpecStats()
    for prompt in PROMPTS:
        out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, draft_model=str(root / head),
                                                num_draft_tokens=3, stats=stats)]
        assert out[: len(refs[prompt])] == refs[prompt], prompt
    assert stats.strategy == "assistant" and stats.proposed > 0  # picked by auto from config.json
    print(f"assistant {head}: {stats.accepted} of {stats.proposed} proposals kept")
    if head == "good":
        assert stats.accepted > 0.3 * stats.proposed, (stats.accepted, stats.proposed)
    if head == "rejected":
        assert 0 not in [t for r in refs.values() for t in r]
        assert stats.accepted == 0


@pytest.mark.parametrize("head", ["good", "rejected"])
def test_greedy_assistant_trees_equal_plain_decoding(world, head):
    """``--draft-strategy tree`` with an assistant: one assistant call per depth, verified by the
    Gemma-4 tree forward; the good assistant keeps more per round as a tree than as a chain."""
    root, model, tok, refs = world
    per_round = {}
    for strategy, k in (("assistant", 3), ("tree", 6)):
        stats = SpecStats()
        for prompt in PROMPTS:
            out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, draft_model=str(root / head),
                                                    draft_strategy=strategy, num_draft_tokens=k, stats=stats)]
            assert out[: len(refs[prompt])] == refs[prompt], (strategy, prompt)
        per_round[strategy] = stats.emitted / stats.num_rounds
        assert stats.proposed > 0
        if strategy == "assistant":  # the chain drafts token 0 only; a tree's siblings tie at logit 0
            assert (stats.accepted == 0) == (head == "rejected")
    print(f"assistant {head}: tokens per round chain k=3 {per_round['assistant']:.2f}, tree of 6 {per_round['tree']:.2f}")
    if head == "good":
        assert per_round["tree"] > per_round["assistant"]


def test_sampled_drafts_report_the_distribution_they_were_drawn_from(world):
    root, model, tok, _ = world
    drafter = load_drafter(root / "ordered", model)
    target = TargetAdapter(model)
    proposer = assistant.build(target, drafter, StrategyOptions(num_draft_tokens=3))
    cache = target.make_cache()
    history = tok.encode(PROMPTS[0])
    _, hidden = target(mx.array([history[:-1]], dtype=mx.uint32), cache, proposer.tap_layers)
    proposer.extend(history[:-1], hidden)
    sampling = Sampling.create(make_sampler(temp=0.8, top_p=0.9))
    draft = proposer.propose(DraftContext(history, sampling, cache), 3)
    assert len(draft) == 3 and draft.q is not None and not draft.deterministic
    assert mx.allclose(draft.q.sum(-1), mx.ones(3), atol=1e-4)
    picked = mx.take_along_axis(draft.q, draft.tokens.astype(mx.int32)[:, None], -1)
    assert float(picked.min()) > 0  # every proposal has mass under the q it reports
    with pytest.raises(ValueError, match="reads the target's cache"):
        proposer.propose(DraftContext(history, sampling), 3)


def _bad(root, tmp_path, **kw):
    return write_gemma4_assistant(tmp_path / "bad", root / "g4", seed=9, **kw)


@pytest.mark.parametrize("kw, match", [
    (dict(config_overrides={"text_config": None}), "'text_config'"),
    (dict(config_overrides={"backbone_hidden_size": 0}), "backbone_hidden_size"),
    (dict(drop_weights=["pre_projection.weight"]), "missing weight.*pre_projection"),
    (dict(text_overrides={"head_dim": 4}), "expects keys of 2 heads x 4"),
    (dict(ordered_embeddings=True, num_centroids=5), "num_centroids"),
    (dict(config_overrides={"block_size": 1}), "block_size"),
])
def test_bad_checkpoints_are_one_clear_error(world, tmp_path, kw, match):
    root, model, _, _ = world
    with pytest.raises(ValueError, match=match) as err:
        load_drafter(_bad(root, tmp_path, **kw), model)
    assert "\n" not in str(err.value)


def test_the_assistant_of_another_target_is_refused(world, tmp_path):
    root, _, _, _ = world
    save_tiny_model(tmp_path / "narrow", "gemma4_text", **dict(GEMMA4_TINY, hidden_size=32))
    narrow, _ = mlx_lm.load(str(tmp_path / "narrow"))
    with pytest.raises(ValueError, match="belongs to a target of hidden size 64 .* this target has 32"):
        load_drafter(root / "tied", narrow)
    save_tiny_model(tmp_path / "qwen", "qwen3", hidden_size=64)
    other, _ = mlx_lm.load(str(tmp_path / "qwen"))
    with pytest.raises(ValueError, match="reads a Gemma-4 target's keys and values; the target is 'qwen3'"):
        load_drafter(root / "tied", other)


def test_the_command_says_one_line(world, tmp_path, capsys):
    root, _, _, _ = world
    bad = _bad(root, tmp_path, text_overrides={"head_dim": 4})
    argv = ["generate", "--model", str(root / "g4"), "--prompt", "hi", "--max-tokens", "4", "--draft-model", str(bad)]
    assert cli_main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "CPU BLAS" not in line]
    assert len(err) == 1 and "expects keys of 2 heads x 4" in err[0], err
    good = ["generate", "--model", str(root / "g4"), "--prompt", PROMPTS[0], "--max-tokens", "8", "--temp", "0",
            "--draft-model", str(root / "good"), "--verbose", "true"]
    assert cli_main(good) == 0
    assert "assistant" in capsys.readouterr().err
    cfg = json.loads((root / "good" / "config.json").read_text())
    assert cfg["model_type"] == "gemma4_assistant"  # what auto recognised
    shutil.rmtree(tmp_path / "bad")
