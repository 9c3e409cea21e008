"""What each backend kind does with the 2026 request fields (README, "2026 request fields"):
native Anthropic backends get them as sent; the OpenAI-style kinds translate what has an
equivalent and drop the rest with a note, never silently and never as a backend 400."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.translation.support import caps_make
from translation import anthropic, openai_chat, openai_responses
from translation.notes import RewriteNote
from translation.schemas import MessagesRequest, messages_request_parse

Builder = Callable[[MessagesRequest], tuple[dict[str, Any], list[RewriteNote]]]

KINDS: dict[str, Builder] = {
    "openai_chat": lambda req: openai_chat.build_request(req, caps_make("vllm"), upstream_model="m"),
    "openai_responses": lambda req: openai_responses.build_request(req, caps_make("openai-responses"),
                                                                   upstream_model="m"),
    "anthropic": lambda req: anthropic.build_request(req, caps_make("anthropic"), upstream_model="m"),
}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
WEB_SEARCH = {"type": "web_search_20260209", "name": "web_search", "max_uses": 3}
MCP = [{"type": "url", "url": "https://mcp.example.test/sse", "name": "wiki", "authorization_token": "t"}]
EDITS = {"edits": [{"type": "clear_tool_uses_20250919"}]}


def req(**fields: Any) -> MessagesRequest:
    return messages_request_parse(json.dumps({"model": "claude-x", "max_tokens": 2048,
                                              "messages": [{"role": "user", "content": "Hi"}], **fields}))


def notes_on(notes: list[RewriteNote], path: str) -> list[str]:
    return [n.rule for n in notes if path in n.path.split(",")]


# -- native Anthropic: every 2026 field as the client sent it ---------------------------------------


@pytest.mark.parametrize("fields", [
    {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "xhigh"}},
    {"thinking": {"type": "adaptive", "display": "omitted"}},
    {"thinking": {"type": "between_tools"}},
    {"context_management": EDITS},
    {"tools": [WEB_SEARCH, {"type": "code_execution_20250825", "name": "code_execution"}]},
    {"container": "container_011CUabc"},
    {"mcp_servers": MCP},
])
def test_a_native_backend_gets_each_2026_field_as_sent(fields: dict[str, Any]) -> None:
    body, notes = KINDS["anthropic"](req(**fields))
    for name, value in fields.items():
        assert body[name] == value
    assert notes == []


# -- OpenAI-style kinds -------------------------------------------------------------------------------


def test_structured_output_is_translated_for_both_openai_kinds() -> None:
    chat, _ = KINDS["openai_chat"](req(output_config={"format": {"type": "json_schema", "schema": SCHEMA}}))
    assert chat["response_format"]["json_schema"]["schema"] == SCHEMA
    responses, _ = KINDS["openai_responses"](req(output_config={"format": {"type": "json_schema", "schema": SCHEMA}}))
    assert responses["text"]["format"] == {"type": "json_schema", "name": "output", "schema": SCHEMA, "strict": True}


def test_effort_is_translated_to_each_kinds_reasoning_knob() -> None:
    chat, _ = openai_chat.build_request(req(output_config={"effort": "xhigh"}, thinking={"type": "adaptive"}),
                                        caps_make("ollama"), upstream_model="m")
    assert chat["reasoning_effort"] == "high"
    responses, _ = KINDS["openai_responses"](req(output_config={"effort": "low"}, thinking={"type": "adaptive"}))
    assert responses["reasoning"]["effort"] == "low"


def test_thinking_display_omitted_asks_a_responses_backend_for_no_summary() -> None:
    shown, _ = KINDS["openai_responses"](req(thinking={"type": "adaptive"}, output_config={"effort": "low"}))
    omitted, notes = KINDS["openai_responses"](req(thinking={"type": "adaptive", "display": "omitted"},
                                                   output_config={"effort": "low"}))
    assert "summary" in shown["reasoning"]
    assert omitted["reasoning"] == {"effort": "low"}
    assert "thinking.display_omitted" in notes_on(notes, "thinking.display")


def test_thinking_between_tools_turns_thinking_on_for_an_openai_backend() -> None:
    body, _ = KINDS["openai_chat"](req(thinking={"type": "between_tools"}))
    assert body["chat_template_kwargs"]["enable_thinking"] is True


@pytest.mark.parametrize("kind", ["openai_chat", "openai_responses"])
@pytest.mark.parametrize(("name", "value"), [
    ("context_management", EDITS), ("container", "container_011CUabc"), ("mcp_servers", MCP),
])
def test_fields_without_an_openai_equivalent_are_dropped_with_a_note(kind: str, name: str, value: Any) -> None:
    body, notes = KINDS[kind](req(**{name: value}))
    assert name not in body
    assert notes_on(notes, name) == ["fields.drop"]


@pytest.mark.parametrize("kind", ["openai_chat", "openai_responses"])
def test_server_tools_are_dropped_with_a_note_and_client_tools_kept(kind: str) -> None:
    client_tool = {"name": "ls", "input_schema": {"type": "object", "properties": {}}}
    body, notes = KINDS[kind](req(tools=[WEB_SEARCH, client_tool]))
    names = [t.get("name") or t.get("function", {}).get("name") for t in body["tools"]]
    assert names == ["ls"]
    assert notes_on(notes, "tools[0]") == ["tools.drop_server_tool"]


def test_a_responses_tool_choice_naming_a_dropped_server_tool_is_dropped_too() -> None:
    client_tool = {"name": "ls", "input_schema": {"type": "object", "properties": {}}}
    body, notes = KINDS["openai_responses"](req(tools=[WEB_SEARCH, client_tool],
                                                tool_choice={"type": "tool", "name": "web_search"}))
    assert "tool_choice" not in body
    assert "tool_choice.drop" in notes_on(notes, "tool_choice")
