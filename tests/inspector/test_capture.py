"""Every item the issue lists is in the Exchange: both requests, both responses, notes, route,
timings, usage on both sides, outcome and the stream validator's verdict."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from inspector.recorder import ExchangeRecord
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, parse_sse, sse_chunks, sse_response, user_request

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_KEY = "sk-upstream-secret-9876"


@pytest.fixture
def keyed_backend(gateway_setup: str) -> str:
    """The test backend with an upstream API key, so masking of what the gateway sends shows."""
    from gateway import snapshot
    from gateway.models import Backend

    Backend.objects.filter(name="vllm-test").update(api_key=UPSTREAM_KEY)
    snapshot.snapshot_invalidate()
    return gateway_setup


async def post(body: dict[str, Any], **headers: str) -> Any:
    headers.setdefault("x-api-key", KEY)
    return await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                    headers={"cookie": "session=abcdefghijk", **headers})


async def test_a_non_streaming_exchange_records_both_requests_both_responses_and_the_outcome(
    keyed_backend: str, upstream: Upstream, recorded: Any
) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("Hello there"))
    prefill = user_request(messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Well,"}])
    response = await post(prefill)
    assert response.status_code == 200
    [x] = await recorded()
    assert x.id == response["request-id"]
    # Client request as received: masked headers, exact body.
    assert x.client_request["method"] == "POST" and x.client_request["path"] == "/v1/messages"
    assert x.client_request["headers"]["X-Api-Key"] == "***" + KEY[-4:]
    assert x.client_request["headers"]["Cookie"].startswith("***")
    assert "abcdefg" not in json.dumps(x.client_request)
    assert x.client_request["body"] == prefill
    # Upstream request as sent: URL, masked headers, body; notes, backend, route, preset.
    assert x.upstream_request["url"] == "http://upstream.test/v1/chat/completions"
    assert x.upstream_request["headers"]["authorization"] == "***9876"
    assert x.upstream_request["body"] == json.loads(upstream.requests[0].content)
    assert UPSTREAM_KEY not in json.dumps(x.upstream_request) and KEY not in json.dumps(x.client_request)
    assert any(n["rule"].startswith("prefill") for n in x.notes) and x.rewrite_count == len(x.notes)
    assert (x.backend_name, x.route, x.preset, x.upstream_model) == ("vllm-test", "test-model", "vllm",
                                                                      "Qwen/Qwen3-8B")
    # Upstream response body and client response body.
    assert x.upstream_response == {"status": 200, "body": chat_completion("Hello there")}
    assert x.client_response["body"] == json.loads(response.content)
    # Outcome: status, stop_reason, usage on both sides; no verdict for a non-stream.
    assert (x.status, x.stop_reason, x.error_type, x.disconnected) == (200, "end_turn", "", False)
    assert (x.input_tokens, x.output_tokens) == (12, 3)
    assert x.usage["input_tokens"] == 12
    assert x.upstream_usage == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert x.valid is None and x.capture == "full"
    # Timings: received (0) <= connected <= first byte <= done <= finished; TTFT is the whole reply.
    t = x.timings
    assert 0 <= t["upstream_connected"] <= t["upstream_first_byte"] <= t["upstream_done"] <= t["finished"]
    assert x.duration_ms == t["finished"] and x.ttft_ms == t["finished"]
    assert x.overhead_ms == pytest.approx(t["upstream_connected"] + t["finished"] - t["upstream_done"], abs=0.01)
    assert 0 < x.overhead_ms <= x.duration_ms


async def test_a_stream_records_every_chunk_and_every_event_with_times_and_the_chunk_behind_it(
    keyed_backend: str, upstream: Upstream, recorded: Any
) -> None:
    raw = sse_chunks([{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}])
    upstream.handler = lambda request: sse_response(raw)
    response = await post(user_request(stream=True))
    events = parse_sse(b"".join([c async for c in response.streaming_content]))
    [x] = await recorded()
    # Every raw upstream chunk with its arrival time (MockTransport delivers the body as one chunk).
    chunks = x.upstream_response["chunks"]
    assert "".join(text for _, text in chunks).encode() == raw
    assert all(isinstance(t, float) for t, _ in chunks)
    # Every event the client got, with its time and the index of the upstream chunk behind it.
    logged = x.client_response["events"]
    assert [e for _, _, e in logged] == [data for _, data in events]
    assert logged[0][1] == -1  # message_start comes before any chunk
    assert all(i == 0 for _, i, e in logged[1:])
    assert [t for t, _, _ in logged] == sorted(t for t, _, _ in logged)
    assert x.client_response["message"]["content"] == [{"type": "text", "text": "Hello"}]
    # Timings of a stream, and the gateway's share of the time to first token.
    t = x.timings
    assert t["upstream_connected"] <= t["upstream_headers"] <= t["upstream_first_byte"] <= t["first_token"]
    assert t["first_event"] <= t["first_token"] <= t["finished"]
    assert t["first_token_chunk"] == chunks[0][0]
    assert x.ttft_ms == t["first_token"] and x.first_event_ms == t["first_event"]
    assert x.upstream_first_byte_ms == t["upstream_first_byte"]
    assert x.overhead_ms == pytest.approx(t["upstream_connected"] + t["first_token"] - t["first_token_chunk"],
                                          abs=0.01)
    # Outcome and the validator's verdict on what the client received.
    assert (x.status, x.stop_reason, x.stream) == (200, "end_turn", True)
    assert x.upstream_usage == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert x.output_tokens == 3
    assert (x.valid, x.validation_error) == (True, "")


async def test_an_upstream_error_is_recorded_with_the_backend_body(gateway_setup: str, upstream: Upstream,
                                                                   recorded: Any) -> None:
    upstream.handler = lambda request: httpx.Response(503, json={"error": {"message": "overloaded"}})
    response = await post(user_request(stream=True))
    assert response.status_code >= 500
    [x] = await recorded()
    assert x.upstream_response == {"status": 503, "body": {"error": {"message": "overloaded"}}}
    assert x.status == response.status_code and x.error_type and "overloaded" in x.error_message
    assert x.valid is None and x.ttft_ms is None
    assert "upstream_first_byte" in x.timings


async def test_a_stream_cut_by_the_backend_is_valid_when_it_ends_with_an_error_event(
    gateway_setup: str, upstream: Upstream, recorded: Any
) -> None:
    upstream.handler = lambda request: sse_response(b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n')
    response = await post(user_request(stream=True))
    assert parse_sse(b"".join([c async for c in response.streaming_content]))[-1][0] == "error"
    [x] = await recorded()
    assert x.client_response["events"][-1][2]["type"] == "error"
    assert x.error_type == "api_error" and x.valid is True


def test_the_verdict_names_the_first_violation_in_what_the_client_received() -> None:
    record = ExchangeRecord(id="req_x", stream=True, status=200)
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                  "content": [], "model": "m", "stop_reason": None,
                                                  "usage": {"input_tokens": 1, "output_tokens": 0}}}
    record.client_response = {"events": [[0.1, -1, start],
                                         [0.2, 0, {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": "x"}}]]}
    row = record.as_model_kwargs()
    assert row["valid"] is False
    assert row["validation_error"].startswith("event 1 ('content_block_delta')")


async def test_route_pattern_is_the_glob_that_matched(gateway_setup: str, upstream: Upstream,
                                                      recorded: Any) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    await post(user_request(model="claude-sonnet-4-5"))
    [x] = await recorded()
    assert (x.client_model, x.route) == ("claude-sonnet-4-5", "claude-*")


async def test_exchanges_are_stored_by_the_writer_thread_not_the_request(gateway_setup: str, upstream: Upstream,
                                                                         recorded: Any) -> None:
    from inspector.models import Exchange

    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await post(user_request())
    assert response.status_code == 200
    # The response is back before its exchange reached the database (FLUSH_SECONDS later).
    assert not await sync_to_async(Exchange.objects.filter(pk=response["request-id"]).exists)()
    [x] = await recorded()
    assert x.id == response["request-id"]
