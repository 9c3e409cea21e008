"""``"tool_calls": []`` next to content is text, never a tool call (headline #2, vLLM)."""

from __future__ import annotations

from tests.translation.support import caps_make, chunk, request_make, stream_run, usage_chunk
from translation.openai_chat import translate_response
from translation.validate import stream_validate


def test_content_with_empty_tool_calls_streams_as_a_text_delta_only() -> None:
    events, translator = stream_run([
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "1\n", "tool_calls": []}),
        chunk({"content": "2", "tool_calls": []}),
        chunk({"tool_calls": []}, finish="stop"),
        usage_chunk(),
    ], caps=caps_make("vllm"))
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == [{"type": "text_delta", "text": "1\n"}, {"type": "text_delta", "text": "2"}]
    assert not any(e.get("content_block", {}).get("type") == "tool_use" for e in events)
    assert translator.stop_reason == "end_turn"
    assert stream_validate(events) is None


def test_content_with_empty_tool_calls_translates_to_text_when_not_streamed() -> None:
    body = {"choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "1\n", "tool_calls": []}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    message, _ = translate_response(body, caps_make("vllm"), request=request_make(), message_id="msg_1")
    assert message["content"] == [{"type": "text", "text": "1\n"}]
    assert message["stop_reason"] == "end_turn"


def test_finish_reason_tool_calls_without_any_call_is_end_turn() -> None:
    _, translator = stream_run([chunk({"content": "done", "tool_calls": []}, finish="tool_calls")])
    assert translator.stop_reason == "end_turn"
    body = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"content": "done", "tool_calls": []}}]}
    message, _ = translate_response(body, caps_make(), request=request_make(), message_id="msg_1")
    assert message["stop_reason"] == "end_turn"
