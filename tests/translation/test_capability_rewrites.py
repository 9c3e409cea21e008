"""Each capability that rewrites a Chat Completions request: the exact change and its note."""

from __future__ import annotations

from typing import Any

import pytest

from tests.translation.support import caps_make, request_make
from translation.capabilities import PRESETS, CapabilityError, capabilities_build
from translation.errors import ApiError
from translation.openai_chat import build_request
from translation.prefill import prefill_echo_prefix

TOOLS = [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]
PREFILL = [{"role": "user", "content": "Pick"}, {"role": "assistant", "content": "The answer is ("}]


def rules(notes: list[Any]) -> list[str]:
    return [n.rule for n in notes]


def test_every_preset_is_valid_data() -> None:
    for name in PRESETS:
        assert capabilities_build(preset=name).as_dict()


def test_max_tokens_above_the_cap_is_clamped_with_a_note() -> None:
    body, notes = build_request(request_make(max_tokens=64000), caps_make("openai", max_tokens_cap=16384),
                                upstream_model="m")
    assert body["max_completion_tokens"] == 16384 and "max_tokens" not in body
    (note,) = [n for n in notes if n.rule == "max_tokens.clamp"]
    assert note.path == "max_completion_tokens" and "64000" in note.detail
    body, notes = build_request(request_make(max_tokens=100), caps_make(max_tokens_cap=16384), upstream_model="m")
    assert body["max_tokens"] == 100 and "max_tokens.clamp" not in rules(notes)


@pytest.mark.parametrize(("support", "choice", "expected", "rule"), [
    ("full", {"type": "any"}, "required", None),
    ("full", {"type": "tool", "name": "Bash"}, {"type": "function", "function": {"name": "Bash"}}, None),
    ("no_required", {"type": "any"}, "auto", "tool_choice.any_to_auto"),
    ("no_required", {"type": "tool", "name": "Bash"}, {"type": "function", "function": {"name": "Bash"}}, None),
    ("auto_only", {"type": "any"}, None, "tool_choice.drop"),
    ("auto_only", {"type": "auto"}, "auto", None),
    ("omit", {"type": "auto"}, None, "tool_choice.drop"),
])
def test_tool_choice_is_sent_only_in_a_form_the_backend_accepts(support: str, choice: dict[str, Any],
                                                               expected: Any, rule: str | None) -> None:
    body, notes = build_request(request_make(tools=TOOLS, tool_choice=choice), caps_make(tool_choice=support),
                                upstream_model="m")
    assert body.get("tool_choice") == expected
    assert body["tools"][0]["function"]["name"] == "Bash"
    assert rules(notes) == ([rule] if rule else [])


def test_tool_choice_none_without_support_sends_no_tools() -> None:
    body, notes = build_request(request_make(tools=TOOLS, tool_choice={"type": "none"}),
                                caps_make(tool_choice="auto_only"), upstream_model="m")
    assert "tools" not in body and "tool_choice" not in body
    assert rules(notes) == ["tool_choice.none_without_tools"]


def test_parallel_tool_calls_is_sent_only_where_accepted() -> None:
    req = request_make(tools=TOOLS, tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    body, _ = build_request(req, caps_make(), upstream_model="m")
    assert body["parallel_tool_calls"] is False
    body, notes = build_request(req, caps_make(parallel_tool_calls=False), upstream_model="m")
    assert "parallel_tool_calls" not in body
    assert rules(notes) == ["parallel_tool_calls.drop"]


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


def test_images_pass_become_a_placeholder_or_are_refused_per_capability() -> None:
    req = request_make([{"role": "user", "content": [IMAGE, {"type": "text", "text": "What is this?"}]}])
    body, notes = build_request(req, caps_make(), upstream_model="m")
    assert body["messages"][0]["content"][0] == {"type": "image_url",
                                                 "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    body, notes = build_request(req, caps_make(images="placeholder"), upstream_model="m")
    assert body["messages"][0]["content"] == "[image omitted: this model does not accept images]\n\nWhat is this?"
    assert [(n.rule, n.path) for n in notes] == [("image.placeholder", "messages[0].content[0]")]
    with pytest.raises(ApiError) as exc:
        build_request(req, caps_make(images="reject"), upstream_model="m", backend_name="tiny")
    assert exc.value.status == 400
    assert exc.value.message == ("messages[0].content[0]: backend tiny does not accept images "
                                 "(capability images=reject)")


def test_sampling_exclusive_keeps_temperature_and_drops_top_p() -> None:
    req = request_make(temperature=0.5, top_p=0.9)
    body, notes = build_request(req, caps_make(sampling_exclusive=True), upstream_model="m")
    assert body["temperature"] == 0.5 and "top_p" not in body
    assert rules(notes) == ["top_p.drop"]
    body, _ = build_request(request_make(top_p=0.9), caps_make(sampling_exclusive=True), upstream_model="m")
    assert body["top_p"] == 0.9


def test_extra_body_merges_deeply_and_cannot_remove_the_prefill_flags() -> None:
    caps = caps_make("vllm", extra_body={"chat_template_kwargs": {"custom": 1}, "priority": 5},
                     drop_fields=["continue_final_message", "user"])
    body, notes = build_request(request_make(PREFILL, metadata={"user_id": "u1"}), caps, upstream_model="m")
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["chat_template_kwargs"] == {"enable_thinking": False, "custom": 1}
    assert body["priority"] == 5 and "user" not in body
    assert rules(notes)[-2:] == ["drop_fields", "extra_body"]
    assert notes[-2].path == "user"


def test_extra_body_may_not_set_what_the_prefill_capability_owns() -> None:
    with pytest.raises(CapabilityError, match="continue_final_message"):
        caps_make(extra_body={"continue_final_message": False})


@pytest.mark.parametrize(("name", "value"), [("max_tokens_cap", -1), ("max_tokens_cap", True),
                                             ("extra_body", [1]), ("extra_headers", {"x": 1}),
                                             ("thinking_control", "magic"), ("reasoning_replay", "sometimes")])
def test_bad_capability_values_are_refused_with_the_field_name(name: str, value: Any) -> None:
    with pytest.raises(CapabilityError, match=name):
        caps_make(**{name: value})


HISTORY = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": [{"type": "thinking", "thinking": "greet", "signature": "s"},
                                      {"type": "text", "text": "Hello"}]},
    {"role": "user", "content": "run ls"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a"}]},
]


@pytest.mark.parametrize(("policy", "turn1", "turn3"), [
    ("always", "greet", None),
    ("tool_turns", None, "."),
    ("never", None, None),
])
def test_reasoning_replay_policy(policy: str, turn1: str | None, turn3: str | None) -> None:
    caps = caps_make(reasoning_replay=policy, reasoning_placeholder=".")
    body, notes = build_request(request_make(HISTORY), caps, upstream_model="m")
    assert body["messages"][1].get("reasoning_content") == turn1
    assert body["messages"][3].get("reasoning_content") == turn3
    assert ("reasoning.not_replayed" in rules(notes)) is (turn1 is None)
    assert ("reasoning.placeholder" in rules(notes)) is (turn3 is not None)


def test_redacted_thinking_never_reaches_a_chat_backend() -> None:
    history = [{"role": "user", "content": "hi"},
               {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
                                                 {"type": "text", "text": "Hello"}]},
               {"role": "user", "content": "again"}]
    body, notes = build_request(request_make(history), caps_make("deepseek", reasoning_replay="always"),
                                upstream_model="m")
    assert body["messages"][1] == {"role": "assistant", "content": "Hello"}
    assert "redacted_thinking.drop" in rules(notes)


def test_prefill_with_thinking_can_be_refused_or_allowed() -> None:
    req = request_make(PREFILL, thinking={"type": "enabled", "budget_tokens": 2048}, max_tokens=4096)
    with pytest.raises(ApiError) as exc:
        build_request(req, caps_make("llamacpp", prefill_with_thinking="reject"), upstream_model="m",
                      backend_name="llama")
    assert exc.value.status == 400 and "backend llama" in exc.value.message
    assert "prefill_with_thinking=reject" in exc.value.message
    body, _ = build_request(req, caps_make("llamacpp", prefill_with_thinking="allow"), upstream_model="m")
    assert body["chat_template_kwargs"] == {"enable_thinking": True}


def test_trailing_whitespace_is_trimmed_from_a_prefill_where_it_would_be_refused() -> None:
    req = request_make([PREFILL[0], {"role": "assistant", "content": "The answer is  \n"}])
    body, notes = build_request(req, caps_make(prefill_trim_whitespace=True), upstream_model="m")
    assert body["messages"][-1] == {"role": "assistant", "content": "The answer is"}
    assert rules(notes) == ["prefill.trim_whitespace"]
    assert prefill_echo_prefix(req, caps_make("openai", prefill_trim_whitespace=True)) == "The answer is"


def test_prefill_after_tool_results_continues_the_last_assistant_turn() -> None:
    messages = [*HISTORY, {"role": "assistant", "content": "The file list:"}]
    body, _ = build_request(request_make(messages), caps_make("vllm"), upstream_model="m")
    assert [m["role"] for m in body["messages"]][-3:] == ["assistant", "tool", "assistant"]
    assert body["messages"][-1] == {"role": "assistant", "content": "The file list:"}
    assert body["continue_final_message"] is True


def test_mid_conversation_system_message_refusal_tells_claude_code_to_retry_without_it() -> None:
    req = request_make([{"role": "user", "content": "hi"}, {"role": "system", "content": "be brief"},
                        {"role": "user", "content": "go"}])
    with pytest.raises(ApiError) as exc:
        build_request(req, caps_make(system_messages="reject"), upstream_model="m")
    assert exc.value.status == 400
    assert "Unexpected role" in exc.value.message and "input message role" in exc.value.message


@pytest.mark.parametrize(("thinking", "effort", "expected"), [
    ({"type": "enabled", "budget_tokens": 2000}, None, "low"),
    ({"type": "enabled", "budget_tokens": 8000}, None, "medium"),
    ({"type": "enabled", "budget_tokens": 20000}, None, "high"),
    ({"type": "adaptive"}, "max", "high"),
    ({"type": "adaptive"}, "xhigh", "high"),
    ({"type": "adaptive"}, "low", "low"),
    ({"type": "adaptive"}, None, None),
    (None, "low", "low"),
])
def test_effort_reaches_reasoning_effort(thinking: dict[str, Any] | None, effort: str | None,
                                         expected: str | None) -> None:
    fields: dict[str, Any] = {"max_tokens": 32000}
    if thinking:
        fields["thinking"] = thinking
    if effort:
        fields["output_config"] = {"effort": effort}
    body, _ = build_request(request_make(**fields), caps_make("openai"), upstream_model="m")
    assert body.get("reasoning_effort") == expected


def test_template_thinking_switches_chat_template_kwargs_thinking() -> None:
    body, _ = build_request(request_make(thinking={"type": "adaptive"}),
                            caps_make("vllm", thinking_control="template_thinking"), upstream_model="m")
    assert body["chat_template_kwargs"] == {"thinking": True}


def test_structured_output_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body, notes = build_request(request_make(output_config={"format": {"type": "json_schema", "schema": schema}}),
                                caps_make(), upstream_model="m")
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": schema, "strict": True}}
    assert rules(notes) == ["output_config.format"]
