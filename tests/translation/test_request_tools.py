"""Tools and tool_choice map to Chat Completions functions; server tools are dropped; never tools: []."""

from __future__ import annotations

from typing import Any

import pytest

from tests.translation.support import caps_make, claude_code_body, request_make
from translation.openai_chat import build_request
from translation.schemas import MessagesRequest

TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {
    "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
    "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}


def test_claude_code_tools_are_all_kept_with_their_schemas_intact() -> None:
    raw = claude_code_body("02")
    body, _ = build_request(MessagesRequest.model_validate(raw), caps_make("vllm"), upstream_model="m")
    assert len(body["tools"]) == 24
    for sent, original in zip(body["tools"], raw["tools"], strict=True):
        assert sent["type"] == "function"
        assert sent["function"]["name"] == original["name"]
        assert sent["function"]["parameters"] == original["input_schema"]
        assert sent["function"]["description"] == original["description"]


def test_a_tool_becomes_a_function_with_its_schema_untouched() -> None:
    body, _ = build_request(request_make(tools=[TOOL]), caps_make(), upstream_model="m")
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather", "parameters": TOOL["input_schema"]}}]


@pytest.mark.parametrize("choice, expected", [
    ({"type": "auto"}, "auto"),
    ({"type": "any"}, "required"),
    ({"type": "none"}, "none"),
    ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
])
def test_tool_choice_maps_to_the_chat_equivalent(choice: dict[str, Any], expected: Any) -> None:
    body, _ = build_request(request_make(tools=[TOOL], tool_choice=choice), caps_make(), upstream_model="m")
    assert body["tool_choice"] == expected
    assert "parallel_tool_calls" not in body


def test_disable_parallel_tool_use_sets_parallel_tool_calls_false() -> None:
    req = request_make(tools=[TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    body, _ = build_request(req, caps_make(), upstream_model="m")
    assert body["parallel_tool_calls"] is False


def test_server_tools_are_dropped_with_a_note() -> None:
    body, notes = build_request(request_make(tools=[TOOL, WEB_SEARCH]), caps_make(), upstream_model="m")
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    assert ("tools.drop_server_tool", "tools[1]") in [(n.rule, n.path) for n in notes]


def test_no_tools_means_no_tools_key_and_no_tool_choice() -> None:
    req = request_make(tools=[WEB_SEARCH], tool_choice={"type": "any", "disable_parallel_tool_use": True})
    body, notes = build_request(req, caps_make(), upstream_model="m")
    assert "tools" not in body and "tool_choice" not in body and "parallel_tool_calls" not in body
    assert "tool_choice.drop" in [n.rule for n in notes]
    body, _ = build_request(request_make(tools=[]), caps_make(), upstream_model="m")
    assert "tools" not in body


def test_tool_use_history_becomes_tool_calls_with_ids_and_names_byte_for_byte() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_01A-b_c", "name": "mcp__fs__read_file", "input": {"path": "/ä", "n": 1}},
            {"type": "tool_use", "id": "toolu_02", "name": "Write", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A-b_c", "content": "x"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": "ok"}]},
    ]
    body, _ = build_request(request_make(messages), caps_make(), upstream_model="m")
    assistant = body["messages"][1]
    assert assistant == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "toolu_01A-b_c", "type": "function",
         "function": {"name": "mcp__fs__read_file", "arguments": '{"path":"/ä","n":1}'}},
        {"id": "toolu_02", "type": "function", "function": {"name": "Write", "arguments": "{}"}}]}
    assert [m.get("tool_call_id") for m in body["messages"][2:]] == ["toolu_01A-b_c", "toolu_02"]
