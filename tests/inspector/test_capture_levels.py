"""Capture levels, globally (DRAGOMAN_INSPECTOR_CAPTURE) and per backend (Backend.capture):
full keeps bodies and logs, metadata keeps the rest, off records nothing and loses nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from inspector.recorder import recorder
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, parse_sse, sse_chunks, sse_response, user_request

pytestmark = pytest.mark.django_db(transaction=True)


async def backend_capture(level: str) -> None:
    from gateway import snapshot
    from gateway.models import Backend

    await Backend.objects.filter(name="vllm-test").aupdate(capture=level)
    snapshot.snapshot_invalidate()


async def post(body: dict[str, Any]) -> Any:
    response = await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                        headers={"x-api-key": KEY})
    if body.get("stream"):
        assert parse_sse(b"".join([c async for c in response.streaming_content]))[-1][0] == "message_stop"
    return response


@pytest.fixture
def replies(upstream: Upstream) -> Upstream:
    upstream.handler = lambda request: (sse_response(sse_chunks([{"content": "Hi"}]))
                                        if json.loads(request.content).get("stream")
                                        else httpx.Response(200, json=chat_completion("Hi")))
    return upstream


@pytest.mark.parametrize("where", ["global", "backend"])
async def test_metadata_keeps_no_bodies_or_events_but_everything_else(
    gateway_setup: str, replies: Upstream, recorded: Any, settings: Any, where: str
) -> None:
    if where == "global":
        settings.INSPECTOR_CAPTURE = "metadata"
    else:
        await backend_capture("metadata")
    await post(user_request())
    await post(user_request(stream=True))
    plain, streamed = await recorded()
    for x in (plain, streamed):
        assert x.capture == "metadata"
        assert "body" not in x.client_request and "body_text" not in x.client_request
        assert x.client_request["headers"]["X-Api-Key"].startswith("***")
        assert set(x.upstream_request) == {"url", "headers"}
        assert x.upstream_response == {"status": 200}
        assert x.client_response == {}
        assert (x.status, x.stop_reason, x.backend_name, x.route) == (200, "end_turn", "vllm-test", "test-model")
        assert x.output_tokens is not None and x.upstream_usage and x.ttft_ms is not None
    # The verdict is still given: the events are validated in memory, just not stored.
    assert (plain.valid, streamed.valid) == (None, True)


@pytest.mark.parametrize("where", ["global", "backend"])
async def test_off_records_nothing_and_counts_nothing_as_lost(gateway_setup: str, replies: Upstream,
                                                               recorded: Any, settings: Any, where: str) -> None:
    if where == "global":
        settings.INSPECTOR_CAPTURE = "off"
    else:
        await backend_capture("off")
    before = recorder.stats()
    assert (await post(user_request())).status_code == 200
    await post(user_request(stream=True))
    assert await recorded() == []
    after = recorder.stats()
    assert after["lost"] == before["lost"]
    assert after["submitted"] == before["submitted"]
    assert after["skipped"] == before["skipped"] + 2


async def test_a_backend_level_overrides_the_global_one(gateway_setup: str, replies: Upstream, recorded: Any,
                                                        settings: Any) -> None:
    settings.INSPECTOR_CAPTURE = "off"
    await backend_capture("full")
    await post(user_request(stream=True))
    [x] = await recorded()
    assert x.capture == "full" and x.client_request["body"]["stream"] is True and x.upstream_response["chunks"]


async def test_before_the_route_is_known_the_global_level_applies(gateway_setup: str, recorded: Any,
                                                                  settings: Any) -> None:
    settings.INSPECTOR_CAPTURE = "metadata"
    await backend_capture("off")
    response = await AsyncClient().post("/v1/messages", data="{}", content_type="application/json",
                                        headers={"x-api-key": "wrong-key-000000000000"})
    assert response.status_code == 401
    [x] = await recorded()
    assert x.status == 401 and x.capture == "metadata" and "body_text" not in x.client_request


def test_applyconfig_sets_and_validates_a_backends_capture(db: None) -> None:
    from gateway.config import ConfigError, config_apply, config_parse
    from gateway.models import Backend

    text = "backends:\n  - {name: b1, base_url: 'http://x.test/v1', capture: %s}\n"
    config_apply(config_parse(text % "metadata"))
    assert Backend.objects.get(name="b1").capture == "metadata"
    config_apply(config_parse("backends:\n  - {name: b1, base_url: 'http://x.test/v1'}\n"))
    assert Backend.objects.get(name="b1").capture == ""
    with pytest.raises(ConfigError, match="capture must be full, metadata or off"):
        config_parse(text % "everything")


def test_the_snapshot_carries_the_backends_capture(db: None) -> None:
    from gateway.models import Backend, Route
    from gateway.snapshot import snapshot_build

    backend = Backend.objects.create(name="b2", base_url="http://x.test/v1", capture="off")
    Route.objects.create(model="m", backend=backend)
    [route] = snapshot_build().routes
    assert route.backend.capture == "off"
