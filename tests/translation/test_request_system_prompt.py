"""The system prompt: one leading system message; billing header stripped; mid-conversation system messages per capability."""

from __future__ import annotations

import pytest

from tests.translation.support import caps_make, claude_code_body, request_make
from translation.errors import ApiError
from translation.openai_chat import build_request
from translation.schemas import MessagesRequest

MID_SYSTEM = [{"role": "user", "content": "hi"}, {"role": "system", "content": "Be brief."},
              {"role": "user", "content": "more"}]


def test_a_string_system_prompt_becomes_the_leading_system_message() -> None:
    body, _ = build_request(request_make(system="You are terse."), caps_make(), upstream_model="m")
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}


def test_system_blocks_are_joined_with_blank_lines() -> None:
    req = request_make(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}])
    body, _ = build_request(req, caps_make(), upstream_model="m")
    assert body["messages"][0] == {"role": "system", "content": "A\n\nB"}


def test_claude_code_billing_header_block_is_stripped() -> None:
    req = MessagesRequest.model_validate(claude_code_body("02"))
    body, notes = build_request(req, caps_make("vllm"), upstream_model="m")
    system = body["messages"][0]
    assert system["role"] == "system"
    assert "x-anthropic-billing-header" not in system["content"]
    assert system["content"].startswith("You are a Claude agent")
    assert ("system.strip_billing_header", "system[0]") in [(n.rule, n.path) for n in notes]


def test_billing_header_is_kept_when_the_capability_says_so() -> None:
    req = MessagesRequest.model_validate(claude_code_body("02"))
    body, _ = build_request(req, caps_make(strip_billing_header=False), upstream_model="m")
    assert body["messages"][0]["content"].startswith("x-anthropic-billing-header:")


@pytest.mark.parametrize("fixture", ["10", "11"])
def test_claude_code_mid_conversation_system_message_is_hoisted(fixture: str) -> None:
    raw = claude_code_body(fixture)
    req = MessagesRequest.model_validate(raw)
    body, notes = build_request(req, caps_make("vllm"), upstream_model="m")
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"]
    assert body["messages"][0]["content"].endswith(raw["messages"][1]["content"])
    assert ("system_messages.hoist", "messages[1]") in [(n.rule, n.path) for n in notes]


def test_mid_conversation_system_message_is_kept_in_place_when_the_capability_says_keep() -> None:
    body, _ = build_request(request_make(MID_SYSTEM), caps_make(system_messages="keep"), upstream_model="m")
    assert body["messages"] == [{"role": "user", "content": "hi"}, {"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "more"}]


def test_mid_conversation_system_message_is_rejected_with_the_message_claude_code_retries_on() -> None:
    with pytest.raises(ApiError) as exc:
        build_request(request_make(MID_SYSTEM), caps_make(system_messages="reject"), upstream_model="m")
    assert exc.value.status == 400
    assert "Unexpected role" in exc.value.message and "input message role" in exc.value.message
