"""Failover before the first byte (gateway.pipeline.attempts), in process: what moves a request
to the next target and what does not, the attempt limit and deadline, a fallback of another kind
translated for itself, and every attempt on the record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from gateway import snapshot
from gateway.health import health
from inspector.recorder import ExchangeRecord, recorder
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, parse_sse, sse_chunks, sse_response, user_request

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[ExchangeRecord]:
    """Every record the pipeline hands the recorder (still also written)."""
    seen: list[ExchangeRecord] = []
    real = recorder.submit

    def submit(record: ExchangeRecord) -> None:
        seen.append(record)
        real(record)

    monkeypatch.setattr(recorder, "submit", submit)
    return seen


@pytest.fixture
def team(transactional_db: None) -> Iterator[Callable[..., Any]]:
    from gateway.models import Backend, Route, RouteTarget
    from gateway.services import apikey_create

    a = Backend.objects.create(name="vllm-a", base_url="http://a.test/v1", preset="vllm", api_key="sk-backend-a-secret")
    b = Backend.objects.create(name="vllm-b", base_url="http://b.test/v1", preset="vllm")
    native = Backend.objects.create(name="native", kind="anthropic", base_url="http://native.test/v1",
                                    preset="anthropic")
    route = Route.objects.create(model="team", backend=a, upstream_model="qwen", max_attempts=3)
    RouteTarget.objects.create(route=route, backend=b, upstream_model="qwen")
    RouteTarget.objects.create(route=route, backend=native, upstream_model="claude-fallback", priority=1)
    apikey_create(name="tester", secret=KEY)
    snapshot.snapshot_invalidate()

    def configure(**fields: Any) -> None:
        Route.objects.filter(pk=route.pk).update(**fields)
        snapshot.snapshot_invalidate()

    yield configure
    snapshot.snapshot_invalidate()
    recorder.flush(10)


def by_host(answers: dict[str, Callable[[httpx.Request], httpx.Response]]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return answers[request.url.host](request)
    return handler


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def status(code: int, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, json={"error": {"message": f"mock {code}"}}, headers=headers)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=chat_completion("from b"))


def native_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-fallback",
                                     "content": [{"type": "text", "text": "from native"}], "stop_reason": "end_turn",
                                     "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 2}})


async def post(body: dict[str, Any], session: str = "s-1") -> Any:
    headers = {"x-api-key": KEY, "x-claude-code-session-id": session}
    return await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                    headers=headers)


def hosts(upstream: Upstream) -> list[str]:
    return [r.url.host for r in upstream.requests]


async def first_on_a(upstream: Upstream) -> str:
    """A session whose first choice is vllm-a (affinity makes the order per session)."""
    from gateway.pipeline.attempts import targets_planned  # noqa: F401  (documents what decides)

    upstream.handler = lambda request: ok(request) if request.url.host == "a.test" else status(599)(request)
    for n in range(50):
        session = f"session-{n}"
        before = len(upstream.requests)
        response = await post(user_request(model="team"), session)
        assert len(upstream.requests) > before, response.content
        if upstream.requests[before].url.host == "a.test":
            upstream.requests.clear()
            return session
    raise AssertionError("no session starts on vllm-a")


async def test_a_5xx_moves_the_request_to_the_next_replica_and_every_attempt_is_recorded(
        team: Any, upstream: Upstream, submitted: list[ExchangeRecord]) -> None:
    session = await first_on_a(upstream)
    submitted.clear()
    upstream.handler = by_host({"a.test": status(503), "b.test": ok})
    response = await post(user_request(model="team"), session)
    assert response.status_code == 200, response.content
    assert response.json()["content"][0]["text"] == "from b"
    assert hosts(upstream) == ["a.test", "b.test"]
    record = submitted[-1]
    assert [(a["backend"], a["outcome"], a["status"], a["reason"]) for a in record.attempts] == [
        ("vllm-a", "failed", 503, "affinity"), ("vllm-b", "ok", 200, "affinity")]
    assert "mock 503" in record.attempts[0]["error"]
    assert record.backend_name == "vllm-b" and record.upstream_request["url"].startswith("http://b.test")
    assert record.attempts[0]["ended_ms"] <= record.attempts[1]["started_ms"]


async def test_the_clients_own_mistake_is_not_retried(team: Any, upstream: Upstream,
                                                      submitted: list[ExchangeRecord]) -> None:
    session = await first_on_a(upstream)
    upstream.handler = by_host({"a.test": status(400), "b.test": ok})
    response = await post(user_request(model="team"), session)
    assert response.status_code == 400
    assert hosts(upstream) == ["a.test"]
    assert [a["outcome"] for a in submitted[-1].attempts] == ["gave up"]
    assert health.state_of("vllm-a") == "healthy"  # the backend answered: not its failure


async def test_with_the_replicas_down_the_fallback_of_another_kind_gets_its_own_request(
        team: Any, upstream: Upstream, submitted: list[ExchangeRecord]) -> None:
    upstream.handler = by_host({"a.test": refused, "b.test": status(529, **{"retry-after": "7"}),
                                "native.test": native_ok})
    response = await post(user_request(model="team"))
    assert response.status_code == 200, response.content
    assert response.json()["content"][0]["text"] == "from native"
    assert sorted(hosts(upstream)[:2]) == ["a.test", "b.test"] and hosts(upstream)[2] == "native.test"
    native = upstream.requests[2]
    assert native.url.path == "/v1/messages"
    sent = json.loads(native.content)
    assert sent["model"] == "claude-fallback" and "stream_options" not in sent and sent["max_tokens"]
    assert native.headers.get("anthropic-version")
    assert submitted[-1].attempts[-1]["reason"] == "fallback"
    assert health.state_of("vllm-b") == "ejected"  # 529 with retry-after: skipped that long
    assert health.report()["vllm-b"]["ejected_until"] - health.clock() == pytest.approx(7, abs=1)


async def test_the_attempt_limit_and_the_deadline(team: Any, upstream: Upstream,
                                                  submitted: list[ExchangeRecord]) -> None:
    upstream.handler = status(500)
    await sync_to_async(team)(max_attempts=2)
    response = await post(user_request(model="team"))
    assert response.status_code == 500
    assert len(upstream.requests) == 2
    assert "after 2 attempts" in response.json()["error"]["message"]
    assert [a["outcome"] for a in submitted[-1].attempts] == ["failed", "gave up"]
    upstream.requests.clear()
    await sync_to_async(team)(max_attempts=3, failover_seconds=0)
    response = await post(user_request(model="team"), "another")
    assert response.status_code == 500 and len(upstream.requests) == 1


async def test_a_stream_fails_over_before_its_first_byte(team: Any, upstream: Upstream,
                                                        submitted: list[ExchangeRecord]) -> None:
    session = await first_on_a(upstream)
    stream = sse_chunks([{"content": "streamed "}, {"content": "from b"}])
    upstream.handler = by_host({"a.test": refused, "b.test": lambda request: sse_response(stream)})
    response = await post(user_request(model="team", stream=True), session)
    assert response.status_code == 200
    events = parse_sse(b"".join([part async for part in response.streaming_content]))
    text = "".join(e["delta"].get("text", "") for name, e in events if name == "content_block_delta")
    assert text == "streamed from b" and events[-1][0] == "message_stop"
    assert [a["outcome"] for a in submitted[-1].attempts] == ["failed", "ok"]
    assert "unreachable" in submitted[-1].attempts[0]["error"]


async def test_a_backend_key_echoed_in_an_error_is_masked_in_the_attempt(team: Any, upstream: Upstream,
                                                                         submitted: list[ExchangeRecord]) -> None:
    session = await first_on_a(upstream)

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": f"bad key {request.headers['authorization']}"}})

    upstream.handler = by_host({"a.test": echo, "b.test": ok})
    response = await post(user_request(model="team"), session)
    assert response.status_code == 200
    error = submitted[-1].attempts[0]["error"]
    assert "bad key Bearer " in error and "sk-backend-a-secret" not in error


async def test_a_stream_whose_backend_stays_silent_is_left_at_the_deadline(team: Any, upstream: Upstream,
                                                                          submitted: list[ExchangeRecord]) -> None:
    session = await first_on_a(upstream)
    await sync_to_async(team)(failover_seconds=0.3)
    never = asyncio.Event()

    async def silent(request: httpx.Request) -> httpx.Response:
        await never.wait()  # a wedged server: the connection is open, no head ever comes
        raise AssertionError("unreachable")

    stream = sse_chunks([{"content": "from b"}])
    upstream.handler = by_host({"a.test": silent, "b.test": lambda request: sse_response(stream)})  # type: ignore[dict-item]
    response = await post(user_request(model="team", stream=True), session)
    assert response.status_code == 200
    events = parse_sse(b"".join([part async for part in response.streaming_content]))
    assert "".join(e["delta"].get("text", "") for n, e in events if n == "content_block_delta") == "from b"
    first, second = submitted[-1].attempts
    assert first["outcome"] == "failed" and first["error_type"] == "timeout_error"
    assert 250 <= first["ended_ms"] < 2000 and second["outcome"] == "ok"


async def test_a_non_streamed_answer_ends_its_attempt_before_the_record_is_handed_on(
        team: Any, upstream: Upstream, submitted: list[ExchangeRecord]) -> None:
    """A whole message is complete (and the record submitted) before its attempt returns: the
    attempt is still "ok" on the record, and the backend's in-flight count comes back to zero
    (it leaked one per non-streamed request, and "least in-flight" then avoided that replica)."""
    upstream.handler = ok
    for n in range(3):
        assert (await post(user_request(model="team"), f"s-{n}")).status_code == 200
    assert [a["outcome"] for r in submitted for a in r.attempts] == ["ok"] * 3
    assert all(r.attempts[0]["ended_ms"] is not None for r in submitted)
    assert health.inflight("vllm-a") == health.inflight("vllm-b") == 0
