"""A tiny model that answers every chat with one scripted tool call (for the server's tool tests).

Byte tokenizer plus three whole-piece tokens (``<tool_call>``, the call's JSON, ``</tool_call>``).
The model is a bigram table: attention and MLP outputs are zero, so the logits depend on the
current token only, and ``lm_head`` maps ``" "`` (the generation prompt's last byte) to
``<tool_call>``, then to the JSON, to ``</tool_call>`` and to ``</s>``. Its chat template names
``<tool_call>`` and ``tool_call.name``, so mlx-lm infers its ``json_tools`` parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx

from mlx_specdec_plugin.testing.tiny import BOS_ID, BYTE_VOCAB, EOS_ID, byte_tokenizer_json, make_tiny_model, save_model, tiny_config

CALL = {"name": "get_weather", "arguments": {"city": "Oslo"}}
PIECES = ["<tool_call>", json.dumps(CALL), "</tool_call>"]
TEMPLATE = (
    "{% if tools %}<s>tools: {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}"
    "{% for tool_call in m.get('tool_calls') or [] %}<tool_call>{{ tool_call.name }}</tool_call>{% endfor %}\n"
    "{% endfor %}{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def save_tool_model(path: Path, seed: int = 0) -> Path:
    ids = [BYTE_VOCAB + i for i in range(len(PIECES))]
    config = tiny_config("llama", vocab_size=BYTE_VOCAB + len(PIECES), hidden_size=64, num_hidden_layers=1,
                         bos_token_id=BOS_ID, eos_token_id=EOS_ID)
    model = make_tiny_model(config, seed)
    V, H = config["vocab_size"], config["hidden_size"]
    layer = model.model.layers[0]
    layer.self_attn.o_proj.weight = mx.zeros_like(layer.self_attn.o_proj.weight)
    layer.mlp.down_proj.weight = mx.zeros_like(layer.mlp.down_proj.weight)
    embed = mx.random.normal((V, H), key=mx.random.key(seed))
    embed = embed / mx.linalg.norm(embed, axis=-1, keepdims=True)
    successor = {ord(" "): ids[0], ids[0]: ids[1], ids[1]: ids[2], ids[2]: EOS_ID}
    rows = [embed[EOS_ID] * 0 for _ in range(V)]
    for src, dst in successor.items():
        rows[dst] = embed[src] * 40.0  # logit of dst is large exactly when the current token is src
    model.model.embed_tokens.weight = embed
    model.lm_head.weight = mx.stack(rows)
    mx.eval(model.parameters())
    save_model(path, model, config, tokenizer=False)
    tok = byte_tokenizer_json()
    for i, piece in zip(ids, PIECES):
        tok["added_tokens"].append({"id": i, "content": piece, "single_word": False, "lstrip": False,
                                    "rstrip": False, "normalized": False, "special": False})
    (Path(path) / "tokenizer.json").write_text(json.dumps(tok))
    (Path(path) / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "add_bos_token": False, "chat_template": TEMPLATE}))
    return Path(path)
