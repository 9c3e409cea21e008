"""A backend that ignores ``max_tokens`` is cut near the limit (translation.outputcap), streamed
through every translator kind and not streamed; one that keeps to it is never touched."""

from __future__ import annotations

from typing import Any

from translation.anthropic.stream import AnthropicStreamRelay
from translation.capabilities import Capabilities
from translation.openai_chat.stream import ChatStreamTranslator
from translation.outputcap import CappedStream, message_capped, output_chars_limit
from translation.schemas import messages_request_parse
from translation.validate import stream_validate

REQUEST = messages_request_parse(b'{"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}')
LIMIT = output_chars_limit(10)


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def run(stream: CappedStream, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = stream.start()
    for chunk in chunks:
        events += stream.feed(chunk)
        if events and events[-1]["type"] == "message_stop":
            return events
    return events + stream.finish()


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")


def test_the_limit_is_six_characters_per_token_plus_a_grace() -> None:
    assert output_chars_limit(10) == 6 * 10 + 1024
    assert output_chars_limit(0) == 1024


def test_a_chat_stream_past_the_limit_ends_with_max_tokens_at_the_next_chunk() -> None:
    capped = CappedStream(ChatStreamTranslator(Capabilities(), request=REQUEST, message_id="msg_1"), max_tokens=10)
    chunks = [chat_chunk({"content": "x" * 100}) for _ in range(50)] + [chat_chunk({}, "stop")]
    events = run(capped, chunks)
    assert stream_validate(events) is None
    assert LIMIT < len(text_of(events)) <= LIMIT + 100
    assert events[-2]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert events[-2]["usage"]["output_tokens"] >= len(text_of(events)) // 3
    assert capped.message["stop_reason"] == "max_tokens"
    assert [n.rule for n in capped.notes].count("max_tokens.enforce") == 1
    assert capped.feed(chat_chunk({"content": "late"})) == []


def test_a_tool_call_cut_mid_arguments_still_closes_as_parseable_json() -> None:
    capped = CappedStream(ChatStreamTranslator(Capabilities(), request=REQUEST, message_id="msg_1"), max_tokens=10)
    first = {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "Write", "arguments": '{"text": "'}}]}
    more = {"tool_calls": [{"index": 0, "function": {"arguments": "y" * 200}}]}
    events = run(capped, [chat_chunk(first)] + [chat_chunk(more)] * 20)
    assert stream_validate(events) is None
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"


def test_a_native_anthropic_stream_past_the_limit_is_ended_the_same_way() -> None:
    relay = AnthropicStreamRelay(Capabilities(), request=REQUEST, message_id="msg_1")
    capped = CappedStream(relay, max_tokens=10)
    start = {"type": "message_start", "message": {"id": "up", "type": "message", "role": "assistant", "model": "m",
                                                   "content": [], "stop_reason": None, "stop_sequence": None,
                                                   "usage": {"input_tokens": 5, "output_tokens": 1}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "z" * 90}}
    events = run(capped, [start, block] + [delta] * 30)
    assert stream_validate(events) is None
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert capped.message["stop_reason"] == "max_tokens"


def test_a_stream_within_the_limit_is_untouched() -> None:
    plain = ChatStreamTranslator(Capabilities(), request=REQUEST, message_id="msg_1")
    capped = CappedStream(ChatStreamTranslator(Capabilities(), request=REQUEST, message_id="msg_1"), max_tokens=10)
    chunks = [chat_chunk({"content": "x" * 100}) for _ in range(10)] + [chat_chunk({}, "stop")]
    assert run(capped, chunks) == run(CappedStream(plain, max_tokens=10**9), chunks)
    assert capped.message["stop_reason"] == "end_turn"
    assert "max_tokens.enforce" not in [n.rule for n in capped.notes]


def test_one_chunk_far_past_the_limit_is_relayed_whole_and_still_ends_as_max_tokens() -> None:
    capped = CappedStream(ChatStreamTranslator(Capabilities(), request=REQUEST, message_id="msg_1"), max_tokens=10)
    # Streams are cut between chunks; the reply was over budget all the same, as the
    # non-streamed answer to the same request says.
    events = run(capped, [{"choices": [{"index": 0, "delta": {"content": "x" * 5000}, "finish_reason": "stop"}]}])
    assert text_of(events) == "x" * 5000
    assert events[-2]["delta"]["stop_reason"] == "max_tokens" and capped.tripped


def message(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": list(blocks),
            "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 7}}


def test_a_non_streamed_reply_is_cut_at_exactly_the_limit_and_a_tool_call_that_does_not_fit_dropped() -> None:
    long = message({"type": "thinking", "thinking": "t" * 1000, "signature": "sig"},
                   {"type": "text", "text": "x" * 1000},
                   {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}})
    capped, notes = message_capped(long, [], max_tokens=10)
    assert [b["type"] for b in capped["content"]] == ["thinking", "text"]
    assert capped["content"][0] == {"type": "thinking", "thinking": "t" * 1000, "signature": "sig"}
    assert capped["content"][1]["text"] == "x" * (LIMIT - 1000)
    assert capped["stop_reason"] == "max_tokens" and capped["stop_sequence"] is None
    assert capped["usage"] == {"input_tokens": 3, "output_tokens": -(-LIMIT // 3)}
    assert [n.rule for n in notes] == ["max_tokens.enforce"]


def test_a_non_streamed_reply_within_the_limit_is_the_same_object() -> None:
    fits = message({"type": "text", "text": "x" * LIMIT})
    assert message_capped(fits, [], max_tokens=10) == (fits, [])
