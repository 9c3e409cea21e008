"""Exact Anthropic events for the chunk shapes real Chat Completions backends send."""

from __future__ import annotations

from typing import Any

import pytest

from tests.translation.support import caps_make, chunk, request_make, sdk_accumulate, stream_run, usage_chunk
from translation.errors import ApiError
from translation.openai_chat import ChatStreamTranslator
from translation.openai_chat.common import chat_signature
from translation.validate import stream_validate

SIG = chat_signature()


def text_start(i: int) -> dict[str, Any]:
    return {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}


def thinking_start(i: int) -> dict[str, Any]:
    return {"type": "content_block_start", "index": i,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}}


def tool_start(i: int, tool_id: str, name: str) -> dict[str, Any]:
    return {"type": "content_block_start", "index": i,
            "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}}


def text(i: int, t: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}}


def thinking(i: int, t: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": t}}


def signature(i: int) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": SIG}}


def args(i: int, partial: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": partial}}


def stop(i: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": i}


def end(stop_reason: str, *, input_tokens: int = 10, output: int = 5, cached: int = 0,
        stop_sequence: str | None = None) -> list[dict[str, Any]]:
    return [{"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
             "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                       "cache_read_input_tokens": cached, "output_tokens": output}},
            {"type": "message_stop"}]


def call(index: int, *, id: str | None = None, name: str | None = None, arguments: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index}
    if id is not None:
        out["id"] = id
        out["type"] = "function"
    function = {k: v for k, v in (("name", name), ("arguments", arguments)) if v is not None}
    if function:
        out["function"] = function
    return out


def run(chunks: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    events, _ = stream_run(chunks, **kwargs)
    assert stream_validate(events) is None
    sdk_accumulate(events)  # the real SDK accepts it
    return events[1:]  # without message_start


def test_message_start_carries_empty_content_and_the_input_estimate() -> None:
    translator = ChatStreamTranslator(caps_make(), request=request_make(), message_id="msg_1", input_tokens_estimate=77)
    assert translator.start() == [{"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 77, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}]
    assert translator.start() == []


def test_content_with_empty_tool_calls_is_text() -> None:
    assert run([chunk({"content": "1\n", "tool_calls": []}, finish="stop"), usage_chunk()]) == [
        text_start(0), text(0, "1\n"), stop(0), *end("end_turn")]


def test_content_and_a_whole_tool_call_in_one_chunk() -> None:
    assert run([chunk({"content": "Let me check.", "tool_calls": [call(0, id="call_1", name="get", arguments='{"q":1}')]},
                      finish="tool_calls"), usage_chunk()]) == [
        text_start(0), text(0, "Let me check."), stop(0),
        tool_start(1, "call_1", "get"), args(1, '{"q":1}'), stop(1), *end("tool_use")]


def test_several_tool_calls_in_one_chunk_become_blocks_in_index_order() -> None:
    assert run([chunk({"tool_calls": [call(0, id="a", name="f", arguments='{"n":0}'),
                                      call(1, id="b", name="g", arguments='{"n":1}')]}, finish="tool_calls"),
                usage_chunk()]) == [
        tool_start(0, "a", "f"), args(0, '{"n":0}'), stop(0),
        tool_start(1, "b", "g"), args(1, '{"n":1}'), stop(1), *end("tool_use")]


def test_arguments_split_over_chunks_are_passed_through_as_received() -> None:
    assert run([chunk({"tool_calls": [call(0, id="a", name="f", arguments="")]}),
                chunk({"tool_calls": [call(0, arguments='{"path": "/t')]}),
                chunk({"tool_calls": [call(0, arguments='mp"}')]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        tool_start(0, "a", "f"), args(0, '{"path": "/t'), args(0, 'mp"}'), stop(0), *end("tool_use")]


def test_whitespace_only_argument_fragments_are_held_until_real_text() -> None:
    assert run([chunk({"tool_calls": [call(0, id="a", name="f", arguments=" ")]}),
                chunk({"tool_calls": [call(0, arguments='{"k"')]}),
                chunk({"tool_calls": [call(0, arguments="\n")]}),
                chunk({"tool_calls": [call(0, arguments=": 2}")]}),
                chunk({"tool_calls": [call(0, arguments="  ")]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        tool_start(0, "a", "f"), args(0, ' {"k"'), args(0, "\n: 2}"), stop(0), *end("tool_use")]


def test_empty_arguments_end_as_an_empty_object() -> None:
    assert run([chunk({"tool_calls": [call(0, id="a", name="now", arguments="")]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        tool_start(0, "a", "now"), args(0, "{}"), stop(0), *end("tool_use")]


def test_id_and_name_in_different_chunks_open_the_block_once_both_are_known() -> None:
    assert run([chunk({"tool_calls": [call(0, id="a")]}),
                chunk({"tool_calls": [call(0, name="f")]}),
                chunk({"tool_calls": [call(0, arguments="{}")]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        tool_start(0, "a", "f"), args(0, "{}"), stop(0), *end("tool_use")]


def test_tool_call_indices_starting_at_one_work() -> None:
    assert run([chunk({"content": "ok"}),
                chunk({"tool_calls": [call(1, id="a", name="f", arguments='{"x":')]}),
                chunk({"tool_calls": [call(1, arguments="1}")]}),
                chunk({"tool_calls": [call(2, id="b", name="g", arguments="{}")]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        text_start(0), text(0, "ok"), stop(0),
        tool_start(1, "a", "f"), args(1, '{"x":'), args(1, "1}"), stop(1),
        tool_start(2, "b", "g"), args(2, "{}"), stop(2), *end("tool_use")]


def test_interleaved_parallel_tool_calls_are_buffered_so_blocks_never_interleave() -> None:
    assert run([chunk({"tool_calls": [call(0, id="a", name="f", arguments='{"a":')]}),
                chunk({"tool_calls": [call(1, id="b", name="g", arguments='{"b":')]}),
                chunk({"tool_calls": [call(0, arguments="1}")]}),
                chunk({"tool_calls": [call(1, arguments="2}")]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        tool_start(0, "a", "f"), args(0, '{"a":'), args(0, "1}"), stop(0),
        tool_start(1, "b", "g"), args(1, '{"b":'), args(1, "2}"), stop(1), *end("tool_use")]


def test_reasoning_then_text_then_tool_calls() -> None:
    assert run([chunk({"role": "assistant", "content": ""}),
                chunk({"reasoning_content": "Need ", "content": None}),
                chunk({"reasoning_content": "a tool."}),
                chunk({"content": "Checking."}),
                chunk({"tool_calls": [call(0, id="a", name="f", arguments="{}")]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        thinking_start(0), thinking(0, "Need "), thinking(0, "a tool."), signature(0), stop(0),
        text_start(1), text(1, "Checking."), stop(1),
        tool_start(2, "a", "f"), args(2, "{}"), stop(2), *end("tool_use")]


def test_usage_in_the_last_content_chunk_or_a_separate_chunk_is_used() -> None:
    separate = run([chunk({"content": "x"}), chunk(finish="stop"),
                    usage_chunk(100, 9, prompt_tokens_details={"cached_tokens": 30})])
    inline = run([chunk({"content": "x"}),
                  {**chunk(finish="stop"), "usage": {"prompt_tokens": 100, "completion_tokens": 9,
                                                     "prompt_tokens_details": {"cached_tokens": 30}}}])
    assert separate == inline == [text_start(0), text(0, "x"), stop(0), *end("end_turn", input_tokens=70, output=9, cached=30)]


def test_finish_stop_after_tool_calls_is_tool_use() -> None:
    assert run([chunk({"tool_calls": [call(0, id="a", name="f", arguments="{}")]}), chunk(finish="stop"),
                usage_chunk()])[-2]["delta"]["stop_reason"] == "tool_use"


def test_finish_tool_calls_without_calls_is_end_turn() -> None:
    assert run([chunk({"content": "x"}), chunk(finish="tool_calls"), usage_chunk()])[-2]["delta"]["stop_reason"] == "end_turn"


@pytest.mark.parametrize("finish, stop_reason", [("length", "max_tokens"), ("content_filter", "refusal")])
def test_length_and_content_filter(finish: str, stop_reason: str) -> None:
    assert run([chunk({"content": "x"}), chunk(finish=finish), usage_chunk()]) == [
        text_start(0), text(0, "x"), stop(0), *end(stop_reason)]


def test_stop_sequence_from_vllm_stop_reason() -> None:
    request = request_make(stop_sequences=["###"])
    events = run([chunk({"content": "x"}), chunk(finish="stop", stop_reason="###"), usage_chunk()], request=request)
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "###"}


def test_an_error_chunk_closes_the_open_block_and_ends_the_stream_with_an_error_event() -> None:
    events, translator = stream_run([chunk({"reasoning_content": "hm"}),
                                     {"error": {"message": "KV cache full", "type": "server_error", "code": 503}},
                                     chunk({"content": "ignored"})])
    assert events[1:] == [thinking_start(0), thinking(0, "hm"), signature(0), stop(0),
                          {"type": "error", "error": {"type": "overloaded_error", "message": "backend error: KV cache full"}}]
    assert translator.error is not None and translator.error.status == 503
    assert stream_validate(events) is None


def test_fail_emits_an_error_and_nothing_after_it() -> None:
    translator = ChatStreamTranslator(caps_make(), request=request_make(), message_id="msg_1")
    translator.start()
    translator.feed(chunk({"content": "par"}))
    assert translator.fail(ApiError(504, "upstream timed out")) == [
        stop(0), {"type": "error", "error": {"type": "timeout_error", "message": "upstream timed out"}}]
    assert translator.feed(chunk({"content": "more"})) == [] and translator.finish() == []


def test_an_abort_finish_reason_is_an_error_event() -> None:
    events, _ = stream_run([chunk({"content": "x"}, finish="abort")])
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "api_error"


def test_empty_deltas_produce_no_events() -> None:
    assert run([chunk({"role": "assistant", "content": ""}), chunk({"content": ""}),
                chunk({"reasoning_content": "", "reasoning": None}), chunk({}),
                chunk({"tool_calls": [call(0, arguments="")]}), chunk(finish="stop"), usage_chunk()]) == end("end_turn")


def test_a_tool_call_that_never_gets_a_name_is_dropped_with_a_note() -> None:
    events, translator = stream_run([chunk({"tool_calls": [call(0, id="a", arguments="{}")]}), chunk(finish="tool_calls")])
    assert [e["type"] for e in events[1:]] == ["message_delta", "message_stop"]
    assert "tool_call.drop_nameless" in [n.rule for n in translator.notes]


def test_the_accumulated_message_matches_what_the_sdk_builds() -> None:
    events, translator = stream_run([chunk({"reasoning": "r"}), chunk({"content": "t"}),
                                     chunk({"tool_calls": [call(0, id="a:b", name="f", arguments='{"x": [1, 2]}')]}),
                                     chunk(finish="tool_calls"), usage_chunk()])
    sdk = sdk_accumulate(events)
    assert translator.message["content"] == sdk["content"]
    assert translator.message["content"][2]["id"] == "a_b"
    assert (translator.stop_reason, translator.usage["output_tokens"]) == ("tool_use", 5)
