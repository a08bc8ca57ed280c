"""An ordinary mlx-lm script, switched to speculative decoding by changing one import.

    python examples/one_import_switch.py [MODEL_PATH]

Without MODEL_PATH it builds a tiny random model (so it runs anywhere, offline).
"""

import sys
import tempfile

from mlx_lm import load

# from mlx_lm import generate            # before
from mlx_specdec_plugin import generate  # after: same signature, plus speculative keywords

if len(sys.argv) > 1:
    path = sys.argv[1]
else:
    from mlx_specdec_plugin.testing.tiny import save_tiny_model

    path = str(save_tiny_model(tempfile.mkdtemp() + "/tiny", "llama", seed=1, sharpness=6))

model, tokenizer = load(path)
prompt = "the cat sat on the mat. the cat sat on the"
text = generate(model, tokenizer, prompt, max_tokens=48, verbose=True, draft_strategy="lookup")
