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


class SSEDecoder:
    """Incremental decoder: ``feed(bytes) -> [events]``, then ``flush() -> [events]`` at EOF."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._skip_lf = False  # the previous chunk ended with CR; a leading LF belongs to it
        self._started = False  # BOM check done
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        buf = self._buf + data if self._buf else data
        if not self._started:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[3:]
        end = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        if end < 0:
            self._buf = buf
            return []
        complete, self._buf = buf[: end + 1], buf[end + 1 :]
        # A final CR with nothing after it yet: the next chunk may start with its LF.
        self._skip_lf = not self._buf and complete[-1:] == b"\r"
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
        if self._buf:
            buf, self._buf = self._buf, b""
            if not self._started and buf.startswith(_BOM):
                buf = buf[3:]
            self._line(buf, out)
        self._line(b"", out)
        self._skip_lf = False
        return out

    def _line(self, raw: bytes, out: list[ServerSentEvent]) -> None:
        if not raw:
            if self._data:
                out.append(ServerSentEvent(self._event, "\n".join(self._data), self._id))
            self._data = []
            self._event = None
            return
        if raw[:1] == b":":
            return
        line = raw.decode("utf-8", "replace")
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
