"""Responses API streams become grammatical Anthropic streams that fold to the non-streamed message.

Recorded-shape event sequences come from the mock backend's renderer (shaped on openai-python's
``response_stream_event.py`` and vLLM's ``simple_streaming_events.py``); every translated stream
must pass ``stream_validate`` and fold, in the real Anthropic SDK accumulator, to exactly what
``translate_response`` makes of the final ``response`` object of the same stream.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.mockbackend.responses import RESPONSES_SCENARIOS, events_render
from tests.translation.support import caps_make, request_make, sdk_accumulate
from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.openai_responses import ResponsesStreamTranslator, translate_response
from translation.schemas import MessagesRequest
from translation.signature import signature_read
from translation.validate import stream_validate

TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


def run(upstream: list[dict[str, Any]], *, request: MessagesRequest | None = None,
        caps: Capabilities | None = None) -> tuple[list[dict[str, Any]], ResponsesStreamTranslator]:
    """Feed events like the pipeline does: stop at the first message_stop/error; at EOF finish
    if the backend finished, else fail."""
    translator = ResponsesStreamTranslator(caps or caps_make(), request=request or request_make(tools=TOOLS),
                                           message_id="msg_s", input_tokens_estimate=9)
    events = translator.start()
    for event in upstream:
        events += translator.feed(event)
        if events[-1]["type"] in ("message_stop", "error"):
            return events, translator
    events += translator.finish() if translator.upstream_finished else translator.fail(
        ApiError(500, "backend ended the stream before finishing the message"))
    return events, translator


def scenario_events(name: str, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    request_body = body or {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "Bash"}]}
    reply = RESPONSES_SCENARIOS[name](request_body)
    return events_render(request_body, reply, id="resp_t")


def final_response(events: list[dict[str, Any]]) -> dict[str, Any]:
    last = events[-1]
    assert last["type"] in ("response.completed", "response.incomplete")
    response: dict[str, Any] = last["response"]
    return response


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e["type"] == "content_block_start":
            out.append(("start", e["index"], e["content_block"]["type"]))
        elif e["type"] == "content_block_delta":
            delta = e["delta"]
            value = delta.get("text", delta.get("thinking", delta.get("partial_json", "")))
            out.append((delta["type"], e["index"], value if delta["type"] != "signature_delta" else "sig"))
        elif e["type"] == "content_block_stop":
            out.append(("stop", e["index"]))
        elif e["type"] == "message_delta":
            out.append(("message_delta", e["delta"]["stop_reason"], e["delta"]["stop_sequence"]))
        else:
            out.append((e["type"],))
    return out


STREAMABLE = [name for name in RESPONSES_SCENARIOS if name not in ("failed", "error_mid_stream")]


@pytest.mark.parametrize("name", STREAMABLE)
def test_every_scenario_streams_validly_to_the_non_streamed_message(name: str) -> None:
    upstream = scenario_events(name)
    events, translator = run(upstream)
    assert stream_validate(events) is None
    message, _ = translate_response(final_response(upstream), caps_make(), request=request_make(tools=TOOLS),
                                    message_id="msg_s", input_tokens_estimate=9)
    folded = sdk_accumulate(events)
    for key in ("content", "stop_reason", "stop_sequence", "usage"):
        assert folded[key] == message[key], key
    assert translator.message["content"] == message["content"]
    assert translator.upstream_finished


def test_text_streams_event_for_event() -> None:
    events, _ = run(scenario_events("text"))
    assert shape(events) == [
        ("message_start",), ("start", 0, "text"),
        ("text_delta", 0, "Hello f"), ("text_delta", 0, "rom the"), ("text_delta", 0, " mock R"),
        ("text_delta", 0, "esponse"), ("text_delta", 0, "s backe"), ("text_delta", 0, "nd! You"),
        ("text_delta", 0, ' said: '), ("text_delta", 0, '"hi".'),
        ("stop", 0), ("message_delta", "end_turn", None), ("message_stop",)]


def test_usage_comes_from_response_completed_with_cached_tokens_apart() -> None:
    upstream = scenario_events("text", {"model": "m", "input": "a longer question " * 20})
    usage = final_response(upstream)["usage"]
    events, translator = run(upstream)
    assert events[-2]["usage"] == {
        "input_tokens": usage["input_tokens"] - usage["input_tokens_details"]["cached_tokens"],
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage["input_tokens_details"]["cached_tokens"],
        "output_tokens": usage["output_tokens"]}
    assert events[-2]["usage"]["cache_read_input_tokens"] > 0
    # The message the inspector records and the one the client folds carry the same split.
    assert translator.message["usage"] == sdk_accumulate(events)["usage"] == events[-2]["usage"]


def test_summary_deltas_become_one_thinking_block_signed_with_the_item_at_its_end() -> None:
    upstream = scenario_events("reasoning")
    item = final_response(upstream)["output"][0]
    events, _ = run(upstream)
    kinds = shape(events)
    assert kinds[1] == ("start", 0, "thinking")
    thinking = "".join(k[2] for k in kinds if k[0] == "thinking_delta")
    assert thinking == "The user wants a short answer.\n\nLet me run a tool to be sure."
    signature = next(e["delta"]["signature"] for e in events if e["type"] == "content_block_delta"
                     and e["delta"]["type"] == "signature_delta")
    assert signature_read(signature) == {"src": "responses", "id": item["id"], "enc": item["encrypted_content"],
                                         "sl": [30, 29]}
    assert kinds.index(("signature_delta", 0, "sig")) + 1 == kinds.index(("stop", 0))


def test_vllm_reasoning_text_deltas_become_a_thinking_block_marked_raw() -> None:
    events, translator = run(scenario_events("reasoning_raw"))
    assert stream_validate(events) is None
    thinking = translator.message["content"][0]
    assert thinking["thinking"] == "Okay, the user asks something simple; I answer directly."
    assert signature_read(thinking["signature"])["raw"] is True  # type: ignore[index]


@pytest.mark.parametrize("name", ["tool_call", "tool_call_done_only", "tool_call_in_added", "tool_call_vllm"])
def test_function_call_arguments_reach_the_client_exactly_wherever_they_travel(name: str) -> None:
    events, _ = run(scenario_events(name))
    assert stream_validate(events) is None
    tool_events = [e for e in events if e.get("index") == 1]
    assert tool_events[0]["content_block"] == {"type": "tool_use", "id": "call_mockResponses0001", "name": "Bash",
                                               "input": {}}
    arguments = "".join(e["delta"]["partial_json"] for e in tool_events if e["type"] == "content_block_delta")
    assert arguments == '{"command":"echo hello","description":"Print a greeting"}'
    assert sdk_accumulate(events)["stop_reason"] == "tool_use"


def test_a_refusal_streams_as_text_with_stop_reason_refusal() -> None:
    events, _ = run(scenario_events("refusal"))
    folded = sdk_accumulate(events)
    assert [(b["type"], b["text"]) for b in folded["content"]] == [("text", "I'm sorry, but I can't help with that.")]
    assert folded["stop_reason"] == "refusal"


def test_incomplete_for_max_output_tokens_is_max_tokens() -> None:
    events, _ = run(scenario_events("incomplete"))
    assert shape(events)[-2] == ("message_delta", "max_tokens", None)


@pytest.mark.parametrize(("name", "error_type"), [("failed", "api_error"), ("error_mid_stream", "api_error")])
def test_failed_responses_and_error_events_end_the_stream_with_an_error_event(name: str, error_type: str) -> None:
    events, translator = run(scenario_events(name))
    assert stream_validate(events) is None
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == error_type
    assert translator.error is not None
    assert ("stop", 0) in shape(events)  # the open text block was closed first


def test_a_rate_limit_error_event_keeps_its_kind() -> None:
    events, _ = run([{"type": "response.created", "response": {}},
                     {"type": "error", "code": "rate_limit_exceeded", "message": "slow down", "param": None}])
    assert events[-1] == {"type": "error", "error": {"type": "rate_limit_error",
                                                     "message": "backend error: slow down"}}


def test_a_stream_cut_before_response_completed_is_not_finished() -> None:
    upstream = scenario_events("text")[:-1]
    events, translator = run(upstream)
    assert not translator.upstream_finished
    assert events[-1]["type"] == "error"


def test_a_stop_sequence_split_across_deltas_cuts_the_text_and_ends_the_message() -> None:
    request = request_make("count", stop_sequences=["STOP"])
    upstream = scenario_events("stop_text")  # "Counting: 1 2 3 STOP 4 5 6" in 7-character deltas
    events, translator = run(upstream, request=request)
    assert stream_validate(events) is None
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "Counting: 1 2 3 "
    assert shape(events)[-2] == ("message_delta", "stop_sequence", "STOP")
    assert translator.upstream_finished  # ended by the gateway: the pipeline stops reading
    assert [n.rule for n in translator.notes] == ["stop_sequences.matched"]


def test_only_the_longest_possible_stop_prefix_is_held_back() -> None:
    request = request_make("x", stop_sequences=["abc"])
    deltas = ["xxa", "bxa", "ab"]
    upstream = [{"type": "response.output_item.added", "output_index": 0,
                 "item": {"id": "m", "type": "message", "role": "assistant", "content": []}},
                *({"type": "response.output_text.delta", "output_index": 0, "item_id": "m", "content_index": 0,
                   "delta": d} for d in deltas)]
    translator = ResponsesStreamTranslator(caps_make(), request=request, message_id="msg_s")
    emitted = [[e["delta"]["text"] for e in translator.feed(u) if e["type"] == "content_block_delta"]
               for u in upstream]
    assert emitted == [[], ["xx"], ["abx"], ["a"]]
    events = translator.feed({"type": "response.completed", "response": {"status": "completed"}})
    assert [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"] == ["ab"]
    assert translator.stop_reason == "end_turn"


def test_interleaved_items_never_interleave_blocks() -> None:
    def delta(index: int, text: str) -> dict[str, Any]:
        return {"type": "response.output_text.delta", "output_index": index, "item_id": f"m{index}",
                "content_index": 0, "delta": text}

    def added(index: int, item: dict[str, Any]) -> dict[str, Any]:
        return {"type": "response.output_item.added", "output_index": index, "item": item}

    upstream = [
        added(0, {"id": "m0", "type": "message", "role": "assistant", "content": []}),
        added(1, {"id": "fc", "type": "function_call", "call_id": "call_9", "name": "Bash", "arguments": ""}),
        {"type": "response.function_call_arguments.delta", "output_index": 1, "item_id": "fc", "delta": '{"a":'},
        delta(0, "Hello"),
        {"type": "response.function_call_arguments.delta", "output_index": 1, "item_id": "fc", "delta": "1}"},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"id": "m0", "type": "message", "content": [{"type": "output_text", "text": "Hello"}]}},
        {"type": "response.output_item.done", "output_index": 1,
         "item": {"id": "fc", "type": "function_call", "call_id": "call_9", "name": "Bash", "arguments": '{"a":1}'}},
        {"type": "response.completed", "response": {"status": "completed", "usage": None}},
    ]
    events, _ = run(upstream)
    assert stream_validate(events) is None
    assert shape(events)[1:-2] == [("start", 0, "text"), ("text_delta", 0, "Hello"), ("stop", 0),
                                   ("start", 1, "tool_use"), ("input_json_delta", 1, '{"a":1}'), ("stop", 1)]


def test_a_text_only_done_event_without_deltas_still_reaches_the_client() -> None:
    upstream = [
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"id": "m", "type": "message", "role": "assistant", "content": []}},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"id": "m", "type": "message", "content": [{"type": "output_text", "text": "whole"}]}},
        {"type": "response.completed", "response": {"status": "completed"}},
    ]
    events, translator = run(upstream)
    assert stream_validate(events) is None
    assert translator.message["content"] == [{"type": "text", "text": "whole"}]
    assert [n.rule for n in translator.notes] == ["usage.missing"]


# -- any chunking of the same response folds to the same message -------------------------------


def _rechunk(draw: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in events:
        delta = event.get("delta")
        if not event["type"].endswith(".delta") or not isinstance(delta, str) or len(delta) < 2:
            out.append(event)
            continue
        cuts = sorted(set(draw(st.lists(st.integers(min_value=1, max_value=len(delta) - 1), max_size=3))))
        for a, b in zip([0, *cuts], [*cuts, len(delta)], strict=True):
            piece = copy.deepcopy(event)
            piece["delta"] = delta[a:b]
            out.append(piece)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(STREAMABLE))
def test_any_chunking_and_any_stop_sequence_give_the_non_streamed_message(data: Any, name: str) -> None:
    upstream = scenario_events(name)
    final = final_response(upstream)
    texts = [p.get("text", "") for item in final["output"] if item["type"] == "message"
             for p in item["content"]]
    stops = None
    if texts and data.draw(st.booleans()):
        text = "".join(texts)
        start = data.draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))
        stops = [text[start:start + data.draw(st.integers(min_value=1, max_value=4))] or "zz", "never-there"]
    request = request_make("hi", tools=TOOLS, stop_sequences=stops) if stops else request_make("hi", tools=TOOLS)
    events, _ = run(_rechunk(data.draw, upstream), request=request)
    assert stream_validate(events) is None
    message, _ = translate_response(final, caps_make(), request=request, message_id="msg_s", input_tokens_estimate=9)
    folded = sdk_accumulate(events)
    assert folded["content"] == message["content"]
    assert (folded["stop_reason"], folded["stop_sequence"]) == (message["stop_reason"], message["stop_sequence"])
