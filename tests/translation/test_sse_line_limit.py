"""The SSE decoder's line buffer is bounded and linear.

A backend that trickles bytes without a line ending must neither grow the gateway's memory
without limit nor cost it quadratic time: a line longer than ``max_line_bytes`` (its line ending
not counted), or an event whose data lines are longer together, raises ``SSELineTooLong``; a
line up to the limit decodes as always, however it is cut.
"""

from __future__ import annotations

from typing import Any, SupportsIndex

import pytest

from translation.sse import LINE_MAX_BYTES, ServerSentEvent, SSEDecoder, SSELineTooLong


def test_a_line_of_exactly_the_limit_decodes_whatever_its_pieces() -> None:
    line = b"data: " + b"x" * 94  # 100 bytes
    decoder = SSEDecoder(max_line_bytes=100)
    out = [e for i in range(len(line)) for e in decoder.feed(line[i:i + 1])]
    out += decoder.feed(b"\r\n\r\n")
    assert out == [ServerSentEvent(None, "x" * 94)]


def test_a_line_without_an_end_raises_as_soon_as_it_passes_the_limit() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    assert decoder.feed(b"data: " + b"x" * 60) == []
    assert decoder.feed(b"x" * 34) == []  # 100 bytes held: the line ending may come next
    with pytest.raises(SSELineTooLong, match="longer than 100 bytes") as raised:
        decoder.feed(b"x")
    assert raised.value.limit == 100


def test_a_long_line_that_arrives_whole_raises_too() -> None:
    with pytest.raises(SSELineTooLong):
        SSEDecoder(max_line_bytes=100).feed(b"data: ok\n\ndata: " + b"x" * 95 + b"\n\n")


def test_an_event_whose_data_lines_pass_the_limit_together_raises() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    assert decoder.feed(b"data: " + b"x" * 40 + b"\n") == []
    with pytest.raises(SSELineTooLong):
        decoder.feed(b"data: " + b"x" * 60 + b"\n")


def test_the_limit_is_per_line_and_per_event_not_per_stream() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    events = [e for _ in range(50) for e in decoder.feed(b"data: " + b"y" * 90 + b"\n\n")]
    assert events == [ServerSentEvent(None, "y" * 90)] * 50


def test_an_unterminated_last_line_under_the_limit_is_flushed() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.flush() == [ServerSentEvent(None, "[DONE]")]


def test_the_default_limit_leaves_room_for_a_large_real_event() -> None:
    # A tool call's arguments or a base64 image in one chunk: several MB on one line.
    big = b"data: " + b"A" * (8 * 1024 * 1024) + b"\n\n"
    decoder = SSEDecoder()
    out = [e for i in range(0, len(big), 65536) for e in decoder.feed(big[i:i + 65536])]
    assert len(out) == 1 and len(out[0].data) == 8 * 1024 * 1024
    assert LINE_MAX_BYTES == 16 * 1024 * 1024


class Counted(bytes):
    """Bytes that count the bytes each operation on them touches (concatenated, searched,
    sliced), the results counting on: the work a decoder does with what it is fed."""

    work = 0

    def _counted(self, result: bytes, touched: int) -> Counted:
        Counted.work += touched
        return Counted(result)

    def __add__(self, other: bytes) -> Counted:  # type: ignore[override]
        return self._counted(bytes(self) + bytes(other), len(self) + len(other))

    def __radd__(self, other: bytes) -> Counted:
        return self._counted(bytes(other) + bytes(self), len(self) + len(other))

    def __getitem__(self, key: Any) -> Any:
        got = bytes.__getitem__(self, key)
        return self._counted(got, len(got)) if isinstance(key, slice) else got

    def find(self, *args: Any) -> int:  # type: ignore[override]
        Counted.work += len(self)
        return bytes.find(self, *args)

    def rfind(self, sub: Any, start: SupportsIndex | None = None, end: SupportsIndex | None = None) -> int:
        Counted.work += len(self)
        return bytes.rfind(self, sub, start, end)


def test_a_line_fed_one_byte_at_a_time_costs_work_linear_in_its_length() -> None:
    size = 200_000
    line = b"data: " + b"z" * size
    decoder = SSEDecoder()
    Counted.work = 0
    for i in range(len(line)):
        assert decoder.feed(Counted(line[i:i + 1])) == []
    out = decoder.feed(Counted(b"\n\n"))
    assert out == [ServerSentEvent(None, "z" * size)]
    # Concatenating the buffer with each byte and searching it whole would be ~ size**2 / 2.
    assert Counted.work < 4 * len(line), Counted.work
