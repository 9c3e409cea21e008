"""Anthropic requests become exact Responses API bodies, each rewrite with its note (openai-python response_create_params.py)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from tests.translation.support import caps_make, claude_code_body, request_make
from translation.errors import ApiError
from translation.openai_responses import build_request
from translation.openai_responses.common import (
    call_id_from_tool_id,
    reasoning_signature,
    tool_id_from_call_id,
)
from translation.prefill import PREFILL_REWRITE_INSTRUCTION
from translation.schemas import MessagesRequest

STATELESS = {"store": False, "include": ["reasoning.encrypted_content"]}


def build(req: MessagesRequest, **caps: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    body, notes = build_request(req, caps_make(**caps), upstream_model="gpt-test", backend_name="oai")
    return body, [(n.rule, n.path) for n in notes]


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def test_a_plain_request_is_a_stateless_responses_body() -> None:
    body, notes = build(request_make("hi", system="Be brief.", temperature=0.5, stream=True))
    assert body == {"model": "gpt-test", "instructions": "Be brief.", "input": [user("hi")],
                    "max_output_tokens": 100, "temperature": 0.5, **STATELESS, "stream": True}
    assert notes == []


def test_stateless_off_sends_neither_store_nor_include() -> None:
    body, _ = build(request_make("hi"), stateless=False)
    assert body == {"model": "gpt-test", "input": [user("hi")], "max_output_tokens": 100}


def test_system_blocks_become_instructions_without_the_billing_header() -> None:
    req = request_make("hi", system=[{"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
                                     {"type": "text", "text": "A"}, {"type": "text", "text": "B"}])
    body, notes = build(req)
    assert body["instructions"] == "A\n\nB"
    assert notes == [("system.strip_billing_header", "system[0]")]


def test_a_mid_conversation_system_message_is_hoisted_or_kept_or_rejected() -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "again"}]
    body, notes = build(request_make(messages, system="S"))
    assert body["instructions"] == "S\n\nBe terse." and body["input"] == [user("hi"), user("again")]
    assert notes == [("system_messages.hoist", "messages[1]")]
    body, _ = build(request_make(messages), system_messages="keep")
    assert body["input"][1] == {"type": "message", "role": "system",
                                "content": [{"type": "input_text", "text": "Be terse."}]}
    with pytest.raises(ApiError, match="Unexpected role"):
        build(request_make(messages), system_messages="reject")


def test_images_and_documents_become_input_parts() -> None:
    req = request_make([{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
        {"type": "document", "title": "r.pdf", "source": {"type": "base64", "media_type": "application/pdf",
                                                           "data": "JVBE"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
    ]}])
    body, notes = build(req)
    assert body["input"] == [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
        {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"},
        {"type": "input_file", "filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBE"},
        {"type": "input_text", "text": "plain"},
    ]}]
    assert notes == [("document.flatten", "messages[0].content[4]")]
    body, notes = build(req, images="placeholder")
    assert body["input"][0]["content"][1]["type"] == "input_text"
    assert ("image.placeholder", "messages[0].content[1]") in notes


TOOL_TURN = [
    {"role": "user", "content": "list files"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Sure."},
        {"type": "tool_use", "id": "call_abc", "name": "Bash", "input": {"command": "ls"}},
        {"type": "tool_use", "id": "call_def", "name": "Read", "input": {"path": "a"}},
    ]},
    {"role": "user", "content": [
        {"type": "text", "text": "both done"},
        {"type": "tool_result", "tool_use_id": "call_abc", "content": "a.txt"},
        {"type": "tool_result", "tool_use_id": "call_def", "is_error": True,
         "content": [{"type": "text", "text": "no such file"}]},
    ]},
]


def test_tool_use_and_tool_results_become_function_call_items_with_is_error_carried() -> None:
    body, notes = build(request_make(TOOL_TURN))
    assert body["input"] == [
        user("list files"),
        assistant("Sure."),
        {"type": "function_call", "call_id": "call_abc", "name": "Bash", "arguments": '{"command":"ls"}'},
        {"type": "function_call", "call_id": "call_def", "name": "Read", "arguments": '{"path":"a"}'},
        {"type": "function_call_output", "call_id": "call_abc", "output": "a.txt"},
        {"type": "function_call_output", "call_id": "call_def", "output": "Error: no such file"},
        user("both done"),
    ]
    assert notes == [("tool_result.is_error", "messages[2].content[2]")]


def test_a_call_id_anthropic_rejects_goes_back_to_the_backend_as_it_came() -> None:
    original = "functions.Bash:0"
    tool_id = tool_id_from_call_id(original, message_id="msg_1", ordinal=0, used=set())
    assert tool_id == "toolu_dgmb64_" + base64.urlsafe_b64encode(original.encode()).decode().rstrip("=")
    assert call_id_from_tool_id(tool_id) == original
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "Bash", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "ok"}]}]
    body, _ = build(request_make(messages))
    assert [i.get("call_id") for i in body["input"]] == [None, original, original]


def test_tools_are_flat_function_tools_and_never_strict_unless_asked() -> None:
    req = request_make("hi", tools=[
        {"name": "Bash", "description": "Run", "input_schema": {"type": "object", "properties": {"c": {}}}},
        {"name": "Strict", "input_schema": {"type": "object"}, "strict": True},
        {"type": "web_search_20250305", "name": "web_search"},
    ], tool_choice={"type": "any", "disable_parallel_tool_use": True})
    body, notes = build(req)
    assert body["tools"] == [
        {"type": "function", "name": "Bash", "description": "Run",
         "parameters": {"type": "object", "properties": {"c": {}}}, "strict": False},
        {"type": "function", "name": "Strict", "parameters": {"type": "object"}, "strict": True},
    ]
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert notes == [("tools.drop_server_tool", "tools[2]")]


@pytest.mark.parametrize(("choice", "support", "expected", "rule"), [
    ({"type": "auto"}, "full", "auto", None),
    ({"type": "none"}, "full", "none", None),
    ({"type": "tool", "name": "Bash"}, "full", {"type": "function", "name": "Bash"}, None),
    ({"type": "any"}, "no_required", "auto", "tool_choice.any_to_auto"),
    ({"type": "any"}, "omit", None, "tool_choice.drop"),
])
def test_tool_choice_maps_per_capability(choice: dict[str, Any], support: str, expected: Any,
                                         rule: str | None) -> None:
    req = request_make("hi", tools=[{"name": "Bash", "input_schema": {"type": "object"}}], tool_choice=choice)
    body, notes = build(req, tool_choice=support)
    assert body.get("tool_choice") == expected
    assert [r for r, _ in notes] == ([rule] if rule else [])


def test_max_tokens_is_max_output_tokens_clamped_to_the_cap() -> None:
    body, notes = build(request_make("hi", max_tokens=32000), max_tokens_cap=8192)
    assert body["max_output_tokens"] == 8192
    assert notes == [("max_tokens.clamp", "max_output_tokens")]


def test_top_k_is_dropped_and_stop_sequences_are_emulated_with_notes() -> None:
    body, notes = build(request_make("hi", top_k=5, stop_sequences=["END"], top_p=0.9))
    assert "top_k" not in body and "stop" not in body and "stop_sequences" not in body
    assert body["top_p"] == 0.9
    assert notes == [("stop_sequences.emulate", "stop_sequences"), ("top_k.drop", "top_k")]


def test_a_long_user_id_becomes_its_hash_as_safety_identifier() -> None:
    short, _ = build(request_make("hi", metadata={"user_id": "u-1"}))
    assert short["safety_identifier"] == "u-1"
    long_id = '{"device_id":"' + "a" * 80 + '"}'
    body, notes = build(request_make("hi", metadata={"user_id": long_id}))
    assert body["safety_identifier"] == hashlib.sha256(long_id.encode()).hexdigest()
    assert notes == [("metadata.user_id_hash", "safety_identifier")]


@pytest.mark.parametrize(("thinking", "effort", "control", "summary", "expected"), [
    ({"type": "enabled", "budget_tokens": 31999}, None, "reasoning_effort", "auto",
     {"effort": "high", "summary": "auto"}),
    ({"type": "adaptive"}, "low", "reasoning_effort", "detailed", {"effort": "low", "summary": "detailed"}),
    ({"type": "adaptive"}, "max", "reasoning_effort", "none", {"effort": "high"}),
    ({"type": "adaptive"}, None, "reasoning_effort", "auto", {"summary": "auto"}),
    ({"type": "disabled"}, "high", "reasoning_effort", "auto", {"effort": "none"}),
    ({"type": "enabled", "budget_tokens": 2048}, None, "none", "auto", None),
])
def test_thinking_and_effort_become_reasoning_effort_and_summary(thinking: dict[str, Any], effort: str | None,
                                                                 control: str, summary: str, expected: Any) -> None:
    extra = {"output_config": {"effort": effort}} if effort else {}
    body, notes = build(request_make("hi", thinking=thinking, **extra), thinking_control=control,
                        reasoning_summary=summary)
    assert body.get("reasoning") == expected
    if control == "none":
        assert notes == [("thinking.not_sent", "thinking")]


def test_structured_output_is_text_format() -> None:
    body, notes = build(request_make("hi", output_config={"format": {"type": "json_schema",
                                                                      "schema": {"type": "object"}}}))
    assert body["text"] == {"format": {"type": "json_schema", "name": "output", "schema": {"type": "object"},
                                       "strict": True}}
    assert notes == [("output_config.format", "text.format")]


def _thinking(text: str, signature: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": signature}


def test_thinking_from_this_backend_is_replayed_exactly_before_the_item_that_followed_it() -> None:
    sig = reasoning_signature(item_id="rs_1", encrypted="gAAAAenc", raw=False, summary_lengths=[5, 3])
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [_thinking("Plan.\n\nRun", sig),
                                          {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}]},
    ]
    body, notes = build(request_make(messages))
    assert body["input"] == [
        user("go"),
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Plan."},
                                                        {"type": "summary_text", "text": "Run"}],
         "encrypted_content": "gAAAAenc"},
        {"type": "function_call", "call_id": "call_1", "name": "Bash", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
    ]
    assert notes == []


def test_raw_reasoning_from_vllm_is_replayed_as_reasoning_text_content() -> None:
    sig = reasoning_signature(item_id="rs_v", encrypted=None, raw=True, summary_lengths=[4])
    messages = [{"role": "user", "content": "q"},
                {"role": "assistant", "content": [_thinking("Hmm.", sig), {"type": "text", "text": "42"}]},
                {"role": "user", "content": "thanks"}]
    body, _ = build(request_make(messages))
    assert body["input"][1:3] == [
        {"type": "reasoning", "id": "rs_v", "summary": [], "content": [{"type": "reasoning_text", "text": "Hmm."}]},
        assistant("42"),
    ]


def test_foreign_thinking_goes_back_as_summary_text_never_as_output_text() -> None:
    messages = [{"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "text", "text": "A"}, _thinking("Why", "EqQBreal"),
                                                  {"type": "text", "text": "B"},
                                                  {"type": "redacted_thinking", "data": "xyz"}]},
                {"role": "user", "content": "more"}]
    body, notes = build(request_make(messages))
    assert body["input"] == [user("q"), assistant("A"),
                             {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Why"}]},
                             assistant("B"), user("more")]
    assert notes == [("thinking.as_summary", "messages[1].content[1]"),
                     ("redacted_thinking.drop", "messages[1].content[3]")]


def test_thinking_that_ends_its_turn_is_dropped_it_has_no_following_item() -> None:
    sig = reasoning_signature(item_id="rs_2", encrypted="e", raw=False, summary_lengths=[1])
    messages = [{"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "text", "text": "A"}, _thinking("x", sig)]},
                {"role": "user", "content": "more"}]
    body, notes = build(request_make(messages))
    assert body["input"] == [user("q"), assistant("A"), user("more")]
    assert notes == [("reasoning.drop_trailing", "messages[1].content[1]")]


@pytest.mark.parametrize("strategy", ["rewrite", "native", "continue_final_message", "prefix_flag"])
def test_a_prefill_is_rewritten_into_a_user_message(strategy: str) -> None:
    messages = [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2, "}]
    body, notes = build(request_make(messages), prefill=strategy, prefill_trim_whitespace=True)
    assert body["input"] == [user("Count"), user(PREFILL_REWRITE_INSTRUCTION.format(text="1, 2,"))]
    expected = [("prefill.trim_whitespace", "messages[1].content")]
    if strategy != "rewrite":
        expected.append(("prefill.rewrite_forced", "messages[1]"))
    assert notes == [*expected, ("prefill.rewrite", "messages[1]")]


def test_a_prefill_on_a_reject_backend_is_a_clear_400() -> None:
    with pytest.raises(ApiError) as caught:
        build(request_make([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
              prefill="reject")
    assert caught.value.status == 400 and "prefill=reject" in caught.value.message


def test_drop_fields_and_extra_body_apply_last() -> None:
    body, notes = build(request_make("hi", temperature=1.0), drop_fields=("temperature",),
                        extra_body={"reasoning": {"effort": "low"}, "truncation": "auto"})
    assert "temperature" not in body and body["truncation"] == "auto" and body["reasoning"] == {"effort": "low"}
    assert [r for r, _ in notes] == ["drop_fields", "extra_body"]


def test_a_claude_code_thinking_replay_request_translates_completely() -> None:
    raw = claude_code_body("04")
    req = MessagesRequest.model_validate(raw)
    body, notes = build_request(req, caps_make("openai"), upstream_model="gpt-5", backend_name="oai")
    assert set(body) == {"model", "instructions", "input", "max_output_tokens", "safety_identifier",
                         "prompt_cache_key", "tools", "reasoning", "store", "include", "stream"}
    assert body["prompt_cache_key"] == "4c9173a5-8097-4b7d-a946-c10ac05cab71"  # metadata.user_id's session
    assert not body["instructions"].startswith("x-anthropic-billing-header")
    assert body["instructions"].startswith("You are a Claude agent")
    assert [(i["type"], i.get("role")) for i in body["input"]] == [
        ("message", "user"), ("reasoning", None), ("message", "assistant"), ("function_call", None),
        ("function_call_output", None)]
    reasoning = body["input"][1]
    assert reasoning == {"type": "reasoning",
                         "summary": [{"type": "summary_text", "text": "Let me think about this (mock thinking)."}]}
    call, output = body["input"][3], body["input"][4]
    assert call == {"type": "function_call", "call_id": "toolu_mock58464a81f09940f7", "name": "Bash",
                    "arguments": '{"command":"echo hello-from-mock-tool && pwd","description":"Print a greeting"}'}
    assert output == {"type": "function_call_output", "call_id": "toolu_mock58464a81f09940f7",
                      "output": "hello-from-mock-tool\n/home/dev/work"}
    assert len(body["tools"]) == 24 and all(t["strict"] is False for t in body["tools"])
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["max_output_tokens"] == 32000 and body["stream"] is True
    assert [(n.rule, n.path) for n in notes] == [
        ("system.strip_billing_header", "system[0]"),
        ("thinking.as_summary", "messages[1].content[0]"),
        ("metadata.user_id_hash", "safety_identifier"),
        ("prompt_cache_key.session", "prompt_cache_key"),
        ("thinking.reasoning", "reasoning"),
        ("fields.drop", "context_management"),
    ]
