"""Under normal load nothing is lost: 100 concurrent streams through the real ASGI app against
the mock backend on a real socket give 100 exchanges, each with its complete event log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from inspector.models import Exchange
from inspector.recorder import recorder_stats
from tests.conftest import KEY
from tests.gateway.helpers import parse_sse
from tests.mockbackend import MockServerThread

pytestmark = pytest.mark.django_db(transaction=True)

STREAMS = 100
DELTAS = 20


@pytest.fixture
def mock_route(gateway_setup: str) -> Iterator[MockServerThread]:
    """A backend on the mock server (5 ms between frames, so the streams overlap)."""
    from gateway import snapshot, upstream
    from gateway.models import Backend, Route

    with MockServerThread(scenario="bench", delay_ms=5, events=DELTAS) as mock:
        backend = Backend.objects.create(name="mock", base_url=mock.url, preset="vllm")
        Route.objects.create(model="bench", backend=backend, order=1)
        snapshot.snapshot_invalidate()
        upstream.pools.reset()
        yield mock
        upstream.pools.reset()


async def stream_one(i: int) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    body = {"model": "bench", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": f"#{i}"}]}
    response = await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                        headers={"x-api-key": KEY})
    assert response.status_code == 200
    events = parse_sse(b"".join([chunk async for chunk in response.streaming_content]))
    return response["request-id"], events


async def test_100_concurrent_streams_each_have_one_complete_valid_exchange(mock_route: MockServerThread,
                                                                            recorded: Any) -> None:
    before = recorder_stats()
    started = time.perf_counter()
    results = await asyncio.gather(*(stream_one(i) for i in range(STREAMS)))
    elapsed = time.perf_counter() - started
    print(f"\n{STREAMS} concurrent streams of {DELTAS} deltas: {elapsed:.2f} s")
    exchanges = {x.id: x for x in await recorded()}
    assert set(exchanges) == {request_id for request_id, _ in results}
    assert len(mock_route.requests) == STREAMS
    for request_id, events in results:
        x = exchanges[request_id]
        assert events[-1][0] == "message_stop"
        logged = [e for _, _, e in x.client_response["events"]]
        assert logged == [data for _, data in events]  # complete: every event the client got
        assert logged[-1]["type"] == "message_stop"
        assert (x.valid, x.validation_error, x.status, x.disconnected) == (True, "", 200, False)
        assert x.upstream_response["chunks"] and x.ttft_ms is not None
    after = recorder_stats()
    assert after["lost"] == before["lost"]
    assert after["persisted"] - before["persisted"] == STREAMS
    assert await sync_to_async(Exchange.objects.count)() == STREAMS
