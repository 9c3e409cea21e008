"""Helpers shared by the translation tests.

They exist so each test reads as the behaviour it checks: build a request from a small dict,
load a real Claude Code capture, run chunks through the stream translator, and fold the events
with the real Anthropic SDK accumulator (the strictest client we can run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event

from translation.capabilities import Capabilities, capabilities_build
from translation.openai_chat import ChatStreamTranslator
from translation.schemas import MessagesRequest

CLAUDE_CODE_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude-code"


def claude_code_body(name: str) -> dict[str, Any]:
    """The request body of a recorded Claude Code request, e.g. ``claude_code_body("03")``."""
    (path,) = CLAUDE_CODE_FIXTURES.glob(f"{name}_*.json")
    body: dict[str, Any] = json.loads(path.read_text())["body"]
    return body


def request_make(messages: list[Any] | str = "hi", **fields: Any) -> MessagesRequest:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return MessagesRequest.model_validate({"model": "claude-test", "max_tokens": 100, "messages": messages, **fields})


def caps_make(preset: str = "generic", **overrides: Any) -> Capabilities:
    return capabilities_build(preset=preset, overrides=overrides)


def chunk(delta: dict[str, Any] | None = None, *, finish: str | None = None, index: int = 0,
          **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a single choice."""
    choice: dict[str, Any] = {"index": index, "delta": delta or {}, "finish_reason": finish, **extra}
    return {"object": "chat.completion.chunk", "choices": [choice]}


def usage_chunk(prompt: int = 10, completion: int = 5, **usage: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, **usage}}


def stream_run(chunks: list[dict[str, Any]], *, caps: Capabilities | None = None,
               request: MessagesRequest | None = None, message_id: str = "msg_test",
               estimate: int = 0) -> tuple[list[dict[str, Any]], ChatStreamTranslator]:
    translator = ChatStreamTranslator(caps or caps_make(), request=request or request_make(),
                                      message_id=message_id, input_tokens_estimate=estimate)
    events = translator.start()
    for c in chunks:
        events += translator.feed(c)
    events += translator.finish()
    return events, translator


def sdk_accumulate(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The message the Anthropic Python SDK builds from ``events`` (errors on bad streams)."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        if event["type"] in ("ping", "error"):
            continue
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    assert snapshot is not None
    return snapshot.to_dict(mode="json")


def non_text_deltas(events: list[dict[str, Any]]) -> list[str]:
    return [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"
            and e["delta"]["type"] != "text_delta"]
