"""A chat.completion body becomes one complete Anthropic Message."""

from __future__ import annotations

from typing import Any

import pytest

from tests.translation.support import caps_make, request_make
from translation.errors import ApiError
from translation.openai_chat import translate_response


def _translate(message: dict[str, Any] | None = None, finish: str = "stop", *, usage: dict[str, Any] | None = None,
               request: Any = None, **choice_extra: Any) -> tuple[dict[str, Any], list]:
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", **(message or {})}, "finish_reason": finish, **choice_extra}]}
    if usage is not None:
        body["usage"] = usage
    return translate_response(body, caps_make(), request=request or request_make(), message_id="msg_abc")


def test_a_text_reply_becomes_a_complete_message() -> None:
    message, notes = _translate({"content": "Hi"}, usage={"prompt_tokens": 12, "completion_tokens": 3})
    assert message == {"id": "msg_abc", "type": "message", "role": "assistant", "model": "claude-test",
                       "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
                       "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                                 "output_tokens": 3}}
    assert notes == []


def test_cached_prompt_tokens_are_cache_reads_not_input_tokens() -> None:
    message, _ = _translate({"content": "x"}, usage={
        "prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}})
    assert message["usage"] == {"input_tokens": 40, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 60, "output_tokens": 7}


def test_deepseek_cache_hit_and_miss_tokens_are_used() -> None:
    message, _ = _translate({"content": "x"}, usage={
        "prompt_tokens": 100, "completion_tokens": 7, "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36})
    assert message["usage"]["input_tokens"] == 36 and message["usage"]["cache_read_input_tokens"] == 64


def test_input_tokens_are_never_negative() -> None:
    message, _ = _translate({"content": "x"}, usage={
        "prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 50}})
    assert message["usage"]["input_tokens"] == 0


def test_vllm_stop_reason_naming_a_requested_stop_sequence_is_stop_sequence() -> None:
    request = request_make(stop_sequences=["END"])
    message, _ = _translate({"content": "x"}, request=request, stop_reason="END")
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")
    message, _ = _translate({"content": "x"}, request=request, matched_stop="END")  # SGLang
    assert message["stop_sequence"] == "END"


def test_a_stop_token_id_or_unrequested_string_is_end_turn() -> None:
    request = request_make(stop_sequences=["END"])
    for matched in (151643, "<|im_end|>", None):
        message, _ = _translate({"content": "x"}, request=request, stop_reason=matched)
        assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)


def test_tool_use_comes_from_calls_actually_received_even_with_finish_stop() -> None:
    message, _ = _translate({"content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"q": "x"}'}}]}, "stop")
    assert message["content"] == [{"type": "tool_use", "id": "call_1", "name": "get", "input": {"q": "x"}}]
    assert message["stop_reason"] == "tool_use"


def test_tool_ids_are_sanitized_stably_and_generated_when_missing() -> None:
    calls = [{"id": "functions.get:0", "function": {"name": "get", "arguments": "{}"}},
             {"id": "", "function": {"name": "get", "arguments": "{}"}},
             {"function": {"name": "put", "arguments": ""}}]
    message, _ = _translate({"tool_calls": calls}, "tool_calls")
    assert [b["id"] for b in message["content"]] == ["functions_get_0", "toolu_abc_1", "toolu_abc_2"]
    assert [b["input"] for b in message["content"]] == [{}, {}, {}]


def test_unparseable_arguments_become_empty_input_with_a_note_and_truncated_ones_are_closed() -> None:
    message, notes = _translate({"tool_calls": [
        {"id": "a", "function": {"name": "f", "arguments": "not json"}},
        {"id": "b", "function": {"name": "f", "arguments": '{"path": "/tmp/x", "text": "hel'}},
        {"id": "c", "function": {"name": "f", "arguments": '"{\\"k\\": 1}"'}}]}, "tool_calls")
    assert [b["input"] for b in message["content"]] == [{}, {"path": "/tmp/x", "text": "hel"}, {"k": 1}]
    assert [n.rule for n in notes if n.rule != "usage.missing"] == ["tool_call.arguments"] * 3


def test_refusal_becomes_text_and_stop_reason_refusal() -> None:
    message, _ = _translate({"content": None, "refusal": "I can't help with that."})
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"


@pytest.mark.parametrize("finish, stop_reason", [("length", "max_tokens"), ("content_filter", "refusal"),
                                                 ("stop", "end_turn"), ("eos", "end_turn")])
def test_finish_reasons_map_to_anthropic_stop_reasons(finish: str, stop_reason: str) -> None:
    message, _ = _translate({"content": "x"}, finish)
    assert message["stop_reason"] == stop_reason


def test_length_wins_over_tool_use_because_the_arguments_may_be_cut() -> None:
    message, _ = _translate({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"a": 1'}}]}, "length")
    assert message["stop_reason"] == "max_tokens"


def test_text_and_tool_calls_from_several_choices_are_merged() -> None:
    body = {"choices": [
        {"index": 1, "finish_reason": "tool_calls", "message": {"tool_calls": [
            {"id": "c1", "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}]}},
        {"index": 0, "finish_reason": "stop", "message": {"content": "Running it."}},
    ]}
    message, _ = translate_response(body, caps_make(), request=request_make(), message_id="msg_1")
    assert message["content"] == [{"type": "text", "text": "Running it."},
                                  {"type": "tool_use", "id": "c1", "name": "Bash", "input": {"command": "ls"}}]
    assert message["stop_reason"] == "tool_use"


def test_an_error_body_raises_a_backend_api_error() -> None:
    with pytest.raises(ApiError) as exc:
        translate_response({"error": {"message": "boom", "type": "server_error", "code": 503}}, caps_make(),
                           request=request_make(), message_id="msg_1")
    assert (exc.value.status, exc.value.source, exc.value.type) == (503, "backend", "overloaded_error")
    with pytest.raises(ApiError) as exc:
        translate_response({"object": "error", "message": "bad", "code": "oops"}, caps_make(),
                           request=request_make(), message_id="msg_1")
    assert exc.value.status == 502


def test_an_aborted_generation_is_an_error() -> None:
    with pytest.raises(ApiError) as exc:
        _translate({"content": "par"}, "abort")
    assert exc.value.status == 502


def test_missing_usage_uses_the_estimate_and_leaves_a_note() -> None:
    body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "x"}}]}
    message, notes = translate_response(body, caps_make(), request=request_make(), message_id="m",
                                        input_tokens_estimate=42)
    assert message["usage"]["input_tokens"] == 42
    assert [n.rule for n in notes] == ["usage.missing"]
