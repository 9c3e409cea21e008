"""``/metrics`` (gateway.metrics), in process: who may scrape it, and that each kind of exchange
moves exactly the series it should. The registry is the process's, so each test compares what
it scraped before and after its own requests."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, sse_chunks, sse_response, user_request
from tests.operator import operator_headers

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape() -> Samples:
    response = Client().get("/metrics", headers=operator_headers())
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` whose labels include ``labels`` (summed when several match)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_need_the_token_or_a_staff_session(db: None) -> None:
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert b"dragoman_requests" not in anonymous.content
    assert Client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert Client().get("/metrics", headers=operator_headers()).status_code == 200
    user = User.objects.create_user("viewer", password="pw")
    plain = Client()
    plain.force_login(user)
    assert plain.get("/metrics").status_code == 401  # logged in, not staff
    user.is_staff = True
    user.save()
    assert plain.get("/metrics").status_code == 200
    assert Client().post("/metrics", headers=operator_headers()).status_code == 405


def test_verbose_health_is_guarded_like_metrics_and_plain_health_is_not(db: None) -> None:
    assert Client().get("/healthz").json() == {"status": "ok"}
    refused = Client().get("/healthz?verbose=1")
    assert refused.status_code == 401
    body = refused.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert "DRAGOMAN_METRICS_TOKEN" in body["error"]["message"] and "in_flight" not in body
    assert "in_flight" in Client().get("/healthz?verbose=1", headers=operator_headers()).json()
    staff = Client()
    staff.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    assert "backends" in staff.get("/healthz?verbose=1").json()


async def post(body: dict[str, Any], key: str = KEY) -> Any:
    return await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                    headers={"x-api-key": key})


@pytest.mark.django_db(transaction=True)
async def test_each_exchange_moves_its_own_series(gateway_setup: str, upstream: Upstream) -> None:
    before = await sync_to_async(scrape)()
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("Hello!"))
    assert (await post(user_request())).status_code == 200
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "Hi"}, {"content": " there"}]))
    streamed = await post(user_request(stream=True))
    assert b"message_stop" in b"".join([part async for part in streamed.streaming_content])
    assert (await post(user_request(), key="dgm_not_a_key_at_all_00000000")).status_code == 401
    assert (await AsyncClient().get("/v1/made-up/path-1234", headers={"x-api-key": KEY})).status_code == 404
    after = await sync_to_async(scrape)()

    ok = {"endpoint": "messages", "route": "test-model", "backend": "vllm-test", "status": "200", "error_type": ""}
    assert grown(before, after, "dragoman_requests_total", **ok) == 2
    assert grown(before, after, "dragoman_requests_total", status="401", error_type="authentication_error") == 1
    # a path the client made up is one bucket, not a series of its own
    assert grown(before, after, "dragoman_requests_total", endpoint="other", status="404") == 1
    assert not [ls for (n, ls) in after if n == "dragoman_requests_total" and ("endpoint", "made-up/path-1234") in ls]
    for stream in ("true", "false"):
        assert grown(before, after, "dragoman_time_to_first_token_seconds_count", backend="vllm-test",
                     stream=stream) == 1
        assert grown(before, after, "dragoman_overhead_seconds_count", backend="vllm-test", stream=stream) == 1
    assert grown(before, after, "dragoman_request_duration_seconds_count", endpoint="messages") == 3
    # chat_completion and sse_chunks report 12 prompt and 3 completion tokens each
    assert grown(before, after, "dragoman_tokens_total", backend="vllm-test", type="input") == 24
    assert grown(before, after, "dragoman_tokens_total", backend="vllm-test", type="output") == 6
    assert grown(before, after, "dragoman_upstream_attempts_total", backend="vllm-test", outcome="ok") == 2
    assert grown(before, after, "dragoman_failovers_total") == 0


@pytest.mark.django_db(transaction=True)
async def test_state_series_come_from_the_process(gateway_setup: str, upstream: Upstream) -> None:
    from inspector.recorder import recorder

    before = await sync_to_async(scrape)()
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("Hello!"))
    assert (await post(user_request())).status_code == 200
    assert await sync_to_async(recorder.flush)(10)
    after = await sync_to_async(scrape)()
    assert grown(before, after, "dragoman_inspector_exchanges_total", fate="persisted") >= 1
    assert value(after, "dragoman_inspector_queue") == 0
    assert value(after, "dragoman_exchanges_in_flight") == 0
    assert 0 <= value(after, "dragoman_config_age_seconds") < 60
    for name in ("dragoman_upstream_connections", "dragoman_backend_ejected", "dragoman_failovers_total",
                 "dragoman_client_disconnects_total"):
        assert f"# HELP {name.removesuffix('_total')}" in (await sync_to_async(Client().get)(
            "/metrics", headers=operator_headers())).content.decode()
