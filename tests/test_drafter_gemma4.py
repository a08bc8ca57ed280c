"""Spec: DeepSpec's Gemma-4 DSpark drafter (``architectures: ["Gemma4DSparkModel"]``, flat
``gemma4_text`` config) loads and drafts like mlx-vlm 0.7.10's independent implementation
(Markov-corrected per-position distributions within 1e-4, float32, on identical checkpoint files
and target hidden states), keeps greedy output token-identical to plain decoding on a tiny
Gemma-4 text target, and a checkpoint that does not fit its config is one clear ValueError."""

from __future__ import annotations

from types import SimpleNamespace

import mlx.core as mx
import mlx_lm
import pytest
from mlx_lm.generate import generate_step

from mlx_specdec_plugin.testing.drafters import write_gemma4_dspark
from mlx_specdec_plugin import SpecStats, load_drafter, stream_generate
from mlx_specdec_plugin.drafters.gemma4 import Gemma4DSparkDrafterModel
from mlx_specdec_plugin.contract import DraftContext, StrategyOptions
from mlx_specdec_plugin.sampling import Sampling, make_sampler
from mlx_specdec_plugin.strategies import dspark
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import save_tiny_model

TAPS = (0, 2)
PROMPT = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100]  # 11 context rows > sliding_window - 1
PROMPTS = [
    "def fib(n): return fib(n-1) + fib(n-2) if n > 1 else n\ndef fib",
    "the cat sat on the mat. the cat sat on the",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
]
# the tiny Gemma-4 text target of test_drafter_crosscheck (sliding + full layers, KV sharing,
# per-layer inputs, sliding_window 8)
GEMMA4_TINY = dict(seed=1, sharpness=4, num_hidden_layers=4, head_dim=8, global_head_dim=16, num_kv_shared_layers=1,
                   hidden_size_per_layer_input=8, vocab_size_per_layer_input=258, sliding_window=8,
                   sliding_window_pattern=2, final_logit_softcapping=30.0, tie_word_embeddings=True)
SAME_ROPE = {"rope_theta": 10000.0, "rope_type": "default"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("g4dspark")
    save_tiny_model(root / "g4", "gemma4_text", **GEMMA4_TINY)
    model, tok = mlx_lm.load(str(root / "g4"))
    # the published shape: full-attention layers, K=V, proportional RoPE over global_head_dim
    write_gemma4_dspark(root / "full", root / "g4", target_layer_ids=TAPS, seed=5)
    # its own random embedding/head (not the target's), 3 layers, no confidence head
    write_gemma4_dspark(root / "own_embed", root / "g4", target_layer_ids=TAPS, seed=6, num_draft_layers=3,
                        copy_target_embeddings=False, confidence=False, markov_rank=16)
    # separate K and V on full layers
    write_gemma4_dspark(root / "no_k_eq_v", root / "g4", target_layer_ids=TAPS, seed=7,
                        backbone_overrides={"attention_k_eq_v": False})
    # sliding + full layers (the context window is exercised: 11 context rows, window 8); one RoPE
    # and one head size for both types, where mlx-vlm's single-RoPE backbone is Gemma-4's
    write_gemma4_dspark(root / "sliding", root / "g4", target_layer_ids=TAPS, seed=8,
                        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                        backbone_overrides={"global_head_dim": 8, "rope_parameters": {
                            "full_attention": SAME_ROPE, "sliding_attention": SAME_ROPE}})
    return root, model, tok


def test_published_layout_loads_with_dspark_block_semantics(world):
    root, model, _ = world
    d = load_drafter(root / "full", model)
    assert (d.kind, d.config.layout, d.config.model_type) == ("dspark", "deepspec", "gemma4_text")
    assert d.config.proposal_length == d.config.default_proposals == 7  # block7 = 7 proposals
    assert d.config.sample_from_anchor
    assert isinstance(d.module, Gemma4DSparkDrafterModel)
    assert d.embed_scale == pytest.approx(32**0.5)
    attn = d.module.layers[0].self_attn
    assert "v_proj" not in attn and attn.k_proj.weight.shape == (1 * 16, 32) and attn.scale == 1.0
    sliding = load_drafter(root / "sliding", model).module.layers[0].self_attn
    assert "v_proj" in sliding and sliding.window == 8


# ---------------------------------------------------------------- cross-check against mlx-vlm


def _hidden(model, chunks):
    target = TargetAdapter(model)
    cache = target.make_cache()
    return [target(mx.array([c], dtype=mx.uint32), cache, TAPS)[1] for c in chunks]


def _vlm_drafter(path, model):
    vlm = pytest.importorskip("mlx_vlm.speculative.drafters")
    theirs, kind = vlm.load_drafter(str(path))
    assert kind == "dflash" and type(theirs).__name__ == "Gemma4DSparkDraftModel"
    # mlx-vlm 0.7.10's fused context-K/V shortcut reads every layer's v_proj, which K=V layers do
    # not have (AttributeError at the first draft); its per-layer path is the model's definition.
    theirs._project_context_kv = lambda hidden: None
    target = SimpleNamespace(model=model.model, lm_head=None, args=model.args,
                             rollback_speculative_cache=lambda *a, **k: None)
    return theirs, theirs.reset(target)


@pytest.mark.parametrize("ckpt", ["full", "own_embed", "no_k_eq_v", "sliding"])
def test_matches_mlx_vlm_markov_corrected(world, ckpt):
    root, model, _ = world
    g = 7
    drafter = load_drafter(root / ckpt, model)
    proposer = dspark.build(TargetAdapter(model), drafter, StrategyOptions(num_draft_tokens=g))
    theirs, vlm_cache = _vlm_drafter(root / ckpt, model)
    assert theirs.config.proposal_length == drafter.config.proposal_length
    assert theirs.config.mask_token_id == drafter.config.mask_token_id

    sampling = Sampling.create(make_sampler(temp=1.0))
    committed, round2 = PROMPT[:-1], [PROMPT[-1], 33, 10]
    if ckpt == "sliding":
        # mlx-vlm keeps sliding context in a RotatingKVCache(window - 1) whose multi-row append keeps
        # window - 1 + (rows - 1) rows, so what it sees depends on how the context was chunked; with
        # a 1-row append it is the last window - 1 rows, which we always use (chunking-invariant,
        # see test_sliding_context_does_not_depend_on_chunking).
        round2 = [PROMPT[-1]]
    diffs, markov_effect = [], 0.0
    for ctx_tokens, h, anchor in zip((committed, round2), _hidden(model, [committed, round2]), (PROMPT[-1], 65)):
        proposer.extend(ctx_tokens, h)
        mx.random.seed(0)
        draft = proposer.propose(DraftContext(list(PROMPT) + [anchor], sampling), g)
        ours = draft.tokens.tolist()
        seen = []

        def replay(logits):  # record mlx-vlm's Markov-corrected rows, follow our drawn tokens
            seen.append(logits)
            return mx.array([ours[len(seen) - 1]], dtype=mx.int32)

        theirs.draft_block(anchor, h, vlm_cache, g + 1, replay)
        q_vlm = mx.softmax(mx.concatenate(seen, axis=0).astype(mx.float32), axis=-1)
        assert q_vlm.shape == draft.q.shape
        diffs.append(float(mx.abs(draft.q - q_vlm).max().item()))
        base, _ = proposer.base_logits(anchor, g)
        markov_effect = max(markov_effect, float(mx.abs(mx.softmax(base, axis=-1) - q_vlm).max().item()))
    print(f"gemma4 dspark {ckpt}: max|q_ours - q_mlx_vlm| = {max(diffs):.2e} (Markov term moves q by {markov_effect:.2e})")
    assert max(diffs) < 1e-4
    assert markov_effect > 1e-2


def test_sliding_context_does_not_depend_on_chunking(world):
    """The drafts after a context depend on the context, not on how many rows each round committed."""
    root, model, _ = world
    drafter = load_drafter(root / "sliding", model)
    target = TargetAdapter(model)
    (h,) = _hidden(model, [PROMPT])
    sampling = Sampling.create(make_sampler(temp=1.0))
    rows = []
    for cuts in ((0, 12), (0, 9, 12), (0, 5, 6, 7, 11, 12)):
        p = dspark.build(target, drafter, StrategyOptions())
        for a, b in zip(cuts, cuts[1:]):
            p.extend(PROMPT[a:b], h[:, a:b])
        mx.random.seed(0)
        rows.append(p.propose(DraftContext(list(PROMPT) + [65], sampling), 7).q)
    assert all(float(mx.abs(r - rows[0]).max().item()) < 1e-6 for r in rows[1:])


# ---------------------------------------------------------------- greedy exactness


def _reference(model, tok, prompt, n):
    out = [t for t, _ in generate_step(mx.array(tok.encode(prompt)), model, max_tokens=n)]
    eos = set(tok.eos_token_ids)
    return out[: next((i for i, t in enumerate(out) if t in eos), len(out))]


@pytest.mark.parametrize("ckpt", ["full", "sliding"])
def test_greedy_output_identical_to_plain_decoding(world, ckpt):
    root, model, tok = world
    stats = SpecStats()
    for prompt in PROMPTS:
        ref = _reference(model, tok, prompt, 64)
        out = [r.token for r in stream_generate(model, tok, prompt, max_tokens=64, draft_model=str(root / ckpt),
                                                stats=stats)]
        assert out[: len(ref)] == ref and len(out) >= len(ref)
    assert stats.strategy == "dspark" and stats.proposed > 0


# ---------------------------------------------------------------- bad checkpoints


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(drop_weights=["layers.0.self_attn.k_proj.weight"]), r"missing weight.*'layers.0.self_attn.k_proj.weight'"),
        (dict(config_overrides={"global_head_dim": 32}),
         r"'layers.0.self_attn.q_proj.weight' has shape \(64, 32\), expected \(128, 32\).*'global_head_dim' = 32"),
        (dict(config_overrides={"global_head_dim": None}), r"'global_head_dim' must be an integer"),
        (dict(config_overrides={"num_global_key_value_heads": 2}),
         r"'layers.0.self_attn.k_proj.weight' has shape \(16, 32\), expected \(32, 32\).*'num_global_key_value_heads' = 2"),
        (dict(config_overrides={"attention_k_eq_v": False}), r"missing weight.*'layers.0.self_attn.v_proj.weight'"),
        (dict(weight_overrides={"layers.1.self_attn.v_proj.weight": mx.zeros((16, 32))}),
         r"unexpected weight.*'layers.1.self_attn.v_proj.weight'.*attention_k_eq_v"),
        (dict(drop_weights=["layers.1.layer_scalar"]), r"missing weight.*'layers.1.layer_scalar'"),
        (dict(drop_weights=["lm_head.weight"]), r"missing weight.*'lm_head.weight'"),
        (dict(config_overrides={"hidden_activation": "silu"}), r"'hidden_activation' 'silu' is not supported"),
        (dict(config_overrides={"rope_parameters": {"full_attention": {"rope_theta": 1e6, "rope_type": "magic"}}}),
         r"'rope_parameters' for full_attention is not supported"),
        (dict(config_overrides={"mask_token_id": None}), r"'mask_token_id' is missing"),
        (dict(config_overrides={"num_target_layers": 6}), r"'num_target_layers' 6"),
        (dict(config_overrides={"markov_head_type": "mlp"}), r"'markov_head_type' 'mlp'"),
    ],
)
def test_bad_checkpoint_is_one_clear_value_error(tmp_path, world, kw, match):
    root, model, tok = world
    path = write_gemma4_dspark(tmp_path / "bad", root / "g4", target_layer_ids=TAPS, **kw)
    with pytest.raises(ValueError, match=match):
        load_drafter(path, model)
    with pytest.raises(ValueError, match=match):  # before any token is produced
        next(stream_generate(model, tok, "hi", max_tokens=4, draft_model=str(path)))


def test_refuses_a_non_gemma4_target(tmp_path, world):
    root, _, _ = world
    save_tiny_model(tmp_path / "qwen3", "qwen3", seed=1, num_hidden_layers=4)
    qwen3, _ = mlx_lm.load(str(tmp_path / "qwen3"))
    with pytest.raises(ValueError, match=r"Gemma4DSparkModel.*Gemma-4 drafter, but the target is 'qwen3'"):
        load_drafter(root / "full", qwen3)
