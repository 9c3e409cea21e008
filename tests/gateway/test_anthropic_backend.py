"""POST /v1/messages to a native Anthropic backend (kind ``anthropic``), through the real gateway
with a scripted upstream: passthrough, prefill rewrite for Claude 4.6+, streams, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from gateway.backends import adapter_for
from gateway.snapshot import BackendInfo, RouteInfo
from tests.conftest import FIXTURES, KEY, Upstream
from tests.gateway.helpers import parse_sse, sse_response
from translation.capabilities import capabilities_build
from translation.prefill import PREFILL_REWRITE_INSTRUCTION
from translation.schemas import MessagesRequest
from translation.validate import stream_validate

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_KEY = "sk-ant-upstream-test"
PREFILL_REJECTED = ("This model does not support assistant message prefill. The conversation must end with a "
                    "user message.")
PREFILL = [{"role": "user", "content": "Say hello world"}, {"role": "assistant", "content": "hello"}]


@pytest.fixture
def native(gateway_setup: str) -> Iterator[str]:
    """An ``anthropic-no-prefill`` backend (Claude 4.6+) behind ``claude-opus-4-6*`` and an ``anthropic``
    one (prefill native) behind ``claude-sonnet-4-5*``, routed before gateway_setup's ``claude-*``."""
    from gateway import snapshot
    from gateway.models import Backend, Route

    new = Backend.objects.create(name="claude-46", kind="anthropic", base_url="http://anthropic.test/v1",
                                 preset="anthropic-no-prefill", api_key=UPSTREAM_KEY)
    old = Backend.objects.create(name="claude-45", kind="anthropic", base_url="http://anthropic.test/v1",
                                 preset="anthropic", api_key=UPSTREAM_KEY)
    Route.objects.create(model="claude-opus-4-6*", backend=new, upstream_model="claude-opus-4-6", order=1)
    Route.objects.create(model="claude-sonnet-4-5*", backend=old, order=2)
    snapshot.snapshot_invalidate()
    yield gateway_setup
    snapshot.snapshot_invalidate()


async def post(body: dict[str, Any], **headers: str) -> Any:
    headers.setdefault("x-api-key", KEY)
    return await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                    headers=headers)


def ask(messages: Any = "Hi", model: str = "claude-opus-4-6", **extra: Any) -> dict[str, Any]:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return {"model": model, "max_tokens": 100, "messages": messages, **extra}


def anthropic_message(text: str, **extra: Any) -> dict[str, Any]:
    return {"id": "msg_upstream01", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 21, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4,
                      "output_tokens": 5, "service_tier": "standard"}, **extra}


def recorded_sse(name: str) -> bytes:
    return (FIXTURES / f"sse_{name}.accepted-by-claude-code.txt").read_bytes()


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


async def stream_events(response: Any) -> list[tuple[str, dict[str, Any]]]:
    return parse_sse(b"".join([chunk async for chunk in response.streaming_content]))


# -- non-streamed ---------------------------------------------------------------------------------


async def test_a_message_passes_through_with_the_gateway_id_and_client_model(native: str,
                                                                              upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=anthropic_message("Hello there"))
    response = await post(ask(temperature=0.3, top_p=0.9, context_management={"edits": []}))
    assert response.status_code == 200
    message = json.loads(response.content)
    assert message == {**anthropic_message("Hello there"), "id": message["id"], "model": "claude-opus-4-6"}
    assert message["id"].startswith("msg_") and message["id"] != "msg_upstream01"
    [request] = upstream.requests
    assert str(request.url) == "http://anthropic.test/v1/messages"
    assert request.headers["x-api-key"] == UPSTREAM_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert upstream.bodies() == [{"model": "claude-opus-4-6", "max_tokens": 100,
                                  "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.3,
                                  "context_management": {"edits": []}}]


async def test_a_prefill_reaches_claude_46_as_a_user_turn_and_the_client_sees_the_continuation(
        native: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=anthropic_message("hello world."))
    response = await post(ask(PREFILL))
    assert response.status_code == 200
    assert json.loads(response.content)["content"] == [{"type": "text", "text": " world."}]
    [sent] = upstream.bodies()
    assert sent["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Say hello world"},
        {"type": "text", "text": PREFILL_REWRITE_INSTRUCTION.format(text="hello")}]}]


async def test_a_prefill_to_an_older_claude_is_sent_as_is(native: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=anthropic_message(" world."))
    response = await post(ask(PREFILL, model="claude-sonnet-4-5"))
    assert json.loads(response.content)["content"] == [{"type": "text", "text": " world."}]
    assert upstream.bodies()[0]["messages"] == PREFILL
    assert upstream.bodies()[0]["model"] == "claude-sonnet-4-5"


# -- streamed ---------------------------------------------------------------------------------------


async def test_a_recorded_stream_is_relayed_event_for_event(native: str, upstream: Upstream) -> None:
    raw = recorded_sse("thinking_text_tool_use")
    upstream.handler = lambda request: sse_response(raw)
    response = await post(ask(stream=True))
    assert response.status_code == 200
    events = await stream_events(response)
    expected = parse_sse(raw)
    expected[0][1]["message"].update(id=events[0][1]["message"]["id"], model="claude-opus-4-6")
    assert events == expected
    assert stream_validate([data for _, data in events]) is None
    assert upstream.requests[0].headers["accept"] == "text/event-stream"


async def test_a_streamed_prefill_continuation_loses_the_repeated_prefix(native: str, upstream: Upstream) -> None:
    upstream_events = [
        {"type": "message_start", "message": {**anthropic_message(""), "content": [], "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
          for t in ("hel", "lo", " world.")),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]
    upstream.handler = lambda request: sse_response(sse(*upstream_events))
    events = await stream_events(await post(ask(PREFILL, stream=True)))
    texts = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert texts == [" world."]
    assert stream_validate([data for _, data in events]) is None
    assert upstream.bodies()[0]["messages"][-1]["role"] == "user"


async def test_an_upstream_error_event_mid_stream_reaches_the_client(native: str, upstream: Upstream) -> None:
    raw = recorded_sse("text")
    cut = raw.index(b"event: content_block_stop")
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    upstream.handler = lambda request: sse_response(raw[:cut] + sse(error))
    events = await stream_events(await post(ask(stream=True)))
    assert events[-2:] == [("content_block_stop", {"type": "content_block_stop", "index": 0}), ("error", error)]
    assert stream_validate([data for _, data in events]) is None


async def test_a_stream_cut_off_mid_block_ends_in_an_error_event(native: str, upstream: Upstream) -> None:
    raw = recorded_sse("text")
    upstream.handler = lambda request: sse_response(raw[: raw.index(b"event: content_block_stop")])
    events = await stream_events(await post(ask(stream=True)))
    assert [n for n, _ in events[-2:]] == ["content_block_stop", "error"]
    assert stream_validate([data for _, data in events]) is None


# -- upstream errors keep Anthropic's type and message ---------------------------------------------


def anthropic_error(status: int, error_type: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"type": "error", "error": {"type": error_type, "message": message}},
                          headers=headers)


@pytest.mark.parametrize(("status", "error_type", "message", "client_status"), [
    (400, "invalid_request_error", PREFILL_REJECTED, 400),
    (529, "overloaded_error", "Overloaded", 529),
    (500, "api_error", "Internal server error", 500),
    (404, "not_found_error", "model: claude-opus-4-6", 404),
])
async def test_upstream_errors_reach_the_client_with_anthropic_type_and_message(
        native: str, upstream: Upstream, status: int, error_type: str, message: str, client_status: int) -> None:
    upstream.handler = lambda request: anthropic_error(status, error_type, message)
    for stream in (False, True):
        response = await post(ask(stream=stream))
        assert response.status_code == client_status
        body = json.loads(response.content)
        assert body["error"] == {"type": error_type, "message": message}


async def test_a_429_keeps_retry_after(native: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: anthropic_error(429, "rate_limit_error", "Slow down", **{"retry-after": "7"})
    response = await post(ask())
    assert response.status_code == 429
    assert response["retry-after"] == "7"
    assert json.loads(response.content)["error"] == {"type": "rate_limit_error", "message": "Slow down"}


async def test_a_401_from_anthropic_is_the_gateways_credential_problem(native: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: anthropic_error(401, "authentication_error", "invalid x-api-key")
    response = await post(ask())
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["type"] == "api_error"


# -- the adapter on its own: headers the pipeline does not pass yet --------------------------------


def route(**caps: Any) -> RouteInfo:
    capabilities = capabilities_build(preset="anthropic", overrides=caps)
    backend = BackendInfo(id=1, name="claude", kind="anthropic", base_url="https://api.anthropic.test/v1",
                          api_key=UPSTREAM_KEY, preset="anthropic", capabilities=capabilities, connect_timeout=1,
                          read_timeout=1, updated=0.0)
    return RouteInfo(id=1, pattern="claude-*", is_glob=True, backend=backend, upstream_model="",
                     capabilities=capabilities, created_at="")


def test_the_adapter_forwards_the_accepted_betas_and_extra_headers() -> None:
    req = MessagesRequest.model_validate(ask(stream=True))
    r = route(betas="interleaved-thinking-2025-05-14", extra_headers={"x-team": "blue"})
    call = adapter_for(r.backend).call_build(req=req, route=r, client_headers={
        "Anthropic-Beta": "claude-code-20250219,interleaved-thinking-2025-05-14", "Anthropic-Version": "2023-06-01"})
    assert call.url == "https://api.anthropic.test/v1/messages"
    assert call.headers == {"content-type": "application/json", "anthropic-version": "2023-06-01",
                            "anthropic-beta": "interleaved-thinking-2025-05-14", "x-api-key": UPSTREAM_KEY,
                            "accept": "text/event-stream", "x-team": "blue"}
    assert [n.rule for n in call.notes] == ["betas.filter"]
    assert call.body == {**ask(stream=True), "model": "claude-opus-4-6"}


async def test_the_clients_betas_and_version_reach_the_backend(native: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=anthropic_message("ok"))
    await post(ask(), **{"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
                         "anthropic-version": "2023-06-01"})
    assert upstream.requests[0].headers["anthropic-beta"] == "claude-code-20250219,interleaved-thinking-2025-05-14"
