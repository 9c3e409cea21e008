"""SSE: events encode as event/data lines; the decoder follows WHATWG whatever the byte splits."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from translation.sse import ServerSentEvent, SSEDecoder, sse_encode


def decode_all(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    out: list[ServerSentEvent] = []
    for c in chunks:
        out += decoder.feed(c)
    return out + decoder.flush()


def test_an_event_encodes_as_an_event_line_and_one_compact_data_line() -> None:
    assert sse_encode({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    encoded = sse_encode({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "é\n"}})
    assert encoded == b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,' \
                      b'"delta":{"type":"text_delta","text":"\xc3\xa9\\n"}}\n\n'


def test_decoder_handles_the_whatwg_line_rules() -> None:
    stream = (b"\xef\xbb\xbf: comment\r\n"
              b"event: a\rdata: 1\r\ndata:2\n\n"      # CR, CRLF and LF endings; no space after colon
              b"data\n\n"                               # field without colon: empty data
              b"id: 7\nretry: 10\nunknown: x\ndata:  two spaces\n\n"
              b"event: lonely\n\n"                      # no data: not dispatched
              b"data: [DONE]")                          # unterminated at EOF: flushed
    assert decode_all([stream]) == [
        ServerSentEvent("a", "1\n2"), ServerSentEvent(None, ""),
        ServerSentEvent(None, " two spaces", "7"), ServerSentEvent(None, "[DONE]", "7")]


def test_a_cr_at_the_end_of_a_chunk_and_an_lf_at_the_start_of_the_next_are_one_line_end() -> None:
    assert decode_all([b"data: x\r", b"\n", b"\r", b"\ndata: y\n\n"]) == [
        ServerSentEvent(None, "x"), ServerSentEvent(None, "y")]


def test_the_anthropic_sdk_fixture_style_stream_decodes() -> None:
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {"content": []}}, {"type": "ping"},
                                    {"type": "message_stop"}]
    decoded = decode_all([b"".join(sse_encode(e) for e in events)])
    assert [(d.event, orjson.loads(d.data)) for d in decoded] == [(e["type"], e) for e in events]


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20)
_event = st.tuples(st.one_of(st.none(), _text.filter(lambda t: t == t.strip() and t)),
                   st.lists(_text, min_size=1, max_size=3))


@settings(max_examples=200, deadline=None)
@given(events=st.lists(_event, max_size=6), newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_any_byte_split_decodes_to_the_same_events(events: list[tuple[str | None, list[str]]], newline: bytes,
                                                   cuts: list[int]) -> None:
    wire = b""
    for name, data_lines in events:
        if name is not None:
            wire += b"event: " + name.encode() + newline
        for line in data_lines:
            wire += b"data: " + line.encode() + newline
        wire += newline
    points = sorted({c % (len(wire) + 1) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    expected = [ServerSentEvent(name, "\n".join(lines)) for name, lines in events]
    assert decode_all(chunks) == expected
