"""A DSpark run: a DeepSpec DSpark drafter checkpoint proposes blocks from the target's hidden states.

    python examples/dspark_run.py [TARGET_PATH DSPARK_PATH]

Without paths it writes a tiny random qwen3 target and a tiny DSpark checkpoint (offline, random
weights: expect low acceptance; the output is still exactly the target's greedy output).
"""

import sys

from mlx_lm import load

from mlx_specdec_plugin import SpecStats, stream_generate

if len(sys.argv) > 2:
    target_path, drafter_path = sys.argv[1], sys.argv[2]
else:
    from _tiny import tiny_dspark, tiny_target

    target_path = tiny_target()
    drafter_path = tiny_dspark(target_path)

model, tokenizer = load(str(target_path))
stats = SpecStats()
text = ""
for response in stream_generate(model, tokenizer, "def fib(n):", max_tokens=48, draft_model=str(drafter_path),
                                draft_strategy="dspark", stats=stats):
    text += response.text
print(repr(text))
print(stats.summary())
