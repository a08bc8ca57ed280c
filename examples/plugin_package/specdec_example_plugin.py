"""A third-party drafter registered through mlx-specdec's entry point: ``repeat-last`` proposes the
last token ``n`` times (a point-mass proposal, so every acceptor stays exact).

    pip install -e examples/plugin_package      # registers the strategy
    mlx-specdec strategies                      # lists 'repeat-last' with this package
    python -m specdec_example_plugin            # a run on a tiny random model
"""

import mlx.core as mx

from mlx_specdec_plugin import Draft, Strategy, hookimpl


class RepeatLastProposer:
    tap_layers = ()  # no target hidden states needed

    def extend(self, tokens, hidden):
        pass  # stateless: the context's history is all it reads

    def propose(self, ctx, n):
        return Draft(mx.array([ctx.pending] * n, dtype=mx.uint32), None, deterministic=True)


@hookimpl
def register_strategies(register):
    register(Strategy("repeat-last", lambda target, draft, options: RepeatLastProposer(),
                      "example plugin: propose the last token again"))


if __name__ == "__main__":
    import sys
    import tempfile

    from mlx_lm import load

    from mlx_specdec_plugin import SpecStats, generate
    from mlx_specdec_plugin.testing.tiny import save_tiny_model

    path = sys.argv[1] if len(sys.argv) > 1 else str(save_tiny_model(tempfile.mkdtemp() + "/t", "llama", seed=1, sharpness=6))
    model, tokenizer = load(path)
    stats = SpecStats()
    text = generate(model, tokenizer, "aaaa bbbb aaaa", max_tokens=32, draft_strategy="repeat-last", stats=stats)
    print(repr(text))
    print(stats.summary())
