"""Spec: the prefix cache (``prefix_cache.PrefixCache``) changes what is computed, never what is
generated.

A conversation is replayed turn by turn twice: once from scratch every turn, once taking the
longest cached prefix (target KV cache *and* the drafter's state) and prefilling only the new
tokens. For every strategy (``lookup``, ``draft-model``, ``dspark``, ``dflash``) and plain decoding:

* greedy: the same tokens, and the drafter proposes exactly the same tokens in every round (its
  state after a rewind is the state a fresh prefill builds);
* seeded sampling at T=1: the same tokens (every draw sees the same distributions), so exactness
  under sampling is the acceptors' own, untouched;
* the cache is used: later turns reuse the earlier turns' tokens, a regenerated turn all but the
  prompt's last token, and a turn that edits an earlier message the shared prefix (the entry it
  takes is rewound: the longer branch is given up, not copied).
"""

import mlx.core as mx
import mlx_lm
import pytest
from mlx_lm.models.cache import make_prompt_cache

from mlx_specdec_plugin.testing.drafters import write_dflash, write_dspark
from mlx_specdec_plugin import load_drafter, stream_generate
from mlx_specdec_plugin.generate import prepare
from mlx_specdec_plugin.server.prefix_cache import CachedContext, PrefixCache
from mlx_specdec_plugin.sampling import make_sampler
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.strategies.lookup import LookupProposer
from mlx_specdec_plugin.target import TargetAdapter
from mlx_specdec_plugin.testing.tiny import save_tiny_model

N = 20  # tokens per turn


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefix")
    target_dir = save_tiny_model(root / "t", "qwen3", seed=1, sharpness=6, num_hidden_layers=4)
    model, tok = mlx_lm.load(str(target_dir))
    drafts = {
        "lookup": None,
        "draft-model": model,  # the target itself: every draft accepted, so a stale state would show
        "dspark": load_drafter(write_dspark(root / "ds", target_dir, layout="dflash_config", target_layer_ids=(0, 2)),
                               model),
        "dflash": load_drafter(write_dflash(root / "df", target_dir, target_layer_ids=(0, 2)), model),
    }
    return model, tok, drafts


class Spy:
    """A proposer that records what it proposed (everything else is the wrapped proposer's)."""

    def __init__(self, inner, log):
        self.inner, self.log = inner, log

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def propose(self, ctx, max_tokens):
        draft = self.inner.propose(ctx, max_tokens)
        self.log.append(draft.tokens.tolist())
        return draft


def conversation(tok):
    """Turn prompts built from the previous turn's output, as a chat client resends them."""
    enc = lambda s: tok.encode(s, add_special_tokens=False)
    first = enc("system: be terse\nuser: the cat sat on the mat. the cat sat on the\nassistant:")

    def turns(outputs):
        yield first
        history = first + outputs[0] + enc("\nuser: and then the cat sat on?\nassistant:")
        yield history
        third = history + outputs[1] + enc("\nuser: once more\nassistant:")
        yield third
        yield third  # regenerate the last answer
        yield first[:12] + enc(" dog stood by the door. the dog\nassistant:")  # edit the first message

    return turns


def run_turns(model, tok, strategy, draft, cached: bool, temp: float):
    target = TargetAdapter(model)
    pc = PrefixCache(max_entries=4)
    outputs, proposals, reused = [], [], []
    for i, prompt in enumerate(conversation(tok)(outputs)):  # each prompt built once its inputs exist
        log = []
        mx.random.seed(100 + i)
        sampler = make_sampler(temp)
        key = (strategy,)
        ctx = pc.take(key, prompt) if cached else None
        if strategy == "none":
            cache = ctx.cache if ctx else make_prompt_cache(model)
            n = ctx.reused if ctx else 0
            gen = stream_generate(model, tok, mx.array(prompt[n:]), max_tokens=N, sampler=sampler, prompt_cache=cache)
            proposer = None
        else:
            if ctx is None:
                cache = target.make_cache()
                proposer = prepare(model, draft, draft_strategy=strategy, sampler=sampler, num_draft_tokens=4,
                                   target=target)[1]
                n = 0
            else:
                cache, proposer, n = ctx.cache, ctx.proposer, ctx.reused
            gen = stream_generate(model, tok, mx.array(prompt), max_tokens=N, draft_model=draft,
                                  draft_strategy=strategy, num_draft_tokens=4, sampler=sampler, target=target,
                                  proposer=Spy(proposer, log), prompt_cache=cache, cached_tokens=n,
                                  stats=SpecStats())
        out = [r.token for r in gen]
        if cached:
            pc.put(key, CachedContext(list(prompt) + out, cache, proposer))
        outputs.append(out)
        proposals.append(log)
        reused.append(n)
    return outputs, proposals, reused


@pytest.mark.parametrize("strategy", ["lookup", "draft-model", "dspark", "dflash", "none"])
@pytest.mark.parametrize("temp", [0.0, 1.0])
def test_a_cached_prefix_changes_nothing_but_the_prefill(world, strategy, temp):
    model, tok, drafts = world
    draft = drafts.get(strategy)
    fresh, fresh_proposals, fresh_reused = run_turns(model, tok, strategy, draft, cached=False, temp=temp)
    got, proposals, reused = run_turns(model, tok, strategy, draft, cached=True, temp=temp)
    assert got == fresh
    assert proposals == fresh_proposals
    assert fresh_reused == [0] * 5
    prompts = list(conversation(tok)(got))
    first = len(prompts[0])
    assert reused[0] == 0
    assert reused[1] >= first + N - 2  # the first turn and (nearly all of) its answer
    assert reused[2] >= len(prompts[1]) + N - 2
    assert reused[3] == len(prompts[2]) - 1  # a regenerated prompt: all but its last token
    assert reused[4] == 12  # the edited conversation shares 12 tokens: the entry is rewound to them


def test_lookup_rewind_restores_exactly_the_index_of_the_prefix():
    history = [1, 2, 3, 1, 2, 4, 1, 2, 3, 5, 1, 2]
    grown = LookupProposer(3)
    grown._index(history, len(history))
    for n in range(len(history), -1, -1):
        fresh = LookupProposer(3)
        fresh._index(history, n)
        grown.rewind(n)
        assert grown.last_end == fresh.last_end and grown.indexed == fresh.indexed == n


def test_the_lru_keeps_the_budget_and_declines_what_it_cannot_rewind(world):
    model, tok, _ = world
    target = TargetAdapter(model)

    def entry(tokens):
        cache = target.make_cache()
        model(mx.array([tokens]), cache=cache)
        return CachedContext(list(tokens), cache, None)

    pc = PrefixCache(max_entries=2)
    for i in range(3):
        assert pc.put(("none",), entry([i, 7, 3, 4]))
    assert len(pc.entries) == 2 and pc.counters["evicted"] == 1
    assert pc.take(("none",), [0, 7, 3, 4, 5]) is None  # the oldest went first
    assert pc.take(("other",), [2, 7, 3, 4, 5]) is None  # another key never matches
    hit = pc.take(("none",), [2, 7, 3, 9])
    assert hit.reused == 3 and hit.tokens == [2, 7, 3] and hit.cache[0].offset == 3
    assert len(pc.entries) == 1  # taken: the caller owns it until it is put back
    small = PrefixCache(max_entries=4, max_bytes=1)
    assert not small.put(("none",), entry([1, 2, 3])) and not small.entries
    rotating = make_prompt_cache(model, max_kv_size=8)  # a sliding window: not cached
    model(mx.array([[1, 2, 3]]), cache=rotating)
    assert not pc.put(("none",), CachedContext([1, 2, 3], rotating, None))
