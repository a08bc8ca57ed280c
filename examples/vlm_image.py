"""An mlx-vlm image prompt with speculative decoding: mlx-vlm's processor embeds the image, our loop
drives the language model.

    python examples/vlm_image.py [MODEL_PATH IMAGE_PATH [DRAFTER_PATH]]

Without paths it writes a tiny random Gemma-4 VLM and a PNG (offline) and drafts with prompt
lookup; with DRAFTER_PATH (a DSpark/DFlash checkpoint for the model) it uses that drafter. The
greedy output is checked against mlx_vlm.generate.
"""

import sys
import tempfile
from pathlib import Path

from mlx_vlm import generate as mlx_vlm_generate
from mlx_vlm import load
from mlx_vlm.prompt_utils import apply_chat_template

from mlx_specdec_plugin import SpecStats
from mlx_specdec_plugin.vlm import generate  # mlx_vlm.generate's signature, plus speculative keywords

if len(sys.argv) > 2:
    model_path, image = sys.argv[1], sys.argv[2]
    drafter = sys.argv[3] if len(sys.argv) > 3 else None
else:
    from mlx_specdec_plugin.testing.tiny_vlm import save_tiny_gemma4_vlm, write_png

    root = Path(tempfile.mkdtemp())
    model_path, image = save_tiny_gemma4_vlm(root / "gemma4", seed=1, sharpness=4.0), write_png(root / "img.png")
    drafter = None

model, processor = load(str(model_path))
prompt = apply_chat_template(processor, model.config, "Describe this image.", num_images=1)
stats = SpecStats()
result = generate(model, processor, prompt, image=[str(image)], max_tokens=32, temperature=0.0,
                  draft_model=drafter, draft_strategy=None if drafter else "lookup", stats=stats)
print(repr(result.text))
print(stats.summary())
plain = mlx_vlm_generate(model, processor, prompt, image=[str(image)], max_tokens=32, temperature=0.0)
print("identical to mlx_vlm.generate:", plain.token_ids == result.token_ids)
