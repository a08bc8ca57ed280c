"""Spec: block drafters (``dspark``, ``dflash``) on targets with non-trimmable caches decode
token-identically to mlx-lm's plain greedy decoding.

Targets (as in ``test_caches_generate``): Gated DeltaNet hybrids ``qwen3_5`` (wrapped text model;
rollback by captured per-position states, and with capture disabled, by replay) and
``qwen3_next`` (captured), and a sliding-window ``gemma3_text`` (window 8) generating 72 tokens,
so the window wraps many times. The block drafters need the target's hidden-state taps, so the
verify forward both taps layers and (hybrids) records per-position recurrent states.

Drafters (tiny checkpoints from ``mlx_specdec_plugin.testing.drafters``, bound with ``load_drafter``):

* ``random``: a random drafter (mostly rejected);
* ``rejected``: always proposes a token the target never emits (every round fully rejected);
* ``good``: DSpark whose Markov head encodes the target's own greedy bigrams (base logits zeroed),
  DFlash whose head always proposes the target's most frequent token. Whole rounds are accepted,
  though not every round (a random attention target's next token is not a function of the previous
  token alone); a drafter accepted in *every* round is covered by ``draft-model-self`` in
  ``test_caches_generate``.
"""

from __future__ import annotations

from collections import Counter

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.generate import generate_step

from mlx_specdec_plugin.testing.drafters import write_dflash, write_dspark
from mlx_specdec_plugin import load_drafter, recurrent
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import make_tiny_model, save_model, tiny_config
from test_caches import GDN

VOCAB = 32
MAX_TOKENS = 72
TAPS = (0, 2)
PROMPTS = [[3, 1, 4, 1, 5, 9, 2, 6], [7, 7, 7, 1, 2, 7, 7, 7, 1]]
TARGETS = {
    "qwen3_5-capture": tiny_config("qwen3_5", vocab_size=VOCAB, num_hidden_layers=4, **GDN),
    "qwen3_5-replay": tiny_config("qwen3_5", vocab_size=VOCAB, num_hidden_layers=4, **GDN),
    "qwen3_next-capture": tiny_config("qwen3_next", vocab_size=VOCAB, num_hidden_layers=4, **GDN),
    "gemma3-window8": tiny_config("gemma3_text", vocab_size=VOCAB, num_hidden_layers=4, sliding_window=8),
}


def plain(model, prompt):
    return [int(t) for t, _ in generate_step(mx.array(prompt), model, max_tokens=MAX_TOKENS)]


def _bigram_markov(seqs, V, scale=20.0):
    """A rank-V Markov head predicting the most frequent successor of each token in ``seqs``."""
    w2 = np.zeros((V, V), np.float32)
    for seq in seqs:
        for a, b in zip(seq, seq[1:]):
            w2[b, a] += scale
    return {"markov_head.markov_w1.weight": mx.eye(V), "markov_head.markov_w2.weight": mx.array(w2)}


def _one_row(V, r, token):
    w = np.zeros((V, r), np.float32)
    w[token] = 1.0
    return mx.array(w)


def _constant_dflash(H, V, token):
    """Zero residual branches + own lm_head peaked at ``token``: every proposal is ``token``."""
    head = np.zeros((V, H), np.float32)
    head[token] = 1.0
    return {
        "lm_head.weight": mx.array(head),
        "layers.0.self_attn.o_proj.weight": mx.zeros((H, H)),
        "layers.0.mlp.down_proj.weight": mx.zeros((H, 2 * H)),
        "norm.weight": mx.ones((H,)),
    }


@pytest.fixture(scope="module", params=list(TARGETS))
def world(request, tmp_path_factory):
    name = request.param
    config = TARGETS[name]
    root = tmp_path_factory.mktemp(name)
    target = make_tiny_model(config, seed=1, sharpness=4)
    save_model(root / "t", target, config, tokenizer=False)
    refs = [plain(target, p) for p in PROMPTS]
    V, H = VOCAB, config["hidden_size"]
    counts = Counter(t for r in refs for t in r)
    frequent = counts.most_common(1)[0][0]
    never = next(t for t in range(V) if t not in counts)
    # z-lab-style nested configs name the drafter backbone (qwen3); a Gemma target gets a Gemma one.
    over = {"config_overrides": {"model_type": "gemma3_text"}} if name.startswith("gemma") else {}
    zero_base = {"norm.weight": mx.zeros((H,))}  # draft hidden 0 -> base logits 0
    dspark = dict(layout="dflash_config", target_layer_ids=TAPS, **over)
    ck = {
        "dspark/random": write_dspark(root / "ds_rand", root / "t", seed=11, **dspark),
        "dspark/good": write_dspark(
            root / "ds_good", root / "t", markov_rank=V, confidence=False, **dspark,
            weight_overrides={**zero_base, **_bigram_markov([p[-1:] + r for p, r in zip(PROMPTS, refs)], V)},
        ),
        "dspark/rejected": write_dspark(
            root / "ds_rej", root / "t", confidence=False, **dspark,
            weight_overrides={**zero_base, "markov_head.markov_w1.weight": mx.ones((V, 8)),
                             "markov_head.markov_w2.weight": _one_row(V, 8, never)},
        ),
        "dflash/random": write_dflash(root / "df_rand", root / "t", target_layer_ids=TAPS, seed=12, **over),
        "dflash/good": write_dflash(root / "df_good", root / "t", target_layer_ids=TAPS, **over,
                                    weight_overrides=_constant_dflash(H, V, frequent)),
        "dflash/rejected": write_dflash(root / "df_rej", root / "t", target_layer_ids=TAPS, **over,
                                        weight_overrides=_constant_dflash(H, V, never)),
    }
    saved = None
    if name.endswith("-replay"):  # roll the recurrent layers back by replay, not capture
        saved = recurrent.CAPTURES.pop(config["model_type"])
    yield name, target, refs, ck
    if saved is not None:
        recurrent.CAPTURES[config["model_type"]] = saved


def speculative(target_model, drafter, prompt, k, stats):
    target, proposer, spec, sampling, strategy, k = prepare(target_model, drafter, num_draft_tokens=k)
    stats.strategy = strategy.name
    gen = speculative_generate_step(
        mx.array(prompt), target, proposer, spec.accept, num_draft_tokens=k, max_tokens=MAX_TOKENS,
        sampling=sampling, stats=stats,
    )
    return [t for t, _, _ in gen]


# (strategy, drafter, num_draft_tokens for each prompt). Short blocks for the good drafters make
# whole-block acceptance likely; dflash/random runs the checkpoint's full 15-proposal block, so a
# verify forward (16 tokens) is wider than gemma3's 8-token window.
CASES = [
    ("dspark", "good", (2, 3)),
    ("dspark", "random", (3, 7)),
    ("dspark", "rejected", (4, 7)),
    ("dflash", "good", (1, 2)),
    ("dflash", "random", (4, 15)),
    ("dflash", "rejected", (2, 5)),
]


@pytest.mark.parametrize("strategy, kind, ks", CASES, ids=[f"{s}-{d}" for s, d, _ in CASES])
def test_greedy_is_token_identical_to_plain_decoding(world, strategy, kind, ks):
    name, target, refs, ck = world
    if name.endswith("-capture"):  # the verify forward taps *and* records per-position states
        assert recurrent.capture_forward(TargetAdapter(target)) is not None
    drafter = load_drafter(ck[f"{strategy}/{kind}"], target)
    stats = SpecStats()
    for prompt, ref, k in zip(PROMPTS, refs, ks):
        assert speculative(target, drafter, prompt, k, stats) == ref, (prompt, k)
    assert stats.strategy == strategy
    rounds = [r for r in stats.rounds if r.proposed > 0]
    full = [r.accepted for r in rounds if r.accepted == r.proposed]
    assert any(r.accepted == 0 for r in rounds)  # rounds where every draft is rejected
    if kind == "rejected":
        assert stats.accepted == 0
    if kind == "good":  # rounds where every draft is accepted (whole multi-token blocks for dspark)
        assert full and max(full) >= (2 if strategy == "dspark" else 1)


@pytest.mark.parametrize("tie", [False, True])
def test_qwen3_5_wrapped_text_model_head_and_taps(tmp_path, tie):
    """``qwen3_5``'s ``Model`` wraps its text model (``language_model``; its own ``args`` hold only
    ``text_config``): the tap forward's head, the drafter's borrowed head and the hidden size are
    the wrapped model's, and the probe against ``model(x)`` passes (an untied head included)."""
    config = tiny_config("qwen3_5", vocab_size=VOCAB, num_hidden_layers=4, tie_word_embeddings=tie, **GDN)
    model = make_tiny_model(config, seed=3)
    target = TargetAdapter(model)
    assert (target.hidden_size, target.vocab_size) == (config["hidden_size"], VOCAB)
    target.check_taps((0, 1, 3))
    save_model(tmp_path / "t", model, config, tokenizer=False)
    drafter = load_drafter(write_dflash(tmp_path / "df", tmp_path / "t", target_layer_ids=TAPS), model)
    h = mx.random.normal((3, config["hidden_size"]))
    lm = model.language_model
    expected = lm.model.embed_tokens.as_linear(h) if tie else lm.lm_head(h)
    assert mx.allclose(drafter.head(h), expected).item()
