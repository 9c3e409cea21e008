"""More chunk shapes from real Chat Completions backends, each with the exact Anthropic events.

Complements test_stream_chunk_shapes.py (same builders). Where a shape has a non-streamed
twin, the test also checks that the SDK folds the stream to what ``translate_response`` makes
of the same completion. Shapes covered at the gateway level instead (they never reach the
translator as a chunk): a ``data:`` line that is not JSON and a missing ``data: [DONE]``
(tests/gateway/test_messages_api.py, tests/e2e/test_stream_faults_e2e.py).
"""

from __future__ import annotations

from typing import Any

from tests.translation.support import caps_make, chunk, request_make, sdk_accumulate, stream_run, usage_chunk
from tests.translation.test_stream_chunk_shapes import (
    args,
    call,
    end,
    run,
    signature,
    stop,
    text,
    text_start,
    thinking,
    thinking_start,
    tool_start,
)
from translation.openai_chat import translate_response
from translation.validate import stream_validate


def choices_chunk(*choices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": list(choices), **extra}


def same_as_non_streamed(events: list[dict[str, Any]], body: dict[str, Any]) -> bool:
    message, _ = translate_response(body, caps_make(), request=request_make(), message_id="msg_test")
    return sdk_accumulate(events)["content"] == message["content"]


# -- reasoning and text ------------------------------------------------------------------------


def test_reasoning_interleaved_with_text_gives_alternating_blocks_in_order() -> None:
    assert run([chunk({"reasoning_content": "First, "}), chunk({"content": "Step one."}),
                chunk({"reasoning_content": "then "}), chunk({"reasoning_content": "more."}),
                chunk({"content": "Step two."}), chunk(finish="stop"), usage_chunk()]) == [
        thinking_start(0), thinking(0, "First, "), signature(0), stop(0),
        text_start(1), text(1, "Step one."), stop(1),
        thinking_start(2), thinking(2, "then "), thinking(2, "more."), signature(2), stop(2),
        text_start(3), text(3, "Step two."), stop(3), *end("end_turn")]


def test_reasoning_and_content_in_one_chunk_close_the_thinking_block_first() -> None:
    assert run([chunk({"reasoning_content": "Done thinking.", "content": "Answer"}), chunk(finish="stop"),
                usage_chunk()]) == [
        thinking_start(0), thinking(0, "Done thinking."), signature(0), stop(0),
        text_start(1), text(1, "Answer"), stop(1), *end("end_turn")]


def test_vllm_doubled_reasoning_fields_are_read_once() -> None:
    """vLLM PR #27752 sent ``reasoning`` and ``reasoning_content`` with the same text."""
    assert run([chunk({"reasoning": "hm", "reasoning_content": "hm"}), chunk({"content": "ok"}),
                chunk(finish="stop"), usage_chunk()], caps=caps_make("vllm")) == [
        thinking_start(0), thinking(0, "hm"), signature(0), stop(0),
        text_start(1), text(1, "ok"), stop(1), *end("end_turn")]


def test_content_as_a_list_of_text_parts_is_text() -> None:
    events = run([chunk({"content": [{"type": "text", "text": "Hel"}]}),
                  chunk({"content": [{"type": "text", "text": "lo"}, {"type": "text", "text": "!"}]}),
                  chunk(finish="stop"), usage_chunk()])
    assert events == [text_start(0), text(0, "Hel"), text(0, "lo!"), stop(0), *end("end_turn")]


def test_delta_refusal_is_text_and_stop_reason_refusal() -> None:
    events = run([chunk({"refusal": "I can't "}), chunk({"refusal": "help with that."}), chunk(finish="stop"),
                  usage_chunk()])
    assert events == [text_start(0), text(0, "I can't "), text(0, "help with that."), stop(0), *end("refusal")]


def test_text_after_tool_calls_gets_its_own_block_after_the_tool() -> None:
    assert run([chunk({"tool_calls": [call(0, id="a", name="f", arguments="{}")]}), chunk({"content": "Done."}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        tool_start(0, "a", "f"), args(0, "{}"), stop(0),
        text_start(1), text(1, "Done."), stop(1), *end("tool_use")]


# -- several choices ---------------------------------------------------------------------------


def test_the_text_of_several_choices_never_interleaves() -> None:
    """n > 1 streams interleave choices chunk by chunk; the first choice streams live and the
    others' text follows, whole, one block per choice, as in the non-streamed message."""
    events, _ = stream_run([
        choices_chunk({"index": 0, "delta": {"content": "Red "}}, {"index": 1, "delta": {"content": "Blue "}}),
        choices_chunk({"index": 1, "delta": {"content": "sky."}}),
        choices_chunk({"index": 0, "delta": {"content": "sun."}, "finish_reason": "stop"},
                      {"index": 1, "delta": {}, "finish_reason": "stop"}),
        usage_chunk()])
    assert stream_validate(events) is None
    assert events[1:] == [text_start(0), text(0, "Red "), text(0, "sun."), stop(0),
                          text_start(1), text(1, "Blue sky."), stop(1), *end("end_turn")]
    assert same_as_non_streamed(events, {"choices": [
        {"index": 0, "message": {"content": "Red sun."}, "finish_reason": "stop"},
        {"index": 1, "message": {"content": "Blue sky."}, "finish_reason": "stop"}], "usage": {}})


def test_text_in_one_choice_and_the_tool_call_in_another_are_one_message() -> None:
    """Field report #24 (Copilot): text in choices[0], the tool call in choices[1]."""
    events, _ = stream_run([
        choices_chunk({"index": 0, "delta": {"content": "Running it."}}),
        choices_chunk({"index": 1, "delta": {"tool_calls": [call(0, id="c1", name="Bash",
                                                                 arguments='{"command": "ls"}')]}}),
        choices_chunk({"index": 0, "delta": {}, "finish_reason": "stop"},
                      {"index": 1, "delta": {}, "finish_reason": "tool_calls"}),
        usage_chunk()])
    assert stream_validate(events) is None
    assert events[1:] == [text_start(0), text(0, "Running it."), stop(0),
                          tool_start(1, "c1", "Bash"), args(1, '{"command": "ls"}'), stop(1), *end("tool_use")]
    assert same_as_non_streamed(events, {"choices": [
        {"index": 1, "finish_reason": "tool_calls", "message": {"tool_calls": [
            {"id": "c1", "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}]}},
        {"index": 0, "finish_reason": "stop", "message": {"content": "Running it."}}]})


# -- tool calls --------------------------------------------------------------------------------


def test_tool_calls_without_index_each_whole_in_its_own_chunk_are_separate_calls() -> None:
    """Some OpenAI-compatible servers (Gemini's, older llama.cpp) omit ``index``; a new id is a new call."""
    assert run([chunk({"tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
                chunk({"tool_calls": [{"id": "b", "type": "function",
                                       "function": {"name": "g", "arguments": '{"x":1}'}}]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        tool_start(0, "a", "f"), args(0, "{}"), stop(0),
        tool_start(1, "b", "g"), args(1, '{"x":1}'), stop(1), *end("tool_use")]


def test_id_and_name_repeated_on_every_fragment_are_not_concatenated() -> None:
    assert run([chunk({"tool_calls": [call(0, id="a", name="Read", arguments='{"path"')]}),
                chunk({"tool_calls": [call(0, id="a", name="Read", arguments=': "/x"}')]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        tool_start(0, "a", "Read"), args(0, '{"path"'), args(0, ': "/x"}'), stop(0), *end("tool_use")]


def test_arguments_sent_as_a_json_object_instead_of_a_string() -> None:
    assert run([chunk({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                                       "function": {"name": "f", "arguments": {"n": [1, 2]}}}]}),
                chunk(finish="tool_calls"), usage_chunk()]) == [
        tool_start(0, "a", "f"), args(0, '{"n":[1,2]}'), stop(0), *end("tool_use")]


def test_arguments_cut_by_length_are_closed_and_the_stop_reason_is_max_tokens() -> None:
    events, translator = stream_run([chunk({"tool_calls": [call(0, id="a", name="Write", arguments='{"text": "ab')]}),
                                     chunk(finish="length"), usage_chunk()])
    assert stream_validate(events) is None
    assert events[1:] == [tool_start(0, "a", "Write"), args(0, '{"text": "ab'), args(0, '"}'), stop(0),
                          *end("max_tokens")]
    assert sdk_accumulate(events)["content"][0]["input"] == {"text": "ab"}
    assert "tool_call.arguments" in [n.rule for n in translator.notes]


# -- usage -------------------------------------------------------------------------------------


def test_usage_in_the_last_content_chunk_with_the_finish_reason() -> None:
    assert run([chunk({"content": "Hi"}),
                {**chunk({"content": " there"}, finish="stop"),
                 "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}}]) == [
        text_start(0), text(0, "Hi"), text(0, " there"), stop(0), *end("end_turn", input_tokens=40, output=2)]


def test_continuous_usage_on_every_chunk_uses_the_last_report() -> None:
    """vLLM ``stream_options.continuous_usage_stats``: cumulative usage on every chunk."""
    assert run([{**chunk({"content": "a"}), "usage": {"prompt_tokens": 7, "completion_tokens": 1}},
                {**chunk({"content": "b"}), "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
                {**chunk(finish="stop"), "usage": {"prompt_tokens": 7, "completion_tokens": 3}}]) == [
        text_start(0), text(0, "a"), text(0, "b"), stop(0), *end("end_turn", input_tokens=7, output=3)]


def test_no_usage_at_all_uses_the_input_estimate_and_zero_output() -> None:
    events, translator = stream_run([chunk({"content": "x"}), chunk(finish="stop")], estimate=33)
    assert events[-2]["usage"] == {"input_tokens": 33, "cache_creation_input_tokens": 0,
                                   "cache_read_input_tokens": 0, "output_tokens": 0}
    assert "usage.missing" in [n.rule for n in translator.notes]


def test_chunks_with_null_choices_or_null_delta_produce_no_events() -> None:
    assert run([{"object": "chat.completion.chunk", "choices": None},
                choices_chunk({"index": 0, "delta": None, "finish_reason": None}),
                chunk({"content": "x"}), chunk(finish="stop"), usage_chunk()]) == [
        text_start(0), text(0, "x"), stop(0), *end("end_turn")]


# -- finish reasons ----------------------------------------------------------------------------


def test_sglang_matched_stop_naming_a_requested_stop_sequence() -> None:
    request = request_make(stop_sequences=["</answer>"])
    events = run([chunk({"content": "42"}), chunk(finish="stop", matched_stop="</answer>"), usage_chunk()],
                 request=request)
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "</answer>"}


def test_a_stop_token_id_is_end_turn() -> None:
    request = request_make(stop_sequences=["###"])
    events = run([chunk({"content": "x"}), chunk(finish="stop", stop_reason=151645), usage_chunk()], request=request)
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_out_of_resources_finish_is_an_overloaded_error_event() -> None:
    events, _ = stream_run([chunk({"content": "x"}), chunk(finish="insufficient_system_resource")])
    assert events[1:] == [text_start(0), text(0, "x"), stop(0), {"type": "error", "error": {
        "type": "overloaded_error",
        "message": "the backend is out of resources (finish_reason=insufficient_system_resource)"}}]
    assert stream_validate(events) is None


# -- errors ------------------------------------------------------------------------------------


def test_an_sglang_error_chunk_closes_the_block_and_ends_with_an_error_event() -> None:
    events, translator = stream_run([chunk({"content": "par"}),
                                     {"object": "error", "message": "context too long", "type": "BadRequestError",
                                      "param": None, "code": 400},
                                     chunk({"content": "ignored"})])
    assert events[1:] == [text_start(0), text(0, "par"), stop(0), {"type": "error", "error": {
        "type": "invalid_request_error", "message": "backend error: context too long"}}]
    assert translator.error is not None and translator.error.status == 400
    assert stream_validate(events) is None


def test_an_error_chunk_before_any_content_is_only_an_error_event() -> None:
    events, _ = stream_run([{"error": {"message": "boom", "type": "server_error", "code": 500}}])
    assert events[1:] == [{"type": "error", "error": {"type": "api_error", "message": "backend error: boom"}}]
    assert stream_validate(events) is None
