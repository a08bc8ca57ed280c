"""DFlash runs: a short verify block for chat, 16 (the checkpoint's block) for code.

    python examples/dflash_run.py [TARGET_PATH DFLASH_PATH]

``block_size`` is the verify width per round, anchor included: short blocks waste less compute
when acceptance is low (chat); long ones pay off on predictable text (code, math). Without paths
it writes a tiny random qwen3 target and a tiny z-lab DFlash checkpoint (offline).
"""

import sys

from mlx_lm import load

from mlx_specdec_plugin import SpecStats, stream_generate

if len(sys.argv) > 2:
    target_path, drafter_path = sys.argv[1], sys.argv[2]
else:
    from _tiny import tiny_dflash, tiny_target

    target_path = tiny_target()
    drafter_path = tiny_dflash(target_path)

model, tokenizer = load(str(target_path))
runs = [
    ("chat", "Tell me about the weather today.", 4),
    ("code", "def quicksort(xs):\n    if len(xs) < 2:\n        return xs\n", 16),
]
for kind, prompt, block in runs:
    if tokenizer.has_chat_template and kind == "chat":
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                               tokenize=False)
    stats = SpecStats()
    text = "".join(r.text for r in stream_generate(model, tokenizer, prompt, max_tokens=48, draft_model=str(drafter_path),
                                                   draft_strategy="dflash", block_size=block, stats=stats))
    print(f"[{kind}, block_size={block}] {text!r}")
    print(f"[{kind}, block_size={block}] {stats.summary()}")
