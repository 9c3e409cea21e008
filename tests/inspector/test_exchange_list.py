"""The exchange list: its columns (one line of time, the endpoint, the key or the key a refused
client presented, error rows, the stream verdict, the session), its filters and its search box,
on exchanges recorded from real requests through the gateway where the recorder decides the
columns, and on stored rows where a test needs a value no request gives quickly (another day,
a slow first token)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.contrib.admin.utils import quote
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inspector import admin_list
from inspector.models import Exchange
from inspector.recorder import recorder
from inspector.rows import endpoint_label, status_label, time_label, verdict_of
from tests.claude_code_session import claude_code_session
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, sse_chunks, sse_response

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/inspector/exchange/"


def send(body: dict[str, Any], *, key: str = KEY, headers: dict[str, str] | None = None) -> tuple[str, Any]:
    """One request through the gateway: its request id and JSON answer, once the exchange is stored."""
    response = Client().post("/v1/messages", json.dumps(body), content_type="application/json",
                             headers={"x-api-key": key, **(headers or {})})
    assert recorder.flush(10)
    return str(response["request-id"]), json.loads(response.content)


async def _drain(parts: Any) -> bytes:
    return b"".join([part async for part in parts])


def row_of(page: str, request_id: str) -> str:
    """The HTML of the list row that links to ``request_id``."""
    link = f"{LIST}{quote(request_id)}/change/"
    assert link in page, f"{request_id} is not listed"
    start = page.rindex("<tr", 0, page.index(link))
    return page[start:page.index("</tr>", start)]


def listed(page: str) -> set[str]:
    return {e.id for e in Exchange.objects.only("id") if f"{LIST}{quote(e.id)}/change/" in page}


def stored(id: str, **columns: Any) -> Exchange:
    return Exchange.objects.create(id=id, created_at=columns.pop("created_at", timezone.now()), **columns)


@pytest.fixture
def answered(upstream: Upstream) -> tuple[str, str]:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("Lisbon."))
    request_id, message = send({"model": "test-model", "max_tokens": 50,
                                "messages": [{"role": "user", "content": "Capital of Portugal, one word?"}]})
    return request_id, message["id"]


def test_the_list_reads_only_scalar_columns_in_a_few_queries(staff: Client, answered: tuple[str, str]) -> None:
    with CaptureQueriesContext(connection) as queries:
        page = staff.get(LIST).content.decode()
    assert row_of(page, answered[0])
    exchange_queries = [q["sql"] for q in queries.captured_queries if "inspector_exchange" in q["sql"]]
    assert len(queries.captured_queries) <= 12
    for column in ("client_request", "upstream_request", "upstream_response", "client_response", "search_text"):
        assert not any(f'"{column}"' in sql for sql in exchange_queries), f"the list read {column}"
    assert not any("COUNT(*)" in sql and "LIMIT" not in sql for sql in exchange_queries)
    # The other inspector pages are one click away.
    assert 'href="/admin/inspector/exchange/sessions/" id="link-sessions"' in page
    assert 'href="/admin/inspector/exchange/usage/" id="link-usage"' in page


def test_the_search_box_finds_an_exchange_by_its_message_id_and_by_a_word(
        staff: Client, answered: tuple[str, str]) -> None:
    request_id, message_id = answered
    assert message_id.startswith("msg_")
    for text in (message_id, "Portugal", request_id[4:14]):
        assert listed(staff.get(LIST, {"q": text}).content.decode()) == {request_id}, text
    assert listed(staff.get(LIST, {"q": "nothing-like-this"}).content.decode()) == set()


def test_a_refused_request_shows_the_key_it_presented_and_is_an_error_row(
        staff: Client, answered: tuple[str, str]) -> None:
    refused, _ = send({"model": "test-model", "max_tokens": 5, "messages": []}, key="sk-ant-api03-not-ours-0000WXYZ")
    row = row_of(staff.get(LIST).content.decode(), refused)
    assert "WXYZ" in row and "not-ours" not in row  # the hint, masked
    assert 'class="status-bad"' in row and "401 authentication_error" in row
    assert 'class="status-ok"' in row_of(staff.get(LIST).content.decode(), answered[0])


def test_the_key_filter_keeps_one_keys_exchanges_and_no_key_the_refused_ones(
        staff: Client, answered: tuple[str, str]) -> None:
    refused, _ = send({"model": "test-model", "max_tokens": 5, "messages": []}, key="sk-wrong")
    page = staff.get(LIST).content.decode()
    assert "?key_name=tester" in page and "?key_name=-" in page  # the sidebar offers both
    assert listed(staff.get(LIST, {"key_name": "tester"}).content.decode()) == {answered[0]}
    assert listed(staff.get(LIST, {"key_name": "-"}).content.decode()) == {refused}


def test_the_filter_choices_come_from_the_latest_rows_only(staff: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    now = timezone.now()
    stored("req_old", key_name="retired-key", created_at=now - timedelta(days=30))
    stored("req_new1", key_name="key-b", created_at=now - timedelta(minutes=2))
    stored("req_new2", key_name="key-c", created_at=now - timedelta(minutes=1))
    monkeypatch.setattr(admin_list, "_RECENT_ROWS", 2)
    page = staff.get(LIST).content.decode()
    assert "?key_name=key-b" in page and "?key_name=key-c" in page and "?key_name=retired-key" not in page
    chosen = staff.get(LIST, {"key_name": "retired-key"}).content.decode()
    assert listed(chosen) == {"req_old"} and "?key_name=retired-key" in chosen  # still shown once chosen


def test_a_claude_code_turn_links_to_its_session_and_the_session_filter_shows_a_removable_chip(
        staff: Client, upstream: Upstream, answered: tuple[str, str]) -> None:
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "Hi"}]))
    turn = claude_code_session(1)[0]
    session = turn.headers["x-claude-code-session-id"]
    response = Client().post("/v1/messages", turn.raw(), content_type="application/json",
                             headers={**turn.headers, "x-api-key": KEY})
    async_to_sync(_drain)(response.streaming_content)  # type: ignore[attr-defined]
    assert recorder.flush(10)
    request_id = str(response["request-id"])
    row = row_of(staff.get(LIST).content.decode(), request_id)
    assert f">{session[:8]}</a>" in row and (f"/sessions/{session}/" in row or f"session_id={session}" in row)
    filtered = staff.get(LIST, {"session_id": session}).content.decode()
    assert listed(filtered) == {request_id}
    assert 'id="session-chip"' in filtered and 'title="Show every session"' in filtered
    assert 'id="session-chip"' not in staff.get(LIST).content.decode()


def test_threshold_stop_reason_tool_and_endpoint_filters_keep_what_they_name(staff: Client) -> None:
    stored("req_fast", ttft_ms=120.0, overhead_ms=1.5, stop_reason="end_turn", endpoint="messages")
    stored("req_slow", ttft_ms=2500.0, overhead_ms=40.0, stop_reason="tool_use", has_tool_calls=True)
    stored("req_count", endpoint="count_tokens", path="/v1/messages/count_tokens")
    stored("req_nope", endpoint="nope", method="GET", path="/v1/nope", status=404, error_type="not_found_error")
    cases = {"ttft_over=500": {"req_slow"}, "ttft_over=100": {"req_fast", "req_slow"},
             "overhead_over=20": {"req_slow"}, "stop_reason=tool_use": {"req_slow"},
             "has_tool_calls=yes": {"req_slow"}, "endpoint=count_tokens": {"req_count"},
             "endpoint=other": {"req_nope"}, "endpoint=messages": {"req_fast", "req_slow"}}
    for query, expected in cases.items():
        assert listed(staff.get(f"{LIST}?{query}").content.decode()) == expected, query


def test_a_threshold_that_is_not_a_number_is_dropped_with_a_message(staff: Client) -> None:
    stored("req_any", ttft_ms=10.0)
    response = staff.get(LIST, {"ttft_over": "fast", "key_name": "-"}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "TTFT over: &#x27;fast&#x27; is not a number of milliseconds" in page
    assert response.redirect_chain[-1][0].endswith("?key_name=-")  # the other filters stay


def test_a_nul_in_a_filter_is_removed_with_a_message(staff: Client) -> None:
    stored("req_keyed", key_name="tester")
    response = staff.get(LIST, {"key_name": "tes\x00ter"}, follow=True)
    assert response.status_code == 200
    assert "The parameter key_name held a NUL character: it was removed." in response.content.decode()
    assert listed(response.content.decode()) == {"req_keyed"}


def test_the_error_filter_counts_a_200_whose_stream_ended_with_an_error(staff: Client) -> None:
    stored("req_ok", status=200, stream=True, valid=True)
    stored("req_midway", status=200, stream=True, valid=True, error_type="api_error")
    stored("req_500", status=500, error_type="api_error")
    page = staff.get(LIST).content.decode()
    assert "200 · ended with api_error" in row_of(page, "req_midway")
    assert 'title="well-formed, ended with an error event">✓ err<' in row_of(page, "req_midway")
    assert 'title="well-formed stream">✓<' in row_of(page, "req_ok")
    assert listed(staff.get(LIST, {"has_error": "yes"}).content.decode()) == {"req_midway", "req_500"}
    assert listed(staff.get(LIST, {"has_error": "no"}).content.decode()) == {"req_ok"}


def test_the_time_is_one_short_label_with_the_full_timestamp_in_its_title(staff: Client) -> None:
    now = timezone.now()
    stored("req_today", created_at=now)
    stored("req_before", created_at=now - timedelta(days=3))
    page = staff.get(LIST).content.decode()
    assert f">{timezone.localtime(now).strftime('%H:%M:%S')}</span>" in row_of(page, "req_today")
    before = timezone.localtime(now - timedelta(days=3))
    assert f">{before.strftime('%m-%d %H:%M')}</span>" in row_of(page, "req_before")
    assert f'title="{before.strftime("%Y-%m-%d %H:%M:%S")}' in row_of(page, "req_before")


def test_the_live_tail_starts_with_the_stored_rows_in_the_lists_words(staff: Client) -> None:
    stored("req_live_bad", status=500, error_type="api_error", key_hint="sk-…WXYZ")
    page = staff.get(f"{LIST}live/")
    assert page.status_code == 200
    rows = json.loads(page.content.decode().split('id="live-recent" type="application/json">', 1)[1]
                      .split("</script>", 1)[0])
    row = next(r for r in rows if r["id"] == "req_live_bad")
    assert (row["status_label"], row["is_error"], row["key_hint"], row["state"]) == \
        ("500 api_error", True, "sk-…WXYZ", "stored")


@pytest.mark.parametrize(("columns", "expected"), [
    ({"status": 200, "error_type": "", "disconnected": False}, ("200", False)),
    ({"status": 200, "error_type": "overloaded_error", "disconnected": False},
     ("200 · ended with overloaded_error", True)),
    ({"status": 499, "error_type": "", "disconnected": True}, ("499 client left", True)),
    ({"status": 404, "error_type": "not_found_error", "disconnected": False}, ("404 not_found_error", True)),
    ({"status": 0, "error_type": "", "disconnected": False}, ("…", False)),
])
def test_status_labels_mark_every_error(columns: dict[str, Any], expected: tuple[str, bool]) -> None:
    assert status_label(**columns) == expected


@pytest.mark.parametrize(("columns", "expected"), [
    ({"endpoint": "messages", "method": "POST", "path": "/v1/messages?beta=true"}, "messages"),
    ({"endpoint": "count_tokens", "method": "POST", "path": "/v1/messages/count_tokens"}, "count_tokens"),
    ({"endpoint": "messages/count_tokens", "method": "POST", "path": "/v1/messages/count_tokens"}, "count_tokens"),
    ({"endpoint": "models", "method": "GET", "path": "/v1/models"}, "GET models"),
    ({"endpoint": "nope", "method": "GET", "path": "/v1/nope?x=1"}, "GET /v1/nope"),
])
def test_endpoint_labels_name_the_known_endpoints_and_show_other_paths(columns: dict[str, str], expected: str) -> None:
    assert endpoint_label(**columns) == expected


def test_verdicts_tell_a_stream_that_ended_with_an_error_from_a_valid_one() -> None:
    assert verdict_of(valid=True, error_type="") == "valid"
    assert verdict_of(valid=True, error_type="api_error") == "ended-with-error"
    assert verdict_of(valid=False, error_type="") == "invalid"
    assert verdict_of(valid=None, error_type="api_error") == "none"


def test_time_labels_shorten_by_day() -> None:
    now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    assert time_label(now.replace(hour=2, minute=35, second=10), now=now)[0] == "02:35:10"
    assert time_label(now - timedelta(days=1), now=now)[0] == (now - timedelta(days=1)).strftime("%m-%d %H:%M")
