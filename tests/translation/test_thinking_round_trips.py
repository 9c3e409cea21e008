"""Thinking round-trips: backend reasoning becomes thinking blocks, history thinking goes back as reasoning (headline #3)."""

from __future__ import annotations

import pytest

from tests.translation.support import caps_make, chunk, claude_code_body, request_make, stream_run
from translation.openai_chat import build_request, translate_response
from translation.schemas import MessagesRequest
from translation.signature import signature_read

HISTORY = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBreal"},
        {"type": "text", "text": "Hello"},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
    ]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_backend_reasoning_becomes_a_gateway_signed_thinking_block(field: str) -> None:
    body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {field: "Hmm.", "content": "Hi"}}]}
    message, _ = translate_response(body, caps_make(), request=request_make(), message_id="msg_1")
    thinking, text = message["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "Hmm."
    assert signature_read(thinking["signature"]) == {"src": "chat"}
    assert text == {"type": "text", "text": "Hi"}


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_streamed_reasoning_becomes_a_thinking_block_with_a_signature_before_its_stop(field: str) -> None:
    events, translator = stream_run([chunk({field: "Hm"}), chunk({field: "m."}), chunk({"content": "Hi"}),
                                     chunk(finish="stop")])
    kinds = [(e["type"], e.get("delta", {}).get("type")) for e in events[1:6]]
    assert kinds == [("content_block_start", None), ("content_block_delta", "thinking_delta"),
                     ("content_block_delta", "thinking_delta"), ("content_block_delta", "signature_delta"),
                     ("content_block_stop", None)]
    assert translator.message["content"][0]["thinking"] == "Hmm."


def test_vllm_deltas_with_both_reasoning_fields_are_not_doubled() -> None:
    _, translator = stream_run([chunk({"reasoning": "a", "reasoning_content": "a"}),
                                chunk({"reasoning": "b", "reasoning_content": "b", "content": None})])
    assert translator.message["content"][0]["thinking"] == "ab"


def test_reasoning_after_text_opens_a_new_thinking_block() -> None:
    _, translator = stream_run([chunk({"reasoning_content": "one"}), chunk({"content": "T"}),
                                chunk({"reasoning_content": "two"}), chunk({"content": "U"})])
    assert [b["type"] for b in translator.message["content"]] == ["thinking", "text", "thinking", "text"]


@pytest.mark.parametrize("preset, field", [("vllm", "reasoning"), ("sglang", "reasoning_content"),
                                           ("ollama", "reasoning"), ("deepseek", "reasoning_content")])
def test_history_thinking_goes_back_in_the_backends_reasoning_field(preset: str, field: str) -> None:
    body, _ = build_request(request_make(HISTORY), caps_make(preset), upstream_model="m")
    assistant = body["messages"][1]
    assert assistant[field] == "Let me think."
    assert assistant["content"] == "Hello"
    assert "thinking" not in str(assistant["content"])


def test_history_thinking_is_not_sent_when_the_backend_takes_no_reasoning_field() -> None:
    body, notes = build_request(request_make(HISTORY), caps_make("openai"), upstream_model="m")
    assert set(body["messages"][1]) == {"role", "content", "tool_calls"}
    assert "reasoning.not_replayed" in [n.rule for n in notes]


def test_claude_code_thinking_replay_reaches_vllm_as_reasoning() -> None:
    req = MessagesRequest.model_validate(claude_code_body("04"))
    body, _ = build_request(req, caps_make("vllm"), upstream_model="m")
    assistant = next(m for m in body["messages"] if m["role"] == "assistant")
    assert assistant["reasoning"] == "Let me think about this (mock thinking)."
    assert assistant["content"] == "I'll run a tool."
    assert assistant["tool_calls"][0]["id"] == "toolu_mock58464a81f09940f7"
