"""The /v1 API through the server's own handler (gateway.asgi_handler.GatewayASGIHandler), spoken
to over ASGI as daphne speaks to it: Django's test client calls the view directly and would never
run the handler's request reading, response sending and disconnect handling."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.asgi_handler import GatewayASGIHandler
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, parse_sse, sse_chunks, user_request

pytestmark = pytest.mark.django_db(transaction=True)


class AsgiCall:
    """One HTTP request over ASGI; ``disconnect()`` makes the next ``receive`` a disconnect."""

    def __init__(self, path: str, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                      "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                      "root_path": "", "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
                      "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                                  (b"content-length", str(len(raw)).encode()), (b"x-api-key", KEY.encode())]}
        self._body = raw
        self._sent_body = False
        self._gone = asyncio.Event()
        self.messages: list[dict[str, Any]] = []
        self.first_body = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if not self._sent_body:
            self._sent_body = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.first_body.set()

    def disconnect(self) -> None:
        self._gone.set()

    @property
    def status(self) -> int:
        return int(next(m["status"] for m in self.messages if m["type"] == "http.response.start"))

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


async def test_a_request_is_answered_through_the_servers_handler(gateway_setup: str, upstream: Upstream,
                                                                 recorded: Any) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("Hello"))
    call = AsgiCall("/v1/messages", user_request())
    await asyncio.wait_for(GatewayASGIHandler()(call.scope, call.receive, call.send), 10)
    assert call.status == 200
    assert json.loads(call.body)["content"] == [{"type": "text", "text": "Hello"}]
    [x] = await recorded()
    assert x.status == 200 and not x.disconnected


async def test_a_client_that_leaves_mid_stream_cancels_the_relay_and_is_recorded(
    gateway_setup: str, upstream: Upstream, recorded: Any
) -> None:
    never = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield sse_chunks([{"content": "Hi"}]).split(b"\n\n")[0] + b"\n\n"
        await never.wait()  # the backend goes silent: only the client's leaving ends this
        yield b""

    upstream.handler = lambda request: httpx.Response(200, content=slow(),
                                                      headers={"content-type": "text/event-stream"})
    call = AsgiCall("/v1/messages", user_request(stream=True))
    served = asyncio.create_task(GatewayASGIHandler()(call.scope, call.receive, call.send))
    await asyncio.wait_for(call.first_body.wait(), 10)
    call.disconnect()
    await asyncio.wait_for(served, 10)  # the handler returns: the view was cancelled
    assert call.status == 200
    assert parse_sse(call.body)[0][0] == "message_start"
    [x] = await recorded()
    assert x.disconnected
