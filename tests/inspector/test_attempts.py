"""Every upstream attempt of an exchange, as the inspector keeps and shows it: the recorder stores
them (redacted, capped) with ``failed_over`` when there was more than one; the list filters on it
and marks such a row with the backends tried; the exchange page tables them (escaped), and shows
nothing new for a route's only target answering at once or for a row written before attempts."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.utils import timezone

from inspector.models import Exchange
from inspector.recorder import ATTEMPT_ERROR_MAX, ATTEMPTS_MAX, ExchangeRecord, attempts_capped, recorder

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/inspector/exchange/"
# A backend's key, long enough to be redacted (translation.masking.SECRET_MIN_LEN).
BACKEND_SECRET = "sk-backend-secret-0123456789WXYZ"


def attempt(backend: str, *, reason: str, outcome: str, status: int | None, error: str = "", error_type: str = "",
            started_ms: float = 0.0, ended_ms: float = 0.0, group: str = "primary", weight: int = 1) -> dict[str, Any]:
    return {"backend": backend, "upstream_model": f"{backend}-model", "group": group, "weight": weight,
            "reason": reason, "outcome": outcome, "status": status, "error": error, "error_type": error_type,
            "started_ms": started_ms, "ended_ms": ended_ms}


THREE = [
    attempt("vllm-east", reason="affinity", outcome="failed", status=503, error_type="overloaded_error",
            error="<script>alert('east')</script> upstream overloaded", started_ms=1.0, ended_ms=40.0),
    attempt("vllm-west", reason="least in-flight", outcome="gave up", status=None, error_type="timeout",
            error=f"connect timeout (key {BACKEND_SECRET})", started_ms=41.0, ended_ms=1041.0),
    attempt("vllm-spare", reason="fallback", outcome="ok", status=200, group="spare", weight=2,
            started_ms=1042.0, ended_ms=1300.0),
]


def record_write(id: str, attempts: list[dict[str, Any]], **fields: Any) -> Exchange:
    """An exchange through the real writer path (``as_model_kwargs``, pieces, ``bulk_create``), as
    the gateway submits it once the client has its answer."""
    last = attempts[-1] if attempts else {}
    record = ExchangeRecord(id=id, key_name="tester", client_model="claude-sonnet-4-5",
                            backend_name=last.get("backend", "mock"), upstream_model=last.get("upstream_model", "m"),
                            status=200, secrets=[BACKEND_SECRET], **fields)
    record.attempts = [dict(a) for a in attempts]
    record.client_request = {"method": "POST", "path": "/v1/messages", "headers": {},
                             "body_raw": json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [
                                 {"role": "user", "content": "Which backend answers?"}]}).encode()}
    record.upstream_request = {"url": "http://backend/v1/chat/completions", "body": {"model": "m"}}
    record.client_response = {"status": 200, "body": {"id": f"msg_{id}", "type": "message", "role": "assistant",
                                                      "content": [{"type": "text", "text": "The spare one."}]}}
    record.timings = {"upstream_connected": 1.0, "upstream_done": 1300.0, "finished": 1302.0}
    recorder.submit(record)
    assert recorder.flush(10)
    return Exchange.objects.get(pk=id)


def listed(page: str) -> set[str]:
    return {e.id for e in Exchange.objects.only("id") if f"{LIST}{quote(e.id)}/change/" in page}


def row_of(page: str, request_id: str) -> str:
    link = f"{LIST}{quote(request_id)}/change/"
    assert link in page, f"{request_id} is not listed"
    start = page.rindex("<tr", 0, page.index(link))
    return page[start:page.index("</tr>", start)]


@pytest.fixture
def exchanges(staff: Client) -> dict[str, Exchange]:
    """One exchange that failed over twice, one its only target answered, one written before
    attempts were recorded (its column as the migration leaves it)."""
    only = attempt("mock", reason="only target", outcome="ok", status=200, started_ms=1.0, ended_ms=30.0)
    return {"three": record_write("req_three", THREE), "one": record_write("req_one", [only]),
            "old": Exchange.objects.create(id="req_old", created_at=timezone.now(), client_model="claude-sonnet-4-5",
                                           backend_name="mock", status=200)}


def test_the_writer_stores_every_attempt_and_marks_more_than_one_as_failed_over(
        exchanges: dict[str, Exchange]) -> None:
    three, one, old = exchanges["three"], exchanges["one"], exchanges["old"]
    assert three.failed_over and not one.failed_over and not old.failed_over
    assert [a["backend"] for a in three.attempts] == ["vllm-east", "vllm-west", "vllm-spare"]
    assert three.attempts[2] == THREE[2]
    assert three.attempts[0]["status"] == 503 and three.attempts[1]["status"] is None
    assert len(one.attempts) == 1 and one.attempts[0]["reason"] == "only target"
    assert old.attempts == []


def test_a_secret_a_backend_echoed_in_an_attempt_error_is_masked(exchanges: dict[str, Exchange]) -> None:
    three = exchanges["three"]
    assert three.attempts[1]["error"] == "connect timeout (key ***WXYZ)"
    stored = json.dumps([three.attempts, three.search_text, three.error_message])
    assert BACKEND_SECRET not in stored


def test_the_failed_over_filter_keeps_either_side(staff: Client, exchanges: dict[str, Exchange]) -> None:
    page = staff.get(LIST).content.decode()
    assert "?failed_over=yes" in page and "?failed_over=no" in page
    assert listed(staff.get(LIST, {"failed_over": "yes"}).content.decode()) == {"req_three"}
    assert listed(staff.get(LIST, {"failed_over": "no"}).content.decode()) == {"req_one", "req_old"}


def test_a_row_that_failed_over_is_marked_with_the_backends_it_tried(
        staff: Client, exchanges: dict[str, Exchange]) -> None:
    page = staff.get(LIST).content.decode()
    row = row_of(page, "req_three")
    assert 'class="failover nowrap"' in row and ">↻3</span>" in row
    assert ('title="failed over, 3 attempts: vllm-east failed 503 → vllm-west gave up → vllm-spare ok 200"'
            in row)
    for other in ("req_one", "req_old"):
        assert "↻" not in row_of(page, other)


def test_search_finds_an_exchange_by_a_backend_it_tried_before_failing_over(
        staff: Client, exchanges: dict[str, Exchange]) -> None:
    assert listed(staff.get(LIST, {"q": "vllm-west"}).content.decode()) == {"req_three"}
    assert listed(staff.get(LIST, {"q": "vllm-spare"}).content.decode()) == {"req_three"}  # the last: backend_name


def test_the_exchange_page_tables_every_attempt_with_its_error_escaped(
        staff: Client, exchanges: dict[str, Exchange]) -> None:
    response = staff.get(f"{LIST}{quote('req_three')}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    section = page[page.index('id="attempts"'):]
    section = section[:section.index("</table>")]
    for text in ("vllm-east", "vllm-west", "vllm-spare", "vllm-spare-model", "affinity", "least in-flight",
                 "fallback", "gave up", "503", "overloaded_error", "spare / 2", "41.0 → 1041.0 ms",
                 "connect timeout (key ***WXYZ)"):
        assert text in section, text
    assert "&lt;script&gt;alert(&#x27;east&#x27;)&lt;/script&gt; upstream overloaded" in section
    assert "<script>alert" not in page
    assert section.index("vllm-east") < section.index("vllm-west") < section.index("vllm-spare")
    assert 'id="failed-over"' in page  # the summary says it, and links to the table
    assert 'id="timeline-attempts"' in page and 'title="vllm-west gave up, 41.0 → 1041.0 ms"' in page
    # The silence starts when the first backend answered its 503, not when the request went out.
    assert "with nothing from the backend, 40.0 → 1300.0 ms" in page


def test_the_routes_only_target_answering_adds_nothing_and_an_old_row_renders(
        staff: Client, exchanges: dict[str, Exchange]) -> None:
    for id in ("req_one", "req_old"):
        response = staff.get(f"{LIST}{quote(id)}/change/")
        assert response.status_code == 200, id
        page = response.content.decode()
        assert 'id="attempts"' not in page and 'id="failed-over"' not in page and "timeline-attempts" not in page


def test_a_single_attempt_chosen_for_another_reason_is_shown(staff: Client) -> None:
    record_write("req_affine", [attempt("vllm-east", reason="affinity", outcome="ok", status=200)])
    page = staff.get(f"{LIST}{quote('req_affine')}/change/").content.decode()
    assert 'id="attempts"' in page and "affinity" in page and 'id="failed-over"' not in page
    assert "↻" not in row_of(staff.get(LIST).content.decode(), "req_affine")


def test_the_json_download_holds_the_attempts(staff: Client, exchanges: dict[str, Exchange]) -> None:
    data = json.loads(staff.get(f"{LIST}{quote('req_three')}/json/").content)
    assert data["failed_over"] is True and [a["backend"] for a in data["attempts"]] == [
        "vllm-east", "vllm-west", "vllm-spare"]


def test_attempts_beyond_the_cap_and_long_errors_are_cut() -> None:
    many = [attempt(f"b{n}", reason="fallback", outcome="failed", status=500, error="x" * (ATTEMPT_ERROR_MAX + 10))
            for n in range(ATTEMPTS_MAX + 5)]
    kept = attempts_capped(many)
    assert len(kept) == ATTEMPTS_MAX and kept[-1]["backend"] == f"b{ATTEMPTS_MAX - 1}"
    assert kept[0]["error"] == "x" * ATTEMPT_ERROR_MAX + f"… ({ATTEMPT_ERROR_MAX + 10} chars)"
    assert many[0]["error"] == "x" * (ATTEMPT_ERROR_MAX + 10)  # the record's own list is left as it was


def test_usage_counts_the_exchanges_that_failed_over_per_backend_that_answered(
        exchanges: dict[str, Exchange]) -> None:
    from inspector.usage import usage_totals

    now = timezone.now()
    totals = {t.group: t for t in usage_totals(since=now - timedelta(hours=1), until=now + timedelta(minutes=1),
                                                 group="backend")}
    assert totals["vllm-spare"].failovers == 1 and totals["vllm-spare"].requests == 1
    assert totals["mock"].failovers == 0 and totals["mock"].requests == 2


def test_the_usage_page_shows_the_failed_over_count(staff: Client, exchanges: dict[str, Exchange]) -> None:
    page = staff.get(f"{LIST}usage/", {"group": "backend"}).content.decode()
    table = page[page.index('id="usage-table"'):]
    row = table[table.index(">vllm-spare<"):]
    row = row[:row.index("</tr>")]
    assert "failed over</th>" in table and '<td class="num">1</td><td class="num">0</td><td class="num">0.0%</td>' \
        '<td class="num">1</td>' in row
