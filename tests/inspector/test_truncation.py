"""Bodies and event logs are capped (DRAGOMAN_INSPECTOR_MAX_BODY_BYTES, _MAX_EVENTS) by the
writer, with an explicit ``{"_truncated": true, "kept": N, "total": M}`` marker."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from inspector.recorder import ExchangeRecord
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, parse_sse, sse_chunks, sse_response, user_request

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_body_over_the_cap_becomes_a_marker_with_its_first_bytes(settings: Any) -> None:
    settings.INSPECTOR_MAX_BODY_BYTES = 50
    record = ExchangeRecord(id="req_t")
    raw = json.dumps({"text": "x" * 200}).encode()
    record.client_request = {"headers": {}, "body_raw": raw}
    record.upstream_request = {"url": "u", "body": {"text": "y" * 200}}
    record.client_response = {"body": {"ok": True}}
    row = record.as_model_kwargs()
    assert row["client_request"]["body"] == {"_truncated": True, "kept": 50, "total": len(raw),
                                             "head": raw[:50].decode()}
    assert row["upstream_request"]["body"]["_truncated"] is True
    assert row["upstream_request"]["body"]["head"].startswith('{"text":"yyy')
    assert row["client_response"] == {"body": {"ok": True}}  # under the cap: untouched


def test_an_event_log_over_the_cap_keeps_its_start_and_its_end(settings: Any) -> None:
    settings.INSPECTOR_MAX_EVENTS = 40
    record = ExchangeRecord(id="req_t", stream=True, status=200)
    events = [[float(i), i, {"type": "ping", "n": i}] for i in range(100)]
    record.client_response = {"events": events}
    record.upstream_response = {"chunks": [[float(i), "c"] for i in range(41)]}
    row = record.as_model_kwargs()
    kept = row["client_response"]["events"]
    assert len(kept) == 40
    assert kept[:20] == events[:20] and kept[20:] == events[-20:]
    assert row["client_response"]["events_truncated"] == {"_truncated": True, "kept": 40, "total": 100,
                                                          "omitted_after": 20}
    assert len(row["upstream_response"]["chunks"]) == 40
    assert row["upstream_response"]["chunks_truncated"]["total"] == 41
    # The verdict is given on everything the client received, before the cap.
    assert row["validation_error"] == "stream ended after 100 events without message_stop"


def test_under_the_caps_nothing_is_marked(settings: Any) -> None:
    record = ExchangeRecord(id="req_t")
    record.client_response = {"events": [[0.0, -1, {"type": "ping"}]], "message": {"content": []}}
    row = record.as_model_kwargs()
    assert "events_truncated" not in row["client_response"]
    assert row["client_response"]["message"] == {"content": []}


async def test_a_long_stream_through_the_gateway_is_stored_capped(gateway_setup: str, upstream: Upstream,
                                                                  recorded: Any, settings: Any) -> None:
    settings.INSPECTOR_MAX_EVENTS = 10
    settings.INSPECTOR_MAX_BODY_BYTES = 300
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": f"w{i} "} for i in range(30)]))
    response = await AsyncClient().post("/v1/messages", data=json.dumps(user_request(stream=True)),
                                        content_type="application/json", headers={"x-api-key": KEY})
    events = parse_sse(b"".join([c async for c in response.streaming_content]))
    [x] = await recorded()
    logged = x.client_response["events"]
    assert len(logged) == 10 and logged[-1][2]["type"] == "message_stop"
    assert x.client_response["events_truncated"]["total"] == len(events)
    assert x.client_response["message"]["_truncated"] is True  # the rebuilt message is a body too
    assert x.valid is True  # validated before capping


async def test_a_big_non_streaming_request_is_stored_capped(gateway_setup: str, upstream: Upstream,
                                                            recorded: Any, settings: Any) -> None:
    settings.INSPECTOR_MAX_BODY_BYTES = 1000
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    body = user_request(messages=[{"role": "user", "content": "z" * 5000}])
    await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                             headers={"x-api-key": KEY})
    [x] = await recorded()
    assert x.client_request["body"]["_truncated"] is True
    assert x.client_request["body"]["kept"] == 1000 and x.client_request["body"]["total"] > 5000
    assert x.upstream_request["body"]["_truncated"] is True
    assert x.upstream_response["body"] == chat_completion("ok")
