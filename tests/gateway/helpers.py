"""Small builders shared by the API tests: OpenAI-shaped upstream answers."""

from __future__ import annotations

import json
from typing import Any

import httpx


def chat_completion(content: str = "Hello!", **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "Qwen/Qwen3-8B",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message},
                     "finish_reason": message.pop("finish_reason", "stop") if "finish_reason" in message else "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def sse_chunks(deltas: list[dict[str, Any]], finish: str = "stop", usage: bool = True) -> bytes:
    """Render deltas as an OpenAI chat.completion.chunk stream ending in [DONE]."""
    out = []
    for delta in deltas:
        out.append({"id": "c1", "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "finish_reason": None}]})
    out.append({"id": "c1", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage:
        out.append({"id": "c1", "object": "chat.completion.chunk", "choices": [],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in out) + "data: [DONE]\n\n"
    return text.encode()


def sse_response(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "text/event-stream"})


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of an Anthropic SSE stream."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = "", ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        events.append((name, json.loads(data)))
    return events


def user_request(**extra: Any) -> dict[str, Any]:
    return {"model": "test-model", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}], **extra}
