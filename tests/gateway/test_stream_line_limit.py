"""A backend streaming a line longer than DRAGOMAN_SSE_LINE_MAX_BYTES fails the stream.

The relay's SSE decoder holds at most that many bytes of a line (``translation.sse``); past it
the client's stream ends with an ``error`` event naming the limit, the upstream is closed
without reading on, and the inspector records the failure as the backend's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream
from tests.gateway.helpers import parse_sse, user_request

pytestmark = pytest.mark.django_db(transaction=True)


class Trickle(httpx.AsyncByteStream):
    """One text chunk, then a data line that never ends, in 100-byte pieces."""

    def __init__(self, pieces: int) -> None:
        self.pieces = pieces
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        first = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"},
                                                                 "finish_reason": None}]}
        yield f"data: {json.dumps(first)}\n\n".encode()
        yield b'data: {"choices": [{"delta": {"content": "'
        for _ in range(self.pieces):
            self.sent += 1
            yield b"x" * 100

    async def aclose(self) -> None:
        self.closed = True


async def test_a_line_past_the_limit_ends_the_stream_with_an_error_naming_it(
    gateway_setup: str, upstream: Upstream, recorded: Any, settings: Any
) -> None:
    settings.SSE_LINE_MAX_BYTES = 1000
    stream = Trickle(pieces=1000)
    upstream.handler = lambda request: httpx.Response(200, stream=stream, headers={"content-type": "text/event-stream"})
    response = await AsyncClient().post("/v1/messages", data=json.dumps(user_request(stream=True)),
                                        content_type="application/json", headers={"x-api-key": KEY})
    assert response.status_code == 200
    events = [event for _, event in parse_sse(b"".join([part async for part in response.streaming_content]))]
    assert [e["type"] for e in events] == ["message_start", "content_block_start", "content_block_delta",
                                           "content_block_stop", "error"]
    error = events[-1]["error"]
    assert error == {"type": "api_error", "message": "backend vllm-test sent an event-stream line or event longer "
                                                     "than the limit of 1000 bytes (DRAGOMAN_SSE_LINE_MAX_BYTES)"}
    assert stream.closed and stream.sent < 50  # not read on to the end (1000 pieces): the limit, and the read-ahead
    [exchange] = await recorded()
    assert (exchange.status, exchange.error_type, exchange.error_message) == (200, "api_error", error["message"])
    assert exchange.client_response["message"]["content"] == [{"type": "text", "text": "Hi"}]
