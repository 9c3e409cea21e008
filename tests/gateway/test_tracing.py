"""OpenTelemetry over OTLP (gateway.tracing): what a collector receives for an exchange, sent by the
SDK's real HTTP exporter to a real OTLP receiver (tests/otlp_receiver.py) and decoded with
opentelemetry-proto; and what the backend and the inspector see of the trace."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from gateway.tracing import SCHEMA_URL, tracing
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, parse_sse, sse_chunks, sse_response, user_request
from tests.otlp_receiver import OTLPReceiver

pytestmark = pytest.mark.django_db(transaction=True)

BACKEND_KEY = "sk-backend-secret-4242424242424242"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[OTLPReceiver]:
    """Tracing started as the runtime starts it, the SDK's OTLP endpoint pointed at a receiver
    (the exporter reads OTEL_* itself). Exports happen when a test flushes: the batch and metric
    intervals are long enough never to fire on their own during a test."""
    with OTLPReceiver().serving() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")
        for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_SDK_DISABLED"):
            monkeypatch.delenv(name, raising=False)
        tracing.stop()  # as the session's runtime started it (off, unless this shell exports OTEL_*)
        assert tracing.start()
        try:
            yield receiver
        finally:
            tracing.stop()


@pytest.fixture
def backend_key(gateway_setup: str) -> str:
    """The test backend with an API key: it must reach the backend and nothing else."""
    from gateway import snapshot
    from gateway.models import Backend

    Backend.objects.filter(name="vllm-test").update(api_key=BACKEND_KEY)
    snapshot.snapshot_invalidate()
    return BACKEND_KEY


async def post(body: dict[str, Any], **headers: str) -> Any:
    headers.setdefault("x-api-key", KEY)
    return await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                    headers=headers)


async def exchange_traced(receiver: OTLPReceiver, response: Any, count: int) -> tuple[Any, list[dict[str, Any]]]:
    """The stored Exchange of ``response`` and its trace's spans, once the inspector wrote it
    (its ``inspector write`` span is ended then) and the exporter was flushed."""
    from inspector.models import Exchange
    from inspector.recorder import recorder

    if response.streaming:
        parse_sse(b"".join([chunk async for chunk in response.streaming_content]))
    assert await sync_to_async(recorder.flush)(10)
    row = await Exchange.objects.aget(pk=response["request-id"])
    assert await sync_to_async(tracing.flush)(10)
    return row, receiver.spans_wait(row.trace_id, count=count)


def by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names = [s["name"] for s in spans]
    assert len(names) == len(set(names)), names
    return {s["name"]: s for s in spans}


async def test_a_streamed_exchange_is_one_server_span_with_its_phases_as_ordered_children(
        traced: OTLPReceiver, gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: sse_response(sse_chunks([
        {"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}]))
    response = await post(user_request(stream=True))
    assert response.status_code == 200
    row, spans = await exchange_traced(traced, response, count=7)

    named = by_name(spans)
    assert set(named) == {"POST /v1/messages", "admission", "chat Qwen/Qwen3-8B", "upstream connect",
                          "upstream first byte", "upstream stream", "inspector write"}
    server, attempt = named["POST /v1/messages"], named["chat Qwen/Qwen3-8B"]
    assert [s["name"] for s in spans if s["kind"] == SERVER] == ["POST /v1/messages"]
    assert server["parent_span_id"] == ""  # a new trace: the client sent no traceparent
    assert server["attributes"]["dragoman.request_id"] == response["request-id"] == row.id
    for name in ("admission", "chat Qwen/Qwen3-8B", "inspector write"):
        assert named[name]["parent_span_id"] == server["span_id"], name
    for name in ("upstream connect", "upstream first byte", "upstream stream"):
        assert named[name]["parent_span_id"] == attempt["span_id"], name
    assert attempt["kind"] == CLIENT

    order = [server["start"], named["admission"]["start"], named["admission"]["end"], attempt["start"],
             named["upstream connect"]["end"], named["upstream first byte"]["end"], named["upstream stream"]["end"],
             attempt["end"], server["end"]]
    assert order == sorted(order)
    assert named["upstream first byte"]["start"] == named["upstream connect"]["end"]
    assert named["inspector write"]["end"] >= server["end"]
    for span in spans:
        assert span["start"] <= span["end"], span["name"]

    assert server["attributes"] | {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "test-model",
        "gen_ai.response.model": "Qwen/Qwen3-8B", "gen_ai.provider.name": "vllm",
        "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3,
        "gen_ai.response.finish_reasons": ["end_turn"], "http.response.status_code": 200,
        "http.route": "/v1/messages", "dragoman.backend": "vllm-test", "dragoman.route": "test-model",
        "dragoman.attempts": 1, "dragoman.stream": True,
    } == server["attributes"]
    assert [e["name"] for e in server["events"]] == ["first event", "first token"]
    assert attempt["attributes"] | {"server.address": "upstream.test", "server.port": 80,
                                    "gen_ai.request.model": "Qwen/Qwen3-8B", "dragoman.attempt.outcome": "ok",
                                    "gen_ai.operation.name": "chat"} == attempt["attributes"]
    assert server["resource"]["service.name"] == "dragoman"
    assert {s["schema_url"] for s in spans} == {SCHEMA_URL}
    assert set(traced.content_types) == {"application/x-protobuf"}


async def test_no_key_and_no_content_reach_the_collector(traced: OTLPReceiver, backend_key: str,
                                                         upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("the reply is wombat"))
    body = user_request(system="secret system prompt", messages=[{"role": "user", "content": "platypus question"}])
    response = await post(body, authorization=f"Bearer {KEY}")
    assert response.status_code == 200
    assert upstream.requests[0].headers["authorization"] == f"Bearer {backend_key}"  # the backend did get it
    _, spans = await exchange_traced(traced, response, count=6)
    assert {s["name"] for s in spans} >= {"POST /v1/messages", "chat Qwen/Qwen3-8B", "upstream body"}

    everything = b"".join(traced.raw)  # the protobuf bodies as sent: every attribute, event, resource
    assert everything
    for secret in (KEY, backend_key, KEY[-12:], backend_key[-12:]):
        assert secret.encode() not in everything
    for content in ("platypus", "wombat", "secret system prompt"):
        assert content.encode() not in everything
    server = by_name(spans)["POST /v1/messages"]["attributes"]
    assert not [name for name in server if name.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system_"))]


async def test_a_key_the_client_puts_in_what_it_names_is_masked(traced: OTLPReceiver, gateway_setup: str,
                                                                  upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await post(user_request(model=f"claude-{KEY}"))  # the route claude-* takes it
    assert response.status_code == 200
    _, spans = await exchange_traced(traced, response, count=6)
    model = by_name(spans)["POST /v1/messages"]["attributes"]["gen_ai.request.model"]
    assert model.startswith("claude-") and KEY not in model
    assert KEY.encode() not in b"".join(traced.raw)


async def test_content_is_recorded_only_when_allowed_and_without_keys(
        traced: OTLPReceiver, backend_key: str, upstream: Upstream, settings: Any) -> None:
    settings.TRACE_CAPTURE_CONTENT = True
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion(f"echo {KEY} wombat"))
    body = user_request(system="be brief", messages=[{"role": "user", "content": f"my key is {KEY} platypus"}])
    response = await post(body)
    assert response.status_code == 200
    _, spans = await exchange_traced(traced, response, count=6)
    attributes = by_name(spans)["POST /v1/messages"]["attributes"]
    assert json.loads(attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "be brief"}]
    [asked] = json.loads(attributes["gen_ai.input.messages"])
    assert asked["role"] == "user" and "platypus" in asked["parts"][0]["content"]
    [answered] = json.loads(attributes["gen_ai.output.messages"])
    assert answered["role"] == "assistant" and answered["finish_reason"] == "end_turn"
    assert "wombat" in answered["parts"][0]["content"]
    everything = b"".join(traced.raw)
    assert KEY.encode() not in everything and backend_key.encode() not in everything


async def test_the_clients_traceparent_is_continued_and_the_backend_gets_ours(
        traced: OTLPReceiver, gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await post(user_request(), traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
    assert response.status_code == 200
    row, spans = await exchange_traced(traced, response, count=6)
    assert row.trace_id == CLIENT_TRACE
    server = by_name(spans)["POST /v1/messages"]
    assert server["parent_span_id"] == CLIENT_SPAN
    version, trace_id, parent_id, flags = upstream.requests[0].headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "01")
    assert parent_id == server["span_id"] != CLIENT_SPAN


async def test_a_new_trace_is_started_and_named_in_the_backends_traceparent(
        traced: OTLPReceiver, gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await post(user_request())
    row, spans = await exchange_traced(traced, response, count=6)
    server = by_name(spans)["POST /v1/messages"]
    assert len(row.trace_id) == 32 and row.trace_id != "0" * 32
    assert upstream.requests[0].headers["traceparent"] == f"00-{row.trace_id}-{server['span_id']}-01"


async def test_each_upstream_attempt_is_a_client_span_and_carries_the_traceparent(
        traced: OTLPReceiver, gateway_setup: str, upstream: Upstream) -> None:
    from gateway import snapshot
    from gateway.models import Backend, Route, RouteTarget

    first = await Backend.objects.acreate(name="replica-a", base_url="http://a.test/v1", preset="vllm")
    second = await Backend.objects.acreate(name="replica-b", base_url="http://b.test/v1", preset="vllm")
    route = await Route.objects.acreate(model="team", backend=first, upstream_model="qwen", max_attempts=2, order=1)
    await RouteTarget.objects.acreate(route=route, backend=second, upstream_model="qwen")
    snapshot.snapshot_invalidate()
    answers = iter([httpx.Response(503, json={"error": {"message": "busy"}}),
                    httpx.Response(200, json=chat_completion("ok"))])
    upstream.handler = lambda request: next(answers)
    response = await post(user_request(model="team"))
    assert response.status_code == 200, response.content
    row, spans = await exchange_traced(traced, response, count=7)
    server = by_name([s for s in spans if s["kind"] == SERVER])["POST /v1/messages"]
    failed, answered = sorted((s for s in spans if s["name"] == "chat qwen"), key=lambda s: s["start"])
    assert failed["parent_span_id"] == answered["parent_span_id"] == server["span_id"]
    assert failed["end"] <= answered["start"]
    assert failed["status"] == 2 and failed["attributes"]["dragoman.attempt.outcome"] == "failed"  # STATUS_CODE_ERROR
    assert failed["attributes"]["http.response.status_code"] == 503
    assert answered["status"] == 0 and answered["attributes"]["dragoman.attempt.outcome"] == "ok"
    assert {failed["attributes"]["dragoman.backend"], answered["attributes"]["dragoman.backend"]} == {
        "replica-a", "replica-b"}
    assert server["attributes"]["dragoman.attempts"] == 2
    assert [r.headers["traceparent"] for r in upstream.requests] == [f"00-{row.trace_id}-{server['span_id']}-01"] * 2


async def test_an_unsampled_exchange_says_so_upstream_and_exports_no_span(
        traced: OTLPReceiver, gateway_setup: str, upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    tracing.stop()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    assert tracing.start()
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await post(user_request())
    assert response.status_code == 200
    row, spans = await exchange_traced(traced, response, count=0)
    assert spans == [] and traced.spans == []
    assert upstream.requests[0].headers["traceparent"].endswith("-00")
    assert upstream.requests[0].headers["traceparent"].split("-")[1] == row.trace_id


async def test_refused_requests_are_traced_too(traced: OTLPReceiver, gateway_setup: str, upstream: Upstream) -> None:
    wrong = "dgm_wrong_key_0000000000000000"
    response = await post(user_request(), **{"x-api-key": wrong})  # refused at admission
    assert response.status_code == 401
    row, spans = await exchange_traced(traced, response, count=3)
    server = by_name(spans)["POST /v1/messages"]
    assert server["attributes"]["dragoman.request_id"] == row.id
    assert server["attributes"]["http.response.status_code"] == 401
    assert server["attributes"]["error.type"] == "authentication_error"

    response = await AsyncClient().post("/v1/no-such-thing", data="{}", content_type="application/json",
                                        headers={"x-api-key": wrong})  # refused by the middleware
    assert response.status_code == 404
    row, spans = await exchange_traced(traced, response, count=2)
    assert len(row.trace_id) == 32
    server = by_name(spans)["POST"]
    assert server["kind"] == SERVER and server["attributes"]["dragoman.request_id"] == row.id
    assert server["attributes"]["error.type"] == "not_found_error"
    assert wrong.encode() not in b"".join(traced.raw)
    assert not upstream.requests


async def test_count_tokens_is_a_server_span_of_its_own_route(traced: OTLPReceiver, gateway_setup: str,
                                                                upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(404)  # vllm-test has no tokenizer: the estimate answers
    response = await AsyncClient().post("/v1/messages/count_tokens", content_type="application/json",
                                        data=json.dumps({"model": "test-model", "messages": [
                                            {"role": "user", "content": "Hi"}]}), headers={"x-api-key": KEY})
    assert response.status_code == 200, response.content
    row, spans = await exchange_traced(traced, response, count=3)
    server = by_name([s for s in spans if s["kind"] == SERVER])["POST /v1/messages/count_tokens"]
    assert server["attributes"]["http.route"] == "/v1/messages/count_tokens"
    assert server["attributes"]["dragoman.request_id"] == row.id
    assert "gen_ai.operation.name" not in server["attributes"]  # not an inference
    for request in upstream.requests:
        assert request.headers["traceparent"].split("-")[1] == row.trace_id


async def test_genai_metrics_count_tokens_duration_and_first_token(traced: OTLPReceiver, gateway_setup: str,
                                                                   upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await post(user_request())
    assert response.status_code == 200
    await exchange_traced(traced, response, count=6)
    [tokens] = traced.metrics_wait("gen_ai.client.token.usage")
    assert tokens["unit"] == "{token}" and tokens["kind"] == "histogram"
    by_type = {p["attributes"]["gen_ai.token.type"]: p for p in tokens["points"]}
    assert (by_type["input"]["sum"], by_type["output"]["sum"]) == (12, 3)
    assert by_type["input"]["bounds"][:3] == [1, 4, 16]
    assert by_type["input"]["attributes"]["dragoman.backend"] == "vllm-test"
    assert by_type["input"]["attributes"]["gen_ai.provider.name"] == "vllm"
    for name in ("gen_ai.server.request.duration", "gen_ai.server.time_to_first_token"):
        [metric] = traced.metrics_wait(name)
        assert metric["unit"] == "s"
        [point] = metric["points"]
        assert point["count"] == 1 and 0 < point["sum"] < 10
        assert point["attributes"]["http.response.status_code"] == 200


async def test_without_an_endpoint_nothing_is_started_and_no_traceparent_is_sent(
        monkeypatch: pytest.MonkeyPatch, gateway_setup: str, upstream: Upstream) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    tracing.stop()
    assert not tracing.start()
    assert not (tracing.traces or tracing.metrics)
    assert not [t for t in threading.enumerate() if t.name.startswith("Otel")]  # no exporter thread
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await post(user_request(), traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
    assert response.status_code == 200
    assert "traceparent" not in upstream.requests[0].headers
    from inspector.models import Exchange
    from inspector.recorder import recorder

    assert await sync_to_async(recorder.flush)(10)
    assert (await Exchange.objects.aget(pk=response["request-id"])).trace_id == ""


def test_an_exporter_set_to_none_leaves_its_signal_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing is sent in this test
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    tracing.stop()
    try:
        assert tracing.start()
        assert tracing.traces and not tracing.metrics
    finally:
        tracing.stop()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.start()


def test_the_exchange_page_links_its_trace_when_a_trace_url_is_set(staff: Any, settings: Any) -> None:
    from django.utils import timezone

    from inspector.models import Exchange

    Exchange.objects.create(id="req_traced", created_at=timezone.now(), status=200, trace_id=CLIENT_TRACE)
    page = reverse("admin:inspector_exchange_change", args=["req_traced"])
    settings.TRACE_URL = "https://grafana.example/explore?traceId={trace_id}"
    html = staff.get(page).content.decode()
    assert f'href="https://grafana.example/explore?traceId={CLIENT_TRACE}"' in html
    settings.TRACE_URL = ""
    html = staff.get(page).content.decode()
    assert f"<code>{CLIENT_TRACE}</code>" in html and "grafana.example" not in html
