"""Native Anthropic streams are relayed event for event (Anthropic docs, streaming messages): only the message id and
model change, a prefix repeated after a prefill rewrite is removed, failures end in ``error``."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.translation.support import CLAUDE_CODE_FIXTURES, caps_make, request_make, sdk_accumulate
from translation.anthropic import AnthropicStreamRelay, translate_response
from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.validate import stream_validate

PREFILL = [{"role": "user", "content": "Say hello world"}, {"role": "assistant", "content": "hello"}]


def recorded_stream(name: str) -> list[dict[str, Any]]:
    """The events of a recorded stream Claude Code accepted (tests/fixtures/claude-code)."""
    text = (CLAUDE_CODE_FIXTURES / f"sse_{name}.accepted-by-claude-code.txt").read_text()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def relay(events: list[dict[str, Any]], *, caps: Capabilities | None = None, messages: Any = "hi",
          finish: bool = False) -> tuple[list[dict[str, Any]], AnthropicStreamRelay]:
    translator = AnthropicStreamRelay(caps or caps_make("anthropic"), request=request_make(messages),
                                      message_id="msg_gateway")
    out = translator.start()
    for event in events:
        out += translator.feed(copy.deepcopy(event))
    if finish:
        out += translator.finish()
    return out, translator


def message_start(**usage: int) -> dict[str, Any]:
    return {"type": "message_start", "message": {
        "id": "msg_upstream", "type": "message", "role": "assistant", "model": "claude-opus-4-6", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1, **usage}}}


def text_block(index: int, *pieces: str) -> list[dict[str, Any]]:
    return [{"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            *({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}
              for p in pieces),
            {"type": "content_block_stop", "index": index}]


def tool_block(index: int) -> list[dict[str, Any]]:
    return [{"type": "content_block_start", "index": index,
             "content_block": {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {}}},
            {"type": "content_block_delta", "index": index,
             "delta": {"type": "input_json_delta", "partial_json": '{"command":'}},
            {"type": "content_block_delta", "index": index,
             "delta": {"type": "input_json_delta", "partial_json": '"ls"}'}},
            {"type": "content_block_stop", "index": index}]


def ending(stop_reason: str = "end_turn") -> list[dict[str, Any]]:
    return [{"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
             "usage": {"output_tokens": 7}},
            {"type": "message_stop"}]


def texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"
            and e["delta"]["type"] == "text_delta"]


@pytest.mark.parametrize("name", ["text", "thinking_text_tool_use"])
def test_a_recorded_stream_is_relayed_event_for_event_except_id_and_model(name: str) -> None:
    upstream = recorded_stream(name)
    out, translator = relay(upstream)
    expected = copy.deepcopy(upstream)
    expected[0]["message"].update(id="msg_gateway", model="claude-test")
    assert out == expected
    assert stream_validate(out) is None
    assert translator.upstream_finished and translator.notes == []
    sdk = sdk_accumulate(out)
    assert {k: translator.message[k] for k in ("id", "model", "content", "stop_reason", "usage")} == {
        k: sdk[k] for k in ("id", "model", "content", "stop_reason", "usage")}


def test_the_relayed_message_is_what_the_client_saw() -> None:
    out, translator = relay(recorded_stream("thinking_text_tool_use"))
    message = translator.message
    assert message["id"] == "msg_gateway" and message["model"] == "claude-test"
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][0]["signature"] == "EqQBMockSignature3040d4d29ccc41c7936906818de51828"
    assert message["content"][2]["input"] == {"command": "echo hello-from-mock-tool && pwd",
                                              "description": "Print a greeting"}
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["output_tokens"] == 17 and message["usage"]["input_tokens"] == 62
    assert message["content"] == sdk_accumulate(out)["content"]


def test_start_emits_nothing_and_a_missing_message_start_is_made_up() -> None:
    out, translator = relay([*text_block(0, "hi"), *ending()])
    assert out[0]["type"] == "message_start" and out[0]["message"]["id"] == "msg_gateway"
    assert stream_validate(out) is None
    assert [n.rule for n in translator.notes] == ["stream.message_start_missing"]


# -- prefill=rewrite: the repeated prefix is removed ---------------------------------------------


def test_a_repeated_prefix_is_held_back_and_removed() -> None:
    out, translator = relay([message_start(), *text_block(0, "hel", "lo", " wor", "ld."), *ending()],
                            caps=caps_make("anthropic-no-prefill"), messages=PREFILL)
    assert [e["type"] for e in out[:3]] == ["message_start", "content_block_start", "content_block_delta"]
    assert texts(out) == [" wor", "ld."]
    assert stream_validate(out) is None
    assert translator.message["content"] == [{"type": "text", "text": " world."}]
    assert [n.rule for n in translator.notes] == ["prefill.strip_repeated_prefix"]


def test_text_that_only_starts_like_the_prefix_is_released_whole() -> None:
    out, translator = relay([message_start(), *text_block(0, "he", "lp!"), *ending()],
                            caps=caps_make("anthropic-no-prefill"), messages=PREFILL)
    assert texts(out) == ["help!"]
    assert translator.message["content"] == [{"type": "text", "text": "help!"}]
    assert translator.notes == []


def test_a_block_that_ends_inside_the_prefix_is_released_before_its_stop() -> None:
    out, _ = relay([message_start(), *text_block(0, "hel"), *ending()],
                   caps=caps_make("anthropic-no-prefill"), messages=PREFILL)
    assert [e["type"] for e in out] == ["message_start", "content_block_start", "content_block_delta",
                                        "content_block_stop", "message_delta", "message_stop"]
    assert texts(out) == ["hel"]


def test_a_block_that_was_only_the_prefix_disappears_and_later_blocks_are_renumbered() -> None:
    out, translator = relay([message_start(), *text_block(0, "hello"), *tool_block(1), *ending("tool_use")],
                            caps=caps_make("anthropic-no-prefill"), messages=PREFILL)
    assert stream_validate(out) is None
    starts = [(e["index"], e["content_block"]["type"]) for e in out if e["type"] == "content_block_start"]
    assert starts == [(0, "tool_use")]
    assert translator.message["content"] == [{"type": "tool_use", "id": "toolu_01", "name": "Bash",
                                              "input": {"command": "ls"}}]


def test_the_prefix_is_looked_for_in_the_first_text_block_after_thinking() -> None:
    thinking = recorded_stream("thinking_text_tool_use")[2:6]
    out, translator = relay([message_start(), *thinking, *text_block(1, "hello", " world."), *ending()],
                            caps=caps_make("anthropic-no-prefill"), messages=PREFILL)
    assert stream_validate(out) is None
    assert texts(out) == [" world."]
    assert [b["type"] for b in translator.message["content"]] == ["thinking", "text"]


def test_native_prefill_backends_strip_nothing() -> None:
    out, _ = relay([message_start(), *text_block(0, "hello", " world."), *ending()], messages=PREFILL)
    assert texts(out) == ["hello", " world."]


@given(reply=st.sampled_from(["hello world.", "hello", "hel", "help me", "hello", " hello", "hi", ""]),
       cuts=st.lists(st.integers(min_value=1, max_value=11), max_size=4))
def test_any_chunking_gives_the_non_streamed_message(reply: str, cuts: list[int]) -> None:
    caps = caps_make("anthropic-no-prefill")
    points = sorted({c for c in cuts if c < len(reply)})
    pieces = [reply[a:b] for a, b in zip([0, *points], [*points, len(reply)], strict=True)] if reply else []
    out, translator = relay([message_start(), *text_block(0, *pieces), *ending()], caps=caps, messages=PREFILL)
    upstream = {"id": "msg_upstream", "type": "message", "role": "assistant", "model": "x",
                "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 7}}
    expected, _ = translate_response(upstream, caps, request=request_make(PREFILL), message_id="msg_gateway")
    assert stream_validate(out) is None
    assert translator.message["content"] == expected["content"]


# -- endings and failures ---------------------------------------------------------------------


def test_fail_closes_the_open_block_and_ends_with_error() -> None:
    translator = AnthropicStreamRelay(caps_make("anthropic"), request=request_make(), message_id="msg_gateway")
    out = translator.feed(message_start()) + translator.feed(text_block(0, "partial")[0])
    out += translator.feed(text_block(0, "partial")[1])
    out += translator.fail(ApiError(500, "backend b closed the connection", source="backend"))
    assert [e["type"] for e in out[-2:]] == ["content_block_stop", "error"]
    assert out[-1] == {"type": "error", "error": {"type": "api_error", "message": "backend b closed the connection"}}
    assert stream_validate(out) is None
    assert translator.feed({"type": "message_stop"}) == [] and translator.finish() == []
    assert not translator.upstream_finished


def test_an_upstream_error_event_is_relayed_after_closing_the_block() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    out, translator = relay([message_start(), *text_block(0, "par")[:2], error, *ending()])
    assert out[-2:] == [{"type": "content_block_stop", "index": 0}, error]
    assert stream_validate(out) is None
    assert translator.error is not None and (translator.error.status, translator.error.type) == (529, "overloaded_error")


def test_an_error_before_anything_is_just_the_error() -> None:
    translator = AnthropicStreamRelay(caps_make("anthropic"), request=request_make(), message_id="m")
    out = translator.fail(ApiError(529, "Overloaded", type="overloaded_error"))
    assert out == [{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    assert stream_validate(out) is None


def test_a_stream_cut_after_message_delta_is_finished_with_message_stop() -> None:
    events = [message_start(), *text_block(0, "done"), *ending()[:1]]
    out, translator = relay(events)
    assert translator.upstream_finished
    out += translator.finish()
    assert out[-1] == {"type": "message_stop"}
    assert stream_validate(out) is None


def test_ping_and_unknown_events_pass_through() -> None:
    unknown = {"type": "future_event", "x": 1}
    out, _ = relay([message_start(), {"type": "ping"}, unknown, *text_block(0, "a"), *ending()])
    assert out[1:3] == [{"type": "ping"}, unknown]
    assert stream_validate(out) is None
