"""What a real llama-server did wrong through Dragoman (issue 13), as translator specifications.

The payload shapes are llama.cpp's own (tools/server/server-task.cpp, the build in
llama-cpp-python 0.3.36): a non-streamed ``message.content`` that repeats the prefill,
``finish_reason: "stop"`` for a stop word with the word only in ``__verbose``, ``"length"`` with
``__verbose.truncated`` when the context filled up. `make test-real` checks them against the server.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.translation.support import caps_make, chunk, request_make, sdk_accumulate, stream_run, usage_chunk
from translation.backend_errors import backend_error_reclassify
from translation.openai_chat import build_request, translate_response

PREFILL = [{"role": "user", "content": "Count to five."}, {"role": "assistant", "content": "1, 2,"}]


def _completion(content: str, *, finish: str = "stop", tool_calls: list[dict[str, Any]] | None = None,
                **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"object": "chat.completion", "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5}, **extra}


def _text(message: dict[str, Any]) -> str:
    return "".join(b["text"] for b in message["content"] if b["type"] == "text")


# -- 1. the echoed prefill ----------------------------------------------------------------------------


def test_the_llamacpp_preset_sends_continue_final_message() -> None:
    body, _ = build_request(request_make(PREFILL), caps_make("llamacpp"), upstream_model="m")
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)


def test_a_non_streamed_reply_that_repeats_the_prefill_has_it_removed() -> None:
    message, notes = translate_response(_completion("1, 2, 3, 4, 5"), caps_make("llamacpp"),
                                        request=request_make(PREFILL), message_id="msg_1")
    assert _text(message) == " 3, 4, 5"
    assert "prefill.strip_repeated_prefix" in [n.rule for n in notes]


def test_a_streamed_reply_that_repeats_the_prefill_in_pieces_has_it_removed() -> None:
    chunks = [chunk({"content": "1,"}), chunk({"content": " 2"}), chunk({"content": ", 3"}),
              chunk({"content": ", 4"}, finish="stop")]
    events, _ = stream_run(chunks, caps=caps_make("llamacpp"), request=request_make(PREFILL))
    assert _text(sdk_accumulate(events)) == " 3, 4"


def test_a_reply_that_does_not_repeat_the_prefill_is_kept_whole() -> None:
    message, _ = translate_response(_completion(" 3, 4, 5"), caps_make("llamacpp"), request=request_make(PREFILL),
                                    message_id="msg_1")
    assert _text(message) == " 3, 4, 5"


def test_without_prefill_echo_a_reply_starting_like_the_prefill_is_not_touched() -> None:
    message, _ = translate_response(_completion("1, 2, 3"), caps_make("vllm"), request=request_make(PREFILL),
                                    message_id="msg_1")
    assert _text(message) == "1, 2, 3"


# -- 2. stop sequences ---------------------------------------------------------------------------------


def test_llamacpp_is_asked_for_its_stopping_word() -> None:
    body, _ = build_request(request_make("hi", stop_sequences=["END"]), caps_make("llamacpp"), upstream_model="m")
    assert body["stop"] == ["END"]
    assert body["verbose"] is True and "stopping_word" in body["response_fields"]


def test_llamacpps_stopping_word_ends_a_non_streamed_turn_with_stop_sequence() -> None:
    body = _completion("1, 2", __verbose={"stop_type": "word", "stopping_word": "END", "truncated": False})
    message, _ = translate_response(body, caps_make("llamacpp"), request=request_make("hi", stop_sequences=["END"]),
                                    message_id="msg_1")
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")


def test_llamacpps_stopping_word_ends_a_streamed_turn_with_stop_sequence() -> None:
    final = {**chunk(finish="stop"), "__verbose": {"stop_type": "word", "stopping_word": "END", "truncated": False}}
    events, _ = stream_run([chunk({"content": "1, 2"}), final, usage_chunk()], caps=caps_make("llamacpp"),
                           request=request_make("hi", stop_sequences=["END"]))
    delta = next(e for e in events if e["type"] == "message_delta")["delta"]
    assert delta == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_a_gateway_matched_stop_sequence_is_not_sent_and_cuts_the_reply() -> None:
    caps = caps_make("generic", stop_sequences="gateway")
    req = request_make("hi", stop_sequences=["3,"])
    body, notes = build_request(req, caps, upstream_model="m")
    assert "stop" not in body and "stop_sequences.gateway" in [n.rule for n in notes]
    message, _ = translate_response(_completion("1, 2, 3, 4, 5"), caps, request=req, message_id="msg_1")
    assert (_text(message), message["stop_reason"], message["stop_sequence"]) == ("1, 2, ", "stop_sequence", "3,")


def test_a_gateway_matched_stop_sequence_split_over_chunks_ends_the_stream_at_once() -> None:
    caps = caps_make("generic", stop_sequences="gateway")
    req = request_make("hi", stop_sequences=["STOP"])
    from translation.openai_chat import ChatStreamTranslator

    translator = ChatStreamTranslator(caps, request=req, message_id="msg_1")
    events = translator.start()
    events += translator.feed(chunk({"content": "one ST"}))
    assert not any(e["type"] == "message_stop" for e in events)
    events += translator.feed(chunk({"content": "OP two"}))
    assert events[-1]["type"] == "message_stop"  # the relay stops reading and closes the upstream
    assert translator.feed(chunk({"content": "more"})) == []
    message = sdk_accumulate(events)
    assert (_text(message), message["stop_reason"], message["stop_sequence"]) == ("one ", "stop_sequence", "STOP")


def test_held_text_that_does_not_become_a_stop_sequence_is_sent_at_the_end() -> None:
    caps = caps_make("generic", stop_sequences="gateway")
    events, _ = stream_run([chunk({"content": "one ST"}), chunk(finish="stop")], caps=caps,
                           request=request_make("hi", stop_sequences=["STOP"]))
    message = sdk_accumulate(events)
    assert (_text(message), message["stop_reason"]) == ("one ST", "end_turn")


# -- 6. a full context ------------------------------------------------------------------------------------


def test_a_full_context_is_model_context_window_exceeded_not_max_tokens() -> None:
    body = _completion("and then", finish="length", __verbose={"truncated": True, "stopping_word": ""})
    message, _ = translate_response(body, caps_make("llamacpp"), request=request_make("hi"), message_id="msg_1")
    assert message["stop_reason"] == "model_context_window_exceeded"
    final = {**chunk(finish="length"), "__verbose": {"truncated": True}}
    events, _ = stream_run([chunk({"content": "and"}), final], caps=caps_make("llamacpp"))
    assert next(e for e in events if e["type"] == "message_delta")["delta"]["stop_reason"] == \
        "model_context_window_exceeded"


def test_a_length_finish_that_reaches_the_known_window_is_model_context_window_exceeded() -> None:
    body = _completion("x", finish="length")
    body["usage"] = {"prompt_tokens": 1000, "completion_tokens": 24}
    message, _ = translate_response(body, caps_make("vllm", context_window=1024), request=request_make("hi"),
                                    message_id="msg_1")
    assert message["stop_reason"] == "model_context_window_exceeded"
    message, _ = translate_response(body, caps_make("vllm", context_window=4096), request=request_make("hi"),
                                    message_id="msg_1")
    assert message["stop_reason"] == "max_tokens"


# -- 7. disable_parallel_tool_use ----------------------------------------------------------------------------

TOOLS = [{"name": "a", "input_schema": {"type": "object"}}, {"name": "b", "input_schema": {"type": "object"}}]
ONE_TOOL = {"tools": TOOLS, "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}


def _call(i: int, name: str) -> dict[str, Any]:
    return {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": "{}"}}


def test_a_non_streamed_reply_keeps_one_tool_call_when_parallel_use_is_disabled() -> None:
    body = _completion("", finish="tool_calls", tool_calls=[_call(0, "a"), _call(1, "b"), _call(2, "a")])
    message, notes = translate_response(body, caps_make("llamacpp"), request=request_make("go", **ONE_TOOL),
                                        message_id="msg_1")
    assert [b["name"] for b in message["content"] if b["type"] == "tool_use"] == ["a"]
    assert message["stop_reason"] == "tool_use"
    assert [n.rule for n in notes].count("tool_call.drop_parallel") == 2


def test_a_streamed_reply_keeps_one_tool_call_when_parallel_use_is_disabled() -> None:
    chunks = [chunk({"tool_calls": [{"index": i, **_call(i, n)}]}) for i, n in enumerate("aba")]
    events, _ = stream_run([*chunks, chunk(finish="tool_calls")], caps=caps_make("llamacpp"),
                           request=request_make("go", **ONE_TOOL))
    message = sdk_accumulate(events)
    assert [b["name"] for b in message["content"] if b["type"] == "tool_use"] == ["a"]


def test_parallel_tool_calls_stay_when_the_client_allows_them() -> None:
    body = _completion("", finish="tool_calls", tool_calls=[_call(0, "a"), _call(1, "b")])
    message, _ = translate_response(body, caps_make("llamacpp"), request=request_make("go", tools=TOOLS),
                                    message_id="msg_1")
    assert len([b for b in message["content"] if b["type"] == "tool_use"]) == 2


# -- 10. the thinking budget ---------------------------------------------------------------------------------


def test_llamacpp_gets_the_thinking_budget_as_thinking_budget_tokens() -> None:
    req = request_make("hi", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2048})
    body, _ = build_request(req, caps_make("llamacpp"), upstream_model="m")
    assert body["thinking_budget_tokens"] == 2048
    assert body["chat_template_kwargs"] == {"enable_thinking": True}


# -- 5 and 6. backend errors that are the client's request ---------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("request (3120 tokens) exceeds the available context size (2048 tokens), try increasing it",
     "prompt is too long: 3120 tokens > 2048 maximum"),
    ("The input (9000 tokens) is longer than the model's context length (8192 tokens).",
     "prompt is too long: 9000 tokens > 8192 maximum"),
    ("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (1000 in the "
     "messages, 4000 in the completion). Please reduce the length of the messages or completion.",
     "input length and `max_tokens` exceed context limit: 1000 + 4000 > 4096, decrease input length or "
     "`max_tokens` and try again"),
])
def test_a_context_overflow_reads_as_anthropics(text: str, expected: str) -> None:
    error = backend_error_reclassify(text)
    assert error is not None and (error.status, error.type, error.message) == (400, "invalid_request_error", expected)


@pytest.mark.parametrize("text", ["image input is not supported - hint: if this is unexpected, you may need to "
                                  "provide the mmproj", "tools param requires --jinja flag"])
def test_a_request_the_server_can_never_serve_is_a_400(text: str) -> None:
    error = backend_error_reclassify(text)
    assert error is not None and error.status == 400 and error.source == "client"


def test_an_ordinary_server_failure_stays_a_server_failure() -> None:
    assert backend_error_reclassify("CUDA error: out of memory") is None
