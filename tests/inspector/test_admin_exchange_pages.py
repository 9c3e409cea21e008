"""The inspector's admin pages: list, exchange page (diff, lanes, exports), replay.

The exchanges come from real requests through the gateway (``upstream`` scripts the backend),
so the pages are tested on what the recorder really stores.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.test import Client

from inspector.models import Exchange
from inspector.recorder import recorder
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, sse_chunks, sse_response

pytestmark = pytest.mark.django_db(transaction=True)

PREFILL: dict[str, Any] = {"model": "test-model", "max_tokens": 100, "messages": [
    {"role": "user", "content": "Count to three"}, {"role": "assistant", "content": "1, 2,"}]}


async def _drain(parts: Any) -> bytes:
    return b"".join([part async for part in parts])


def send(body: dict[str, Any]) -> str:
    """One request through the gateway; returns its request id once the exchange is stored."""
    response = Client().post("/v1/messages", json.dumps(body), content_type="application/json",
                             headers={"x-api-key": KEY})
    if body.get("stream"):
        async_to_sync(_drain)(response.streaming_content)  # type: ignore[attr-defined]
    assert recorder.flush(10)
    return str(response["request-id"])


@pytest.fixture
def prefill_exchange(upstream: Upstream) -> str:
    upstream.handler = lambda request: __import__("httpx").Response(200, json=chat_completion(" 3."))
    return send(PREFILL)


@pytest.fixture
def stream_exchange(upstream: Upstream) -> str:
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "Hel"}, {"content": "lo"}]))
    return send({**PREFILL, "messages": PREFILL["messages"][:1], "stream": True})


def test_the_list_shows_models_tokens_and_rewrites_without_loading_bodies(
        staff: Client, prefill_exchange: str, django_assert_max_num_queries: Any) -> None:
    with django_assert_max_num_queries(8):
        page = staff.get("/admin/inspector/exchange/").content.decode()
    assert prefill_exchange in page or "test-model → vllm-test / Qwen/Qwen3-8B" in page
    assert "test-model → vllm-test / Qwen/Qwen3-8B" in page
    assert "Recorder (this process)" in page


@pytest.mark.parametrize("query", ["has_rewrites=yes", "status_class=2xx", "has_error=no", "since=1h",
                                   "backend_name=vllm-test", "client_model=test-model"])
def test_every_filter_keeps_the_exchange_it_matches(staff: Client, prefill_exchange: str, query: str) -> None:
    page = staff.get(f"/admin/inspector/exchange/?{query}").content.decode()
    assert f"/admin/inspector/exchange/{quote(prefill_exchange)}/change/" in page


def test_search_finds_a_request_by_its_id(staff: Client, prefill_exchange: str) -> None:
    page = staff.get(f"/admin/inspector/exchange/?q={prefill_exchange}").content.decode()
    assert f"/admin/inspector/exchange/{quote(prefill_exchange)}/change/" in page


def test_the_exchange_page_labels_continue_final_message_with_the_prefill_rule(
        staff: Client, prefill_exchange: str) -> None:
    page = staff.get(f"/admin/inspector/exchange/{quote(prefill_exchange)}/change/").content.decode()
    row = page.split('data-path="continue_final_message"', 1)[1].split("</tr>", 1)[0]
    assert "added" in row and "prefill.continue_final_message" in row
    assert "Upstream response → client response" in page


def test_a_streamed_exchange_shows_both_lanes_and_the_validator_verdict(staff: Client, stream_exchange: str) -> None:
    page = staff.get(f"/admin/inspector/exchange/{quote(stream_exchange)}/change/").content.decode()
    assert 'id="stream-lanes"' in page and "content_block_delta" in page and "chat.completion.chunk" in page
    assert "verdict-ok" in page
    assert "&quot;text&quot;: &quot;Hello&quot;" in page  # the message rebuilt from the events


def test_curl_takes_the_key_from_the_environment_and_json_download_has_everything(
        staff: Client, prefill_exchange: str) -> None:
    page = staff.get(f"/admin/inspector/exchange/{quote(prefill_exchange)}/change/").content.decode()
    curl = page.split('id="curl">', 1)[1].split("</pre>", 1)[0]
    assert "-H &quot;x-api-key: $ANTHROPIC_API_KEY&quot;" in curl and "***" not in curl and KEY not in page
    download = staff.get(f"/admin/inspector/exchange/{quote(prefill_exchange)}/json/")
    assert download["content-disposition"].startswith("attachment")
    data = json.loads(download.content)
    assert data["id"] == prefill_exchange and data["upstream_request"]["body"]["continue_final_message"] is True
    assert KEY not in download.content.decode()


def test_replay_needs_a_post_and_records_a_new_exchange_shown_beside_the_old(
        staff: Client, prefill_exchange: str, upstream: Upstream) -> None:
    url = f"/admin/inspector/exchange/{quote(prefill_exchange)}/replay/"
    assert staff.get(url).status_code == 302
    assert Exchange.objects.count() == 1
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(User.objects.get(username="root"))
    assert csrf_client.post(url, {"target": ""}).status_code == 403
    response = staff.post(url, {"target": ""})
    assert response.status_code == 302
    new = Exchange.objects.exclude(pk=prefill_exchange).get()
    assert response["location"] == f"/admin/inspector/exchange/{quote(new.pk)}/change/?compare={prefill_exchange}"
    assert new.status == 200 and new.key_name == "replay by root"
    assert len(upstream.requests) == 2
    page = staff.get(response["location"]).content.decode()
    assert 'id="compare"' in page and prefill_exchange in page


def test_inspector_pages_need_staff(prefill_exchange: str) -> None:
    for url in (f"/admin/inspector/exchange/{quote(prefill_exchange)}/change/", "/admin/inspector/exchange/live/",
                f"/admin/inspector/exchange/{quote(prefill_exchange)}/fixture/"):
        assert Client().get(url).status_code == 302
    assert Client().post(f"/admin/inspector/exchange/{quote(prefill_exchange)}/replay/").status_code in (302, 403)


def test_the_live_tail_page_renders_recent_exchanges(staff: Client, prefill_exchange: str) -> None:
    page = staff.get("/admin/inspector/exchange/live/").content.decode()
    assert prefill_exchange in page and "live/ws" in page


def test_the_response_side_reads_as_a_protocol_mapping_folded_behind_its_count(
        staff: Client, prefill_exchange: str) -> None:
    page = staff.get(f"/admin/inspector/exchange/{quote(prefill_exchange)}/change/").content.decode()
    response = page.split('id="response-diff"', 1)[1].split('<div class="xc-section', 1)[0]
    rules, mapping = response.split('class="diff-mapping"', 1)
    assert "finish_reason" not in rules  # no rewrite rule made it: folded, not among the rules
    assert "<summary>Protocol mapping: " in mapping
    row = mapping.split('data-path="choices[0].finish_reason → stop_reason"', 1)[1].split("</tr>", 1)[0]
    assert "<code>stop</code> → <code>end_turn</code>" in row
    assert 'data-path="choices[0].message.role → role"' in mapping
    assert "choices removed" not in mapping and 'data-path="choices"' not in mapping
