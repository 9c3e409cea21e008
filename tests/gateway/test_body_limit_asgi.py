"""The server's handler reads a /v1 body no further than admission will, whatever the server
sends it (daphne ends such a body itself; other ASGI servers stream it): the head of a body whose
Content-Length is over DRAGOMAN_MAX_BODY_BYTES, one byte past the limit of a chunked one. The
413 and its record are admission's, as for any body over the limit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.asgi_handler import GatewayASGIHandler
from tests.conftest import KEY

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 64 * 1024
PIECE = 8192


class Upload:
    """An ASGI request whose body comes in ``PIECE``-byte messages (``pieces`` of them); counts
    how many the application took."""

    def __init__(self, *, pieces: int, declared: int | None) -> None:
        self.pieces = pieces
        self.taken = 0
        self.messages: list[dict[str, Any]] = []
        headers = [(b"host", b"testserver"), (b"content-type", b"application/json"), (b"x-api-key", KEY.encode())]
        if declared is not None:
            headers.append((b"content-length", str(declared).encode()))
        self.scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                      "scheme": "http", "path": "/v1/messages", "raw_path": b"/v1/messages", "query_string": b"",
                      "root_path": "", "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
                      "headers": headers}

    async def receive(self) -> dict[str, Any]:
        if self.taken < self.pieces:
            self.taken += 1
            return {"type": "http.request", "body": b"z" * PIECE, "more_body": self.taken < self.pieces}
        await asyncio.Event().wait()  # the client stays
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def answer(self) -> tuple[int, dict[str, Any]]:
        status = next(m["status"] for m in self.messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")
        return status, json.loads(body)


@pytest.mark.parametrize("declared", [1024 ** 3, None], ids=["content-length", "chunked"])
async def test_a_body_over_the_limit_is_read_only_as_far_as_admission_looks(
    gateway_setup: str, settings: Any, recorded: Any, declared: int | None
) -> None:
    settings.MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    settings.INSPECTOR_MAX_BODY_BYTES = 1000
    upload = Upload(pieces=1000, declared=declared)  # 8 MB on offer
    await GatewayASGIHandler()(upload.scope, upload.receive, upload.send)
    status, body = upload.answer()
    assert (status, body["error"]["type"]) == (413, "request_too_large")
    # The head (1000 bytes) is in the first message; a chunked body is over once LIMIT + 1 bytes
    # are in. Then one more is taken (by the disconnect listener), and nothing after it.
    assert upload.taken == (1 if declared else LIMIT // PIECE + 1) + 1
    [exchange] = await recorded()
    assert (exchange.status, exchange.client_request["body_truncated"]["kept"]) == (413, 1000)
    assert exchange.client_request["body_truncated"]["total"] == declared
