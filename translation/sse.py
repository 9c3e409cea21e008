"""Server-sent events: encode Anthropic events, decode upstream streams incrementally.

The decoder follows the WHATWG HTML standard, "Server-sent events", §9.2.6 "Interpreting an
event stream" (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

- the stream is UTF-8; one leading BOM is ignored;
- lines end with CRLF, LF or CR (a CR at the end of one chunk may be followed by the LF of the
  next chunk: that pair is one line ending);
- an empty line dispatches the event; a line starting with ``:`` is a comment;
- ``field:value`` lines, with one leading space of the value removed; a line without a colon
  is a field with an empty value;
- ``data`` lines are joined with ``\\n``; an event whose data buffer is empty is not dispatched.

Line endings are ASCII bytes that never occur inside a UTF-8 multi-byte sequence, so the
decoder splits *bytes* into lines and decodes each complete line: a chunk may end anywhere,
even inside a character. Like the Anthropic SDK's ``_streaming.SSEDecoder`` it keeps ``id``;
``retry`` is ignored (we never reconnect).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from translation.jsonbytes import json_bytes

_BOM = b"\xef\xbb\xbf"


def sse_encode(event: dict[str, Any]) -> bytes:
    """One Anthropic event on the wire: ``event: <type>`` and one compact JSON ``data`` line."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + json_bytes(event) + b"\n\n"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str | None
    data: str
    id: str | None = None


class SSELineTooLong(ValueError):
    """A line, or the data lines of one event together, longer than the decoder's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an event-stream line or event longer than {limit} bytes")
        self.limit = limit


# The default bound of ``SSEDecoder``: one line is one JSON chunk, and the largest real ones are
# whole objects in one event, a Responses API ``response.completed`` repeating every output item
# (a long answer's text, a generated image's base64: a few MB) or a tool call's arguments sent in
# one chunk. 16 MiB is several times those and half the request body limit (32 MiB), while a
# backend that never sends a line ending holds at most that much of a stream's memory.
LINE_MAX_BYTES = 16 * 1024 * 1024


class SSEDecoder:
    """Incremental decoder: ``feed(bytes) -> [events]``, then ``flush() -> [events]`` at EOF.

    Buffering is linear: a line's pieces are kept until its end arrives (only new bytes are
    searched) and joined once. A line longer than ``max_line_bytes`` (its line ending not
    counted), or an event whose data lines are longer together, raises ``SSELineTooLong``; the
    decoder is not fed again after it.
    """

    __slots__ = ("_data", "_data_bytes", "_event", "_id", "_max", "_pending", "_pending_bytes", "_skip_lf",
                 "_started")

    def __init__(self, *, max_line_bytes: int = LINE_MAX_BYTES) -> None:
        self._max = max_line_bytes
        self._pending: list[bytes] = []  # the pieces of a line whose end has not arrived yet
        self._pending_bytes = 0
        self._skip_lf = False  # the previous chunk ended with CR; a leading LF belongs to it
        self._started = False  # BOM check done
        self._event: str | None = None
        self._data: list[str] = []
        self._data_bytes = 0
        self._id: str | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and data:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return []
        if not self._started:  # at most two bytes are pending here (a BOM's beginning)
            data = b"".join(self._pending) + data
            self._pending, self._pending_bytes = [], 0
            if len(data) < 3 and _BOM.startswith(data):
                self._hold(data)
                return []
            self._started = True
            if data.startswith(_BOM):
                data = data[3:]
        end = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if end < 0:
            self._hold(data)
            return []
        if self._pending:
            self._pending.append(data[: end + 1])
            complete = b"".join(self._pending)
            self._pending, self._pending_bytes = [], 0
        else:
            complete = data[: end + 1]
        rest = data[end + 1 :]
        if rest:
            self._hold(rest)
        # A final CR with nothing after it yet: the next chunk may start with its LF.
        self._skip_lf = not rest and complete[-1:] == b"\r"
        out: list[ServerSentEvent] = []
        # bytes.splitlines splits on exactly CRLF, LF and CR (unlike str.splitlines).
        for line in complete.splitlines():
            self._line(line, out)
        return out

    def flush(self) -> list[ServerSentEvent]:
        """End of stream.

        WHATWG discards an event that was not terminated by an empty line. Upstreams do end
        with ``data: [DONE]`` and no blank line, so, deliberately more lenient than the spec,
        a pending unterminated line and event are dispatched.
        """
        out: list[ServerSentEvent] = []
        if self._pending:
            buf = b"".join(self._pending)
            self._pending, self._pending_bytes = [], 0
            if not self._started and buf.startswith(_BOM):
                buf = buf[3:]
            self._line(buf, out)
        self._line(b"", out)
        self._skip_lf = False
        return out

    def _hold(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_bytes += len(piece)
        if self._pending_bytes > self._max:
            raise SSELineTooLong(self._max)

    def _line(self, raw: bytes, out: list[ServerSentEvent]) -> None:
        if not raw:
            if self._data:
                out.append(ServerSentEvent(self._event, "\n".join(self._data), self._id))
            self._data, self._data_bytes = [], 0
            self._event = None
            return
        if len(raw) > self._max:
            raise SSELineTooLong(self._max)
        if raw[:1] == b":":
            return
        line = raw.decode("utf-8", "replace")
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data_bytes += len(raw)
            if self._data_bytes > self._max:
                raise SSELineTooLong(self._max)
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
