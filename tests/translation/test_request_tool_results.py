"""Tool results become role:tool messages right after the tool calls, before the turn's other user content."""

from __future__ import annotations

from tests.translation.support import caps_make, claude_code_body, request_make
from translation.openai_chat import build_request
from translation.schemas import MessagesRequest

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}


def _turn(*user_blocks: dict) -> list[dict]:
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
        {"role": "user", "content": list(user_blocks)},
    ]


def test_claude_code_tool_result_follows_its_tool_call() -> None:
    raw = claude_code_body("03")
    body, _ = build_request(MessagesRequest.model_validate(raw), caps_make("vllm"), upstream_model="m")
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assistant, tool = body["messages"][2:]
    assert assistant["content"] == "I'll run a tool."
    assert assistant["tool_calls"][0]["id"] == "toolu_mock82852d1749194301"
    assert assistant["tool_calls"][0]["function"]["name"] == "Bash"
    assert tool == {"role": "tool", "tool_call_id": "toolu_mock82852d1749194301",
                    "content": "hello-from-mock-tool\n/home/dev/work"}


def test_user_text_in_a_tool_result_turn_comes_after_the_tool_messages() -> None:
    messages = _turn({"type": "text", "text": "before"},
                     {"type": "tool_result", "tool_use_id": "t1", "content": "result"},
                     {"type": "text", "text": "after"})
    body, _ = build_request(request_make(messages), caps_make(), upstream_model="m")
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "result"},
        {"role": "user", "content": "before\n\nafter"},
    ]


def test_claude_code_compact_request_orders_every_tool_turn() -> None:
    body, _ = build_request(MessagesRequest.model_validate(claude_code_body("18")), caps_make("vllm"), upstream_model="m")
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "tool", "user"]


def test_claude_code_error_result_is_prefixed_with_error() -> None:
    raw = claude_code_body("06")
    body, notes = build_request(MessagesRequest.model_validate(raw), caps_make("vllm"), upstream_model="m")
    tool = body["messages"][-1]
    assert tool["role"] == "tool"
    assert tool["content"] == "Error: " + raw["messages"][2]["content"][0]["content"]
    assert "tool_result.is_error" in [n.rule for n in notes]


def test_list_content_of_a_tool_result_is_joined_as_text() -> None:
    messages = _turn({"type": "tool_result", "tool_use_id": "t1",
                      "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})
    body, _ = build_request(request_make(messages), caps_make(), upstream_model="m")
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "a\nb"}


def test_images_in_a_tool_result_follow_as_a_user_message_after_the_tool_messages() -> None:
    messages = _turn({"type": "tool_result", "tool_use_id": "t1",
                      "content": [{"type": "text", "text": "screenshot:"}, IMAGE]},
                     {"type": "text", "text": "what do you see?"})
    body, notes = build_request(request_make(messages), caps_make(), upstream_model="m")
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "screenshot:"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
        {"role": "user", "content": "what do you see?"},
    ]
    assert "tool_result.media" in [n.rule for n in notes]
