"""The stream validator accepts streams Claude Code accepted and names the first violation of broken ones."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from tests.translation.support import CLAUDE_CODE_FIXTURES
from translation.sse import SSEDecoder
from translation.validate import StreamValidator, stream_validate


def fixture_events(name: str) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    raw = (CLAUDE_CODE_FIXTURES / name).read_bytes()
    decoded = decoder.feed(raw) + decoder.flush()
    events = [orjson.loads(e.data) for e in decoded]
    assert [e["type"] for e in events] == [d.event for d in decoded]
    return events


@pytest.mark.parametrize("name", ["sse_text.accepted-by-claude-code.txt",
                                  "sse_thinking_text_tool_use.accepted-by-claude-code.txt"])
def test_streams_claude_code_accepted_are_valid(name: str) -> None:
    assert stream_validate(fixture_events(name)) is None


GOOD = fixture_events("sse_thinking_text_tool_use.accepted-by-claude-code.txt")


def _index_of(events: list[dict[str, Any]], predicate: Any) -> int:
    return next(i for i, e in enumerate(events) if predicate(e))


def _broken(change: Any) -> list[dict[str, Any]]:
    events = copy.deepcopy(GOOD)
    change(events)
    return events


@pytest.mark.parametrize("change, expected", [
    (lambda ev: ev.pop(0), "the first event must be message_start"),
    (lambda ev: ev[0]["message"].update(content=[{"type": "text", "text": "x"}]), "content must be []"),
    (lambda ev: ev[0]["message"].pop("usage"), "usage.input_tokens missing"),
    (lambda ev: ev.__setitem__(_index_of(ev, lambda e: e["type"] == "content_block_start"),
                               {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
     "block index 1, expected 0"),
    (lambda ev: ev.pop(_index_of(ev, lambda e: e["type"] == "content_block_stop")), "starts while block 0 is open"),
    (lambda ev: ev.pop(_index_of(ev, lambda e: e.get("delta", {}).get("type") == "signature_delta")),
     "thinking block closed without a signature"),
    (lambda ev: ev[_index_of(ev, lambda e: e.get("delta", {}).get("type") == "text_delta")].update(
        delta={"type": "input_json_delta", "partial_json": "{"}), "input_json_delta in a text block"),
    (lambda ev: ev[_index_of(ev, lambda e: e.get("delta", {}).get("partial_json") == '"}')]["delta"].update(
        partial_json='"}}'), "tool input JSON does not parse"),
    (lambda ev: ev[_index_of(ev, lambda e: e.get("delta", {}).get("type") == "input_json_delta")]["delta"].update(
        partial_json=" "), "whitespace-only partial_json"),
    (lambda ev: ev[-2].pop("usage"), "message_delta without usage.output_tokens"),
    (lambda ev: ev.pop(-2), "message_stop without a message_delta"),
    (lambda ev: ev.pop(), "without message_stop"),
    (lambda ev: ev.append({"type": "ping"}), "event after message_stop"),
    (lambda ev: ev[_index_of(ev, lambda e: e.get("content_block", {}).get("type") == "tool_use")]["content_block"].update(
        id="functions.Bash:0"), "does not match"),
])
def test_broken_streams_are_reported_with_their_first_violation(change: Any, expected: str) -> None:
    problem = stream_validate(_broken(change))
    assert problem is not None and expected in problem


def test_an_error_event_ends_a_valid_stream_and_nothing_may_follow() -> None:
    start = GOOD[:3]
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert stream_validate([*start, error]) is None
    problem = stream_validate([*start, error, {"type": "message_stop"}])
    assert problem is not None and "event after error" in problem


def test_the_incremental_validator_reports_at_the_offending_event() -> None:
    validator = StreamValidator()
    assert validator.feed(GOOD[0]) is None
    problem = validator.feed({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}})
    assert problem is not None and problem.startswith("event 1")
