"""Time to first token of a resent conversation, with and without the server's prefix cache.

    python docs/scripts/prefix_cache_ttft.py --model ~/.cache/mlx-specdec/models/smollm2-135m-instruct \
        --draft-model mlx_specdec_plugin/assets/smollm2-135m-instruct-dspark-4bit --repeats 3

Starts ``mlx-specdec server`` twice (``--prompt-cache-size 4`` and ``0``) on loopback. Turn 1 sends
a long first message (about ``--prompt-tokens`` tokens); turn 2 resends it with turn 1's answer and
a short new question, as a chat client does. TTFT is measured client-side (request sent to the first
streamed content delta); ``cached_tokens`` comes from the final usage chunk. Prints one JSON line
per configuration with the medians, and the ratio turn 2 / turn 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tools/ (the repository root)
from tools.server_load import ServerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def document(chars: int) -> str:
    text = (ROOT / "README.md").read_text() + (ROOT / "docs" / "benchmarks.md").read_text()
    while len(text) < chars:
        text += text
    return text[:chars]


def stream(port: int, body: dict):
    """``(ttft seconds, text, usage)`` of one streamed chat completion."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=json.dumps({**body, "stream": True,
                                                               "stream_options": {"include_usage": True}}),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    ttft, text, usage = None, "", None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        for c in event.get("choices", []):
            piece = c.get("delta", {}).get("content")
            if piece:
                ttft = ttft if ttft is not None else time.perf_counter() - t0
                text += piece
        usage = event.get("usage") or usage
    conn.close()
    return ttft, text, usage


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--draft-model", default=None)
    p.add_argument("--prompt-tokens", type=int, default=2000, help="rough size of the first message")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    extra = ["--draft-model", args.draft_model] if args.draft_model else ["--draft-strategy", "lookup"]
    doc = document(args.prompt_tokens * 4)
    answers = {}
    for size in ("4", "0"):
        with ServerProcess(args.model, *extra, "--prompt-cache-size", size, "--max-tokens", str(args.max_tokens)) as s:
            rows = []
            for r in range(args.repeats):
                messages = [{"role": "user", "content": f"[{r}] Summarise this document in one line.\n\n{doc}"}]
                t1, a1, u1 = stream(s.port, {"messages": messages})
                messages += [{"role": "assistant", "content": a1}, {"role": "user", "content": "Shorter, please."}]
                t2, a2, u2 = stream(s.port, {"messages": messages})
                rows.append((t1, t2, u1["prompt_tokens"], u2["prompt_tokens"],
                             u2.get("prompt_tokens_details", {}).get("cached_tokens", 0)))
                answers.setdefault(r, []).append((a1, a2))
            t1 = statistics.median(x[0] for x in rows)
            t2 = statistics.median(x[1] for x in rows)
            print(json.dumps({"prompt_cache_size": int(size), "turn1_prompt_tokens": rows[0][2],
                              "turn2_prompt_tokens": rows[0][3], "turn2_cached_tokens": rows[0][4],
                              "ttft_turn1_s": round(t1, 3), "ttft_turn2_s": round(t2, 3),
                              "ratio": round(t2 / t1, 3), "strategy": "draft" if args.draft_model else "lookup"}),
                  flush=True)
    same = all(a[0] == a[1] for a in answers.values())
    print(json.dumps({"answers_identical_with_and_without_cache": same}))


if __name__ == "__main__":
    main()
