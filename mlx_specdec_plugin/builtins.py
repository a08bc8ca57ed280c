"""The built-in strategies and acceptors, registered through our own entry point."""

from .acceptors import block, greedy, match, rejection
from .acceptors import tree as tree_acceptor
from .contract import AcceptorSpec, Strategy
from .hookspecs import hookimpl
from .strategies import assistant, dflash, dflash2, draft_model, dspark, eagle3, lookup, mtp
from .strategies import tree


@hookimpl
def register_strategies(register):
    register(
        Strategy(
            "draft-model",
            draft_model.build,
            "a small mlx-lm model with the target's tokenizer drafts autoregressively",
            claims=draft_model.is_mlx_lm_model,
            needs_draft=True,
        )
    )
    register(Strategy("lookup", lookup.build, "prompt lookup: continue an earlier n-gram match (no weights)",
                      options=lookup.OPTIONS))
    register(
        Strategy(
            "dspark",
            dspark.build,
            "DSpark (DeepSpec): parallel block drafter on target hidden states + Markov head",
            claims=dspark.claims,
            needs_draft=True,
            options=dspark.OPTIONS,
        )
    )
    register(
        Strategy(
            "dflash",
            dflash.build,
            "DFlash (z-lab): block-diffusion drafter on target hidden states, one pass per block",
            claims=dflash.claims,
            needs_draft=True,
        )
    )
    register(
        Strategy(
            "dflash2",
            dflash2.build,
            "DFlash2: DFlash with dynamic causal convolutions and a top-k candidate selector",
            claims=dflash2.claims,
            needs_draft=True,
        )
    )
    register(
        Strategy(
            "eagle3",
            eagle3.build,
            "EAGLE-3: one-layer head on fused low/mid/high target features, own draft vocabulary",
            claims=eagle3.claims,
            needs_draft=True,
        )
    )
    register(
        Strategy(
            "mtp",
            mtp.build,
            "the target's own multi-token-prediction heads (Qwen3.5/Qwen3-Next mtp.*; DeepSeek-V3/V3.2, "
            "Kimi-K2, GLM-5, GLM-4.7-Flash model.layers.{N}.*), read from its folder",
            claims=mtp.claims,
            needs_draft=True,
        )
    )
    register(
        Strategy(
            "assistant",
            assistant.build,
            "Gemma-4's assistant drafter (gemma4_assistant): query-only layers over the target's own keys/values",
            claims=assistant.claims,
            needs_draft=True,
        )
    )
    register(
        Strategy(
            "tree",
            tree.build,
            "a best-first draft tree (DDTree) from one DSpark/DFlash pass, or a draft model's top-k tree "
            "(one forward per depth), verified in one forward",
            needs_draft=True,
            options=tree.OPTIONS,
        )
    )


@hookimpl
def register_acceptors(register):
    register(AcceptorSpec("greedy", greedy.accept, "keep drafts equal to the target argmax", greedy_only=True))
    register(
        AcceptorSpec(
            "rejection",
            rejection.accept,
            "speculative sampling: keep with min(1, p/q), resample the residual",
            needs_distribution=True,
            needs_q=True,
        )
    )
    register(
        AcceptorSpec(
            "block",
            block.accept,
            "block verification (Sun et al. 2025): joint acceptance, never below rejection",
            needs_distribution=True,
            needs_q=True,
        )
    )
    register(
        AcceptorSpec(
            "tree",
            tree_acceptor.accept,
            "recursive rejection over siblings (SpecInfer; Jeon et al. 2024), any tree; greedy path at T=0",
            needs_distribution=True,
            needs_q=True,
            trees=True,
        )
    )
    register(AcceptorSpec("match", match.accept, "upstream's rule: keep drafts equal to the target's own draws"))
