"""Streams under time pressure, through the real pipeline: pings while the backend is silent,
``message_start`` before the backend's first token, and a client that goes away mid-stream.

The upstream is an ``httpx.MockTransport`` whose body is an async stream paced with real
sleeps (no sleep is longer than a second). The disconnect test drives Django's ASGI handler
directly, because only a raw ASGI ``receive`` can say ``http.disconnect`` the way daphne does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient

from tests.conftest import KEY, Upstream
from tests.gateway.helpers import parse_sse, sse_chunks, sse_response, user_request
from translation.tokens import tokens_estimate_body
from translation.validate import stream_validate

pytestmark = pytest.mark.django_db(transaction=True)


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


FINISH = (chunk({}, "stop") + b'data: {"object":"chat.completion.chunk","choices":[],'
          b'"usage":{"prompt_tokens":12,"completion_tokens":3}}\n\ndata: [DONE]\n\n')


class Paced(httpx.AsyncByteStream):
    """An upstream body sent as ``(pause_before_s, bytes)`` steps; remembers when it was closed."""

    def __init__(self, steps: list[tuple[float, bytes]]) -> None:
        self.steps = steps
        self.sent = 0
        self.closed_at: float | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for pause, data in self.steps:
            if pause:
                await asyncio.sleep(pause)
            self.sent += 1
            yield data

    async def aclose(self) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()


def paced_response(stream: Paced) -> httpx.Response:
    return httpx.Response(200, stream=stream, headers={"content-type": "text/event-stream"})


async def post_stream(body: dict[str, Any]) -> Any:
    return await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                    headers={"x-api-key": KEY})


async def events_of(response: Any) -> list[tuple[str, dict[str, Any]]]:
    return parse_sse(b"".join([part async for part in response.streaming_content]))


def names(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in events]


def valid(events: list[tuple[str, dict[str, Any]]]) -> bool:
    assert all(name == data["type"] for name, data in events)
    return stream_validate([data for _, data in events]) is None


# -- pings -------------------------------------------------------------------------------------


async def test_a_silent_backend_gets_pings_between_real_events(gateway_setup: str, upstream: Upstream,
                                                               settings: Any) -> None:
    settings.STREAM_PING_SECONDS = 0.1
    stream = Paced([(0, chunk({"content": "Hel"})), (0.45, chunk({"content": "lo"})), (0, FINISH)])
    upstream.handler = lambda request: paced_response(stream)
    events = await events_of(await post_stream(user_request(stream=True)))
    got = names(events)
    pings = got.count("ping")
    assert 2 <= pings <= 5, got
    assert got == ["message_start", "content_block_start", "content_block_delta", *["ping"] * pings,
                   "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert [data for name, data in events if name == "ping"] == [{"type": "ping"}] * pings
    assert valid(events)
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "Hello"


async def test_pings_also_cover_a_silence_before_the_first_token(gateway_setup: str, upstream: Upstream,
                                                                 settings: Any) -> None:
    settings.STREAM_PING_SECONDS = 0.1
    stream = Paced([(0.35, chunk({"reasoning_content": "hm"})), (0, chunk({"content": "ok"})), (0, FINISH)])
    upstream.handler = lambda request: paced_response(stream)
    events = await events_of(await post_stream(user_request(stream=True)))
    got = names(events)
    pings = got.count("ping")
    assert 2 <= pings <= 4, got
    assert got[: 1 + pings] == ["message_start", *["ping"] * pings]
    assert got[1 + pings] == "content_block_start"
    assert valid(events)


async def test_a_fast_backend_gets_no_pings(gateway_setup: str, upstream: Upstream, settings: Any) -> None:
    settings.STREAM_PING_SECONDS = 0.1
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "a"}, {"content": "b"}]))
    events = await events_of(await post_stream(user_request(stream=True)))
    assert names(events) == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                             "content_block_stop", "message_delta", "message_stop"]
    assert valid(events)


async def test_pings_are_recorded_with_the_events_the_client_saw(gateway_setup: str, upstream: Upstream,
                                                                 settings: Any, recorded: Any) -> None:
    settings.STREAM_PING_SECONDS = 0.1
    stream = Paced([(0, chunk({"content": "a"})), (0.25, FINISH)])
    upstream.handler = lambda request: paced_response(stream)
    events = await events_of(await post_stream(user_request(stream=True)))
    [exchange] = await recorded()
    assert [e[2]["type"] for e in exchange.client_response["events"]] == names(events)
    assert "ping" in names(events)
    assert exchange.stop_reason == "end_turn" and exchange.disconnected is False


# -- client disconnect -------------------------------------------------------------------------


class AsgiClient:
    """One request against Django's ASGI handler; ``disconnect()`` plays daphne's
    ``http.disconnect`` when the client's socket closes."""

    def __init__(self, body: dict[str, Any], *, stop_reading_after: int | None = None) -> None:
        self.raw = json.dumps(body).encode()
        # After this many text deltas, ``send`` blocks, as for a client that stopped reading.
        self.stop_reading_after = stop_reading_after
        self.sent: list[dict[str, Any]] = []
        self.body_parts = asyncio.Event()
        self._gone = asyncio.Event()
        self._request_sent = False
        self.disconnected_at: float | None = None

    async def receive(self) -> dict[str, Any]:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": self.raw, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.body_parts.set()
            deltas = sum(1 for name, _ in self.events() if name == "content_block_delta")
            if self.stop_reading_after is not None and deltas >= self.stop_reading_after:
                await asyncio.Event().wait()

    def disconnect(self) -> None:
        self.disconnected_at = time.monotonic()
        self._gone.set()

    def scope(self) -> dict[str, Any]:
        headers = [(b"host", b"testserver"), (b"content-type", b"application/json"),
                   (b"content-length", str(len(self.raw)).encode()), (b"x-api-key", KEY.encode())]
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                "scheme": "http", "path": "/v1/messages", "raw_path": b"/v1/messages", "query_string": b"",
                "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return parse_sse(b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"))


@pytest.mark.parametrize("stop_reading_after", [None, 3], ids=["while-waiting-for-upstream", "while-sending"])
async def test_client_disconnect_closes_the_upstream_at_once_and_is_recorded(
    gateway_setup: str, upstream: Upstream, recorded: Any, stop_reading_after: int | None
) -> None:
    """Django cancels the response task on ``http.disconnect``: whether that lands while the
    relay waits for the backend or while the server sends to the client, the upstream
    connection closes at once and the exchange says the client left."""
    steps = [(0, chunk({"role": "assistant", "content": ""}))]
    steps += [(0.05, chunk({"content": f"w{i} "})) for i in range(200)]  # 10 s if nobody stops it
    stream = Paced(steps)
    upstream.handler = lambda request: paced_response(stream)
    client = AsgiClient(user_request(stream=True), stop_reading_after=stop_reading_after)
    app = asyncio.create_task(ASGIHandler()(client.scope(), client.receive, client.send))
    while sum(1 for name, _ in client.events() if name == "content_block_delta") < 3:
        client.body_parts.clear()
        await asyncio.wait_for(client.body_parts.wait(), timeout=2)
    await asyncio.sleep(0.12)  # the relay is now waiting (for the backend, or in send)
    client.disconnect()
    await asyncio.wait_for(app, timeout=2)
    assert stream.closed_at is not None
    assert stream.closed_at - (client.disconnected_at or 0) < 0.5
    assert stream.sent < 20
    [exchange] = await recorded()
    assert exchange.disconnected is True
    assert exchange.status == 200 and exchange.stop_reason == ""
    seen = [data for _, data in client.events()]
    recorded_events = [e[2] for e in exchange.client_response["events"]]
    # Every event the client got is recorded; at most one more was produced as the client left.
    assert recorded_events[: len(seen)] == seen
    assert len(recorded_events) - len(seen) <= 1
    texts = [d["delta"]["text"] for d in seen if d["type"] == "content_block_delta"]
    assert texts[:3] == ["w0 ", "w1 ", "w2 "]
    assert exchange.client_response["message"]["content"][0]["text"].startswith("w0 w1 w2 ")


# -- message_start before the first token ------------------------------------------------------


async def test_message_start_goes_out_before_the_backend_sends_anything(gateway_setup: str,
                                                                         upstream: Upstream) -> None:
    """The upstream answered 200 and then thinks for a long time: the client already has
    message_start, with the gateway's input-token estimate for this very request."""
    body = user_request(stream=True, system="You are terse.",
                        messages=[{"role": "user", "content": "Explain streaming in one long paragraph. " * 20}])
    stream = Paced([(5.0, chunk({"reasoning_content": "never seen"})), (0, FINISH)])
    upstream.handler = lambda request: paced_response(stream)
    client = AsgiClient(body)
    started = time.monotonic()
    app = asyncio.create_task(ASGIHandler()(client.scope(), client.receive, client.send))
    await asyncio.wait_for(client.body_parts.wait(), timeout=1.0)
    assert time.monotonic() - started < 0.5
    assert client.sent[0]["status"] == 200
    [(name, data)] = client.events()
    assert name == "message_start"
    # The estimate of what the backend was sent (template overheads and hoisted system included).
    estimate = tokens_estimate_body(json.loads(upstream.requests[0].content), kind="openai_chat")
    assert estimate > 200
    assert data["message"]["usage"] == {"input_tokens": estimate, "cache_creation_input_tokens": 0,
                                        "cache_read_input_tokens": 0, "output_tokens": 1}
    assert data["message"]["content"] == [] and data["message"]["model"] == "test-model"
    assert stream.sent == 0
    client.disconnect()
    await asyncio.wait_for(app, timeout=2)
    assert stream.closed_at is not None


async def test_a_disconnect_during_pings_leaves_no_upstream_read_behind(gateway_setup: str, upstream: Upstream,
                                                                       settings: Any) -> None:
    """The relay reads the upstream in a task so it can ping meanwhile; leaving must end that
    task too, not only the relay."""
    settings.STREAM_PING_SECONDS = 0.05
    stream = Paced([(5.0, chunk({"content": "never seen"})), (0, FINISH)])
    upstream.handler = lambda request: paced_response(stream)
    client = AsgiClient(user_request(stream=True))

    async def send_until_ping(message: dict[str, Any]) -> None:
        await AsgiClient.send(client, message)
        if any(name == "ping" for name, _ in client.events()):
            await asyncio.Event().wait()  # the client stopped reading on a ping

    app = asyncio.create_task(ASGIHandler()(client.scope(), client.receive, send_until_ping))
    while not any(name == "ping" for name, _ in client.events()):
        client.body_parts.clear()
        await asyncio.wait_for(client.body_parts.wait(), timeout=2)
    client.disconnect()
    await asyncio.wait_for(app, timeout=2)
    assert stream.closed_at is not None and stream.closed_at - (client.disconnected_at or 0) < 0.5
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_leaves_before_the_backend_answers_is_recorded_and_the_call_cancelled(
    gateway_setup: str, upstream: Upstream, recorded: Any, stream: bool
) -> None:
    """An SDK timing out on a slow first byte: the upstream call is abandoned at once, and the
    inspector still shows the request, marked disconnected (499, nginx's "client closed")."""
    cancelled_at: list[float] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled_at.append(time.monotonic())
            raise
        return httpx.Response(500)

    upstream.handler = slow  # type: ignore[assignment]
    client = AsgiClient(user_request(stream=stream))
    app = asyncio.create_task(ASGIHandler()(client.scope(), client.receive, client.send))
    await asyncio.sleep(0.2)
    assert len(upstream.requests) == 1 and client.sent == []
    client.disconnect()
    await asyncio.wait_for(app, timeout=2)
    assert cancelled_at and cancelled_at[0] - (client.disconnected_at or 0) < 0.5
    [exchange] = await recorded()
    assert (exchange.disconnected, exchange.status, exchange.stream) == (True, 499, stream)
    assert exchange.upstream_request["body"]["model"] == "Qwen/Qwen3-8B"
    assert exchange.duration_ms is not None
