"""A non-streamed Responses API response becomes the exact Anthropic Message (openai-python response_stream_event.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.translation.support import caps_make, request_make
from translation.errors import ApiError
from translation.openai_responses import translate_response
from translation.schemas import MessagesRequest
from translation.signature import signature_read

USAGE = {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 100}, "output_tokens": 30,
         "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 150}


def response(*output: dict[str, Any], status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "status": status, "output": list(output), "usage": USAGE,
            "error": None, "incomplete_details": None, **extra}


def text_item(text: str) -> dict[str, Any]:
    return {"id": "msg_a", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def call_item(arguments: Any, call_id: Any = "call_1", name: Any = "Bash") -> dict[str, Any]:
    return {"id": "fc_1", "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def translate(body: dict[str, Any], request: MessagesRequest | None = None, **caps: Any) -> tuple[dict[str, Any], list[str]]:
    message, notes = translate_response(body, caps_make(**caps), request=request or request_make(),
                                        message_id="msg_x", input_tokens_estimate=7)
    return message, [n.rule for n in notes]


def test_text_and_usage_with_cached_tokens() -> None:
    message, notes = translate(response(text_item("Hello")))
    assert message == {"id": "msg_x", "type": "message", "role": "assistant", "model": "claude-test",
                       "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn",
                       "stop_sequence": None,
                       "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0,
                                 "cache_read_input_tokens": 100, "output_tokens": 30}}
    assert notes == []


def test_reasoning_becomes_thinking_whose_signature_carries_the_item_for_replay() -> None:
    reasoning = {"id": "rs_9", "type": "reasoning", "encrypted_content": "gAAAAsecret",
                 "summary": [{"type": "summary_text", "text": "First."}, {"type": "summary_text", "text": "Then."}]}
    message, _ = translate(response(reasoning, text_item("42")))
    thinking, text = message["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "First.\n\nThen."
    assert signature_read(thinking["signature"]) == {"src": "responses", "id": "rs_9", "enc": "gAAAAsecret",
                                                     "sl": [6, 5]}
    assert text == {"type": "text", "text": "42"}


def test_vllm_raw_reasoning_text_becomes_thinking_marked_raw() -> None:
    reasoning = {"id": "rs_v", "type": "reasoning", "summary": [],
                 "content": [{"type": "reasoning_text", "text": "raw thoughts"}]}
    message, _ = translate(response(reasoning, text_item("ok")))
    assert message["content"][0]["thinking"] == "raw thoughts"
    assert signature_read(message["content"][0]["signature"]) == {"src": "responses", "id": "rs_v", "raw": True}


def test_a_reasoning_item_without_text_still_becomes_a_thinking_block() -> None:
    message, _ = translate(response({"id": "rs_e", "type": "reasoning", "summary": [], "encrypted_content": "E"},
                                    call_item("{}")))
    assert message["content"][0]["thinking"] == ""
    assert signature_read(message["content"][0]["signature"]) == {"src": "responses", "id": "rs_e", "enc": "E"}
    assert message["stop_reason"] == "tool_use"


def test_a_function_call_becomes_tool_use_with_the_exact_input() -> None:
    message, notes = translate(response(text_item("Running."), call_item('{"command": "ls", "n": 12345678901234567890}')))
    assert message["content"][1] == {"type": "tool_use", "id": "call_1", "name": "Bash",
                                     "input": {"command": "ls", "n": 12345678901234567890}}
    assert message["stop_reason"] == "tool_use" and notes == []


def test_tool_arguments_are_repaired_with_a_note() -> None:
    message, notes = translate(response(call_item('{"command": "ls'), status="incomplete",
                                        incomplete_details={"reason": "max_output_tokens"}))
    assert message["content"][0]["input"] == {"command": "ls"}
    assert message["stop_reason"] == "max_tokens"
    assert notes == ["tool_call.arguments"]


def test_invalid_call_ids_travel_in_a_reversible_envelope_and_missing_ones_are_made() -> None:
    message, _ = translate(response(call_item("{}", call_id="functions.Bash:0"), call_item("{}", call_id=None)))
    assert message["content"][0]["id"] == "toolu_dgmb64_ZnVuY3Rpb25zLkJhc2g6MA"
    assert message["content"][1]["id"] == "toolu_x_1"


def test_a_nameless_function_call_is_dropped_with_a_note() -> None:
    message, notes = translate(response(call_item("{}", name=None)))
    assert message["content"] == [] and message["stop_reason"] == "end_turn"
    assert notes == ["tool_call.drop_nameless"]


def test_a_refusal_part_is_text_with_stop_reason_refusal() -> None:
    item = {"id": "msg_r", "type": "message", "role": "assistant",
            "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    message, _ = translate(response(item))
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"


@pytest.mark.parametrize(("reason", "stop_reason"), [("max_output_tokens", "max_tokens"),
                                                      ("content_filter", "refusal")])
def test_incomplete_responses_map_their_reason(reason: str, stop_reason: str) -> None:
    message, _ = translate(response(text_item("cut"), status="incomplete", incomplete_details={"reason": reason}))
    assert message["stop_reason"] == stop_reason


@pytest.mark.parametrize(("body", "status", "error_type"), [
    (response(status="failed", error={"code": "server_error", "message": "boom"}), 500, "api_error"),
    (response(status="failed", error={"code": "rate_limit_exceeded", "message": "slow"}), 429, "rate_limit_error"),
    (response(status="failed", error={"code": "invalid_prompt", "message": "bad"}), 400, "invalid_request_error"),
    (response(status="cancelled"), 502, "api_error"),
])
def test_failed_and_cancelled_responses_raise_an_api_error(body: dict[str, Any], status: int, error_type: str) -> None:
    with pytest.raises(ApiError) as caught:
        translate(body)
    assert (caught.value.status, caught.value.type) == (status, error_type)


def test_stop_sequences_are_honoured_by_cutting_the_output() -> None:
    request = request_make("count", stop_sequences=["STOP", "3 S"])
    message, notes = translate(response(text_item("1 2 3 STOP 4"), call_item("{}")), request)
    assert message["content"] == [{"type": "text", "text": "1 2 "}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "3 S")
    assert notes == ["stop_sequences.matched"]


def test_a_repeated_rewritten_prefill_is_stripped() -> None:
    request = request_make([{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2,"}])
    message, notes = translate(response(text_item("1, 2, 3")), request)
    assert message["content"] == [{"type": "text", "text": " 3"}]
    assert notes == ["prefill.strip_repeated_prefix"]


def test_missing_usage_is_estimated_with_a_note() -> None:
    body = response(text_item("hi"))
    del body["usage"]
    message, notes = translate(body)
    assert message["usage"] == {"input_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                                "output_tokens": 0}
    assert notes == ["usage.missing"]


def test_output_items_without_an_anthropic_equivalent_are_dropped_with_a_note() -> None:
    message, notes = translate(response({"id": "ws_1", "type": "web_search_call", "status": "completed"},
                                        text_item("found")))
    assert message["content"] == [{"type": "text", "text": "found"}]
    assert notes == ["output.drop_item"]
