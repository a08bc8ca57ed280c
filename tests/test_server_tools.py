"""Spec: tool calls through ``mlx-specdec server`` with the official ``openai`` client.

The model (``tool_model``) answers every chat with one scripted call in its template's format; the
server renders ``tools`` through the chat template, parses the call with the tokenizer's own
parser (mlx-lm's, inferred from the template) into OpenAI ``tool_calls`` with
``finish_reason: "tool_calls"``, streaming or not, under speculation or not, and a client can send
the call and its result back for the next turn.
"""

import json

import pytest

from mlx_specdec_plugin.server.protocol import ToolCallSplitter
from tools.server_load import ServerProcess
from tool_model import CALL, PIECES, save_tool_model

openai = pytest.importorskip("openai")

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
ASK = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    path = save_tool_model(tmp_path_factory.mktemp("tools") / "tool-model")
    with ServerProcess(str(path), "--draft-strategy", "lookup", "--max-tokens", "16") as s:
        yield openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.mark.parametrize("strategy", ["lookup", "none"])
def test_a_tool_call_is_parsed_streaming_or_not_and_the_conversation_continues(client, strategy):
    extra = {"draft_strategy": strategy}
    r = client.chat.completions.create(model="tool-model", messages=ASK, tools=TOOLS, extra_body=extra)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id and call.function.name == CALL["name"]
    assert json.loads(call.function.arguments) == CALL["arguments"]

    chunks = list(client.chat.completions.create(model="tool-model", messages=ASK, tools=TOOLS, stream=True,
                                                 extra_body=extra))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [d.index for d in deltas] == [0] and deltas[0].function.name == CALL["name"]
    assert json.loads(deltas[0].function.arguments) == CALL["arguments"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]

    followup = ASK + [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                      {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    again = client.chat.completions.create(model="tool-model", messages=followup, tools=TOOLS, extra_body=extra)
    assert again.choices[0].finish_reason == "tool_calls"
    assert again.usage.prompt_tokens > r.usage.prompt_tokens


def test_without_tools_the_markup_is_plain_text(client):
    r = client.chat.completions.create(model="tool-model", messages=ASK)
    assert r.choices[0].message.content == "".join(PIECES) and not r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "stop"


def test_the_splitter_holds_back_split_markers_and_keeps_what_it_cannot_parse():
    s = ToolCallSplitter("<tc>", "</tc>", json.loads)
    out, calls = [], []
    for piece in ["hi <", "t", "c>{\"name\": \"f\", \"argu", "ments\": {\"x\": 1}}</t", "c> bye <tc>{oops}</tc>", " <t"]:
        text, got = s.feed(piece)
        out.append(text)
        calls += got
    text, got = s.flush()
    out.append(text)
    calls += got
    assert "".join(out) == "hi  bye <tc>{oops}</tc> <t"
    assert [(c["index"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [(0, "f", {"x": 1})]
    s = ToolCallSplitter("<tc>", "</tc>", json.loads)
    assert s.feed("<tc>{\"name\": \"g\"}") == ("", [])
    text, calls = s.flush()  # cut by max_tokens before the end marker: parsed if it can be
    assert text == "" and calls[0]["function"]["name"] == "g"
