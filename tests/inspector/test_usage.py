"""Usage for a team: the aggregation (inspector/usage.py) on exchanges created with chosen times,
keys, models, tokens and statuses, and the usage pages and CSV export as a staff user sees them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inspector.models import Exchange
from inspector.usage import (
    UsageRow,
    percentile,
    usage_buckets,
    usage_csv_lines,
    usage_overall,
    usage_query_parse,
    usage_rows,
    usage_totals,
)
from inspector.usage_chart import usage_chart

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
_seq = iter(range(1_000_000))


def make(at: datetime, *, key: str = "alice", model: str = "claude-sonnet-4-5", backend: str = "vllm",
         status: int = 200, error_type: str = "", tokens: tuple[int, int, int, int] = (0, 0, 0, 0),
         ttft: float | None = None, endpoint: str = "messages", session: str = "") -> Exchange:
    i, o, cr, cc = tokens
    return Exchange(id=f"req_usage_{next(_seq)}", created_at=at, key_name=key, client_model=model,
                    backend_name=backend, status=status, error_type=error_type, input_tokens=i, output_tokens=o,
                    cache_read_tokens=cr, cache_creation_tokens=cc, ttft_ms=ttft, endpoint=endpoint,
                    session_id=session)


@pytest.fixture
def hour_boundary() -> list[Exchange]:
    """Two keys either side of 11:00 UTC, an error status, a stream that failed after its 200, a
    row without token counts (a rejected request), and rows outside the range."""
    rows = [
        make(T0 + timedelta(minutes=5), tokens=(100, 10, 1000, 50), ttft=200.0),
        make(T0 + timedelta(minutes=59, seconds=59, microseconds=999_999), tokens=(200, 20, 0, 0), ttft=400.0),
        make(T0 + timedelta(hours=1), tokens=(1, 2, 3, 4), ttft=100.0),
        make(T0 + timedelta(minutes=30), key="bob", status=529, error_type="overloaded_error"),
        make(T0 + timedelta(minutes=31), key="bob", status=200, error_type="api_error", tokens=(7, 0, 0, 0)),
        Exchange(id="req_usage_rejected", created_at=T0 + timedelta(minutes=32), key_name="", status=401,
                 error_type="authentication_error"),
        make(T0 - timedelta(microseconds=1), tokens=(9999, 0, 0, 0)),
        make(T0 + timedelta(hours=2), tokens=(9999, 0, 0, 0)),
    ]
    Exchange.objects.bulk_create(rows)
    return rows


def _by(rows: list[UsageRow]) -> dict[tuple[datetime, str], UsageRow]:
    return {(row.bucket, row.group): row for row in rows}


def test_hour_buckets_sum_tokens_and_count_errors_per_key_and_split_at_the_hour(hour_boundary: list[Exchange]) -> None:
    rows = _by(usage_rows(since=T0, until=T0 + timedelta(hours=2), bucket="hour", group="key"))
    assert set(rows) == {(T0, "alice"), (T0, "bob"), (T0, ""), (T0 + timedelta(hours=1), "alice")}
    first = rows[(T0, "alice")]
    assert (first.requests, first.errors, first.input_tokens, first.output_tokens, first.cache_read_tokens,
            first.cache_creation_tokens, first.ttft_avg_ms) == (2, 0, 300, 30, 1000, 50, 300.0)
    assert first.tokens == 1380
    second = rows[(T0 + timedelta(hours=1), "alice")]
    assert (second.requests, second.input_tokens, second.cache_creation_tokens) == (1, 1, 4)
    bob = rows[(T0, "bob")]
    assert (bob.requests, bob.errors, bob.input_tokens, bob.output_tokens, bob.ttft_avg_ms) == (2, 2, 7, 0, None)
    assert (rows[(T0, "")].requests, rows[(T0, "")].errors, rows[(T0, "")].tokens) == (1, 1, 0)


def test_day_buckets_group_by_model_and_backend(db: None) -> None:
    Exchange.objects.bulk_create([
        make(T0, model="claude-sonnet-4-5", backend="vllm", tokens=(10, 1, 0, 0)),
        make(T0 + timedelta(hours=13, minutes=59), model="claude-haiku-4-5", backend="vllm", tokens=(20, 2, 0, 0)),
        make(T0 + timedelta(days=1), model="claude-haiku-4-5", backend="openai", tokens=(40, 4, 0, 0)),
    ])
    day = datetime(2026, 12, 3, tzinfo=UTC)
    since, until = day, day + timedelta(days=2)
    models = {(r.bucket, r.group): r.input_tokens for r in usage_rows(since=since, until=until, bucket="day",
                                                                         group="model")}
    assert models == {(day, "claude-haiku-4-5"): 20, (day, "claude-sonnet-4-5"): 10,
                      (day + timedelta(days=1), "claude-haiku-4-5"): 40}
    backends = {(r.bucket, r.group): r.requests for r in usage_rows(since=since, until=until, bucket="day",
                                                                       group="backend")}
    assert backends == {(day, "vllm"): 2, (day + timedelta(days=1), "openai"): 1}


@pytest.fixture
def paris(settings: Any) -> Iterator[ZoneInfo]:
    settings.TIME_ZONE = "Europe/Paris"
    zone = ZoneInfo("Europe/Paris")
    with timezone.override(zone):
        yield zone


def test_buckets_are_hours_and_days_of_the_admins_time_zone(paris: ZoneInfo) -> None:
    # 23:30 UTC on 3 December is 00:30 on the 4th in Paris: the 4th's day and the 00:00 hour.
    late = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
    Exchange.objects.bulk_create([make(late, tokens=(5, 0, 0, 0)), make(late - timedelta(hours=1), tokens=(3, 0, 0, 0))])
    days = usage_rows(since=late - timedelta(days=1), until=late + timedelta(hours=1), bucket="day", group="key")
    assert [(r.bucket, r.input_tokens) for r in days] == [(datetime(2026, 12, 3, tzinfo=paris), 3),
                                                           (datetime(2026, 12, 4, tzinfo=paris), 5)]
    assert days[1].bucket.utcoffset() == timedelta(hours=1)
    hours = usage_rows(since=late - timedelta(hours=2), until=late + timedelta(hours=1), bucket="hour", group="key")
    assert [r.bucket for r in hours] == [datetime(2026, 12, 3, 23, tzinfo=paris), datetime(2026, 12, 4, 0, tzinfo=paris)]


def test_every_bucket_of_the_range_is_listed_and_days_follow_a_daylight_saving_change(paris: ZoneInfo) -> None:
    # Paris leaves summer time on 25 October 2026: that day lasts 25 hours.
    days = usage_buckets(since=datetime(2026, 10, 24, 12, tzinfo=UTC), until=datetime(2026, 10, 26, 23, tzinfo=UTC),
                         bucket="day")  # midnight of the 27th in Paris
    assert days == [datetime(2026, 10, d, tzinfo=paris) for d in (24, 25, 26)]
    assert days[2].astimezone(UTC) - days[1].astimezone(UTC) == timedelta(hours=25)
    hours = usage_buckets(since=datetime(2026, 12, 3, 10, 20, tzinfo=UTC),
                          until=datetime(2026, 12, 3, 13, tzinfo=UTC), bucket="hour")
    assert hours == [datetime(2026, 12, 3, h, tzinfo=paris) for h in (11, 12, 13)]


def test_totals_per_group_have_the_ttft_average_and_percentiles(db: None) -> None:
    Exchange.objects.bulk_create([make(T0 + timedelta(minutes=m), ttft=float(ms), tokens=(1, 1, 0, 0))
                                  for m, ms in enumerate([100, 200, 300, 400, 1000])]
                                 + [make(T0, key="bob", tokens=(50, 0, 0, 0)),
                                    make(T0, key="bob", status=500, error_type="api_error")])
    totals = usage_totals(since=T0, until=T0 + timedelta(hours=1), group="key")
    assert [t.group for t in totals] == ["bob", "alice"]  # the most tokens first
    bob, alice = totals
    assert (alice.requests, alice.errors, alice.ttft_avg_ms, alice.ttft_p50_ms) == (5, 0, 400.0, 300.0)
    assert alice.ttft_p95_ms == pytest.approx(880.0)  # percentile_cont: 400 + 0.8 * (1000 - 400)
    assert (bob.requests, bob.errors, bob.error_rate, bob.ttft_p50_ms) == (2, 1, 0.5, None)


def test_the_overall_row_is_exact_over_requests_with_and_without_a_ttft(db: None) -> None:
    Exchange.objects.bulk_create([make(T0, ttft=100.0, tokens=(1, 0, 0, 0)), make(T0, ttft=300.0),
                                  make(T0, key="bob", ttft=800.0), make(T0, key="bob", status=401),
                                  make(T0, key="carol")])
    overall = usage_overall(since=T0, until=T0 + timedelta(hours=1))
    assert (overall.requests, overall.errors, overall.input_tokens) == (5, 1, 1)
    assert (overall.ttft_avg_ms, overall.ttft_p50_ms, overall.ttft_p95_ms) == (400.0, 300.0, pytest.approx(750.0))
    assert usage_overall(since=T0, until=T0 + timedelta(hours=1), key_name="carol").ttft_p50_ms is None


def test_percentile_interpolates_between_ranks_as_percentile_cont_does() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5


def test_the_endpoint_filter_separates_count_tokens_from_messages(db: None) -> None:
    Exchange.objects.bulk_create([make(T0, tokens=(10, 1, 0, 0)), make(T0, endpoint="count_tokens", tokens=(99, 0, 0, 0))])
    window = {"since": T0, "until": T0 + timedelta(hours=1), "group": "key"}
    assert [t.input_tokens for t in usage_totals(**window, endpoint="messages")] == [10]  # type: ignore[arg-type]
    assert [t.input_tokens for t in usage_totals(**window, endpoint="count_tokens")] == [99]  # type: ignore[arg-type]
    assert [t.requests for t in usage_totals(**window)] == [2]  # type: ignore[arg-type]


def test_the_csv_has_a_header_and_one_plain_line_per_bucket_and_group(hour_boundary: list[Exchange]) -> None:
    rows = usage_rows(since=T0, until=T0 + timedelta(hours=2), bucket="hour", group="key")
    lines = list(usage_csv_lines(rows, group="key"))
    assert lines[0] == ["bucket_start", "key", "requests", "errors", "input_tokens", "output_tokens",
                        "cache_read_tokens", "cache_creation_tokens", "ttft_avg_ms"]
    assert lines[1:] == [
        ["2026-12-03T10:00:00+00:00", "", "1", "1", "0", "0", "0", "0", ""],
        ["2026-12-03T10:00:00+00:00", "alice", "2", "0", "300", "30", "1000", "50", "300.0"],
        ["2026-12-03T10:00:00+00:00", "bob", "2", "2", "7", "0", "0", "0", ""],
        ["2026-12-03T11:00:00+00:00", "alice", "1", "0", "1", "2", "3", "4", "100.0"],
    ]


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_quoted() -> None:
    row = UsageRow(bucket=T0, group="=HYPERLINK(\"x\")", requests=1, errors=0, input_tokens=0, output_tokens=0,
                   cache_read_tokens=0, cache_creation_tokens=0, ttft_avg_ms=None)
    assert list(usage_csv_lines([row], group="model"))[1][1] == "'=HYPERLINK(\"x\")"


NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("params", "since", "bucket", "noted"), [
    ({}, NOW - timedelta(days=1), "hour", False),
    ({"range": "7d"}, NOW - timedelta(days=7), "day", False),
    ({"range": "30d", "bucket": "hour"}, NOW - timedelta(days=7), "hour", True),  # hours: at most 7 days
    ({"range": "1y"}, NOW - timedelta(days=1), "hour", True),
    ({"bucket": "minute", "group": "user"}, NOW - timedelta(days=1), "hour", True),
    ({"since": "2026-12-01"}, datetime(2026, 12, 1, tzinfo=UTC), "day", False),
    ({"since": "2026-12-04T09:30"}, datetime(2026, 12, 4, 9, 30, tzinfo=UTC), "hour", False),
    ({"since": "yesterday"}, NOW - timedelta(days=1), "hour", True),
    ({"since": "2026-13-45"}, NOW - timedelta(days=1), "hour", True),
    ({"since": "2026-12-05"}, NOW - timedelta(days=1), "hour", True),  # after until
])
def test_query_parameters_fall_back_to_the_defaults_with_a_note(params: dict[str, str], since: datetime,
                                                                 bucket: str, noted: bool) -> None:
    query, notes = usage_query_parse(params, now=NOW)
    assert (query.since, query.until, query.bucket, bool(notes)) == (since, NOW, bucket, noted)


def test_a_custom_range_ending_on_a_date_includes_that_day() -> None:
    query, notes = usage_query_parse({"since": "2026-11-01", "until": "2026-11-30"}, now=NOW)
    assert (query.since, query.until, query.bucket, notes) == (
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), "day", [])
    again, _ = usage_query_parse(query.params(), now=NOW)
    assert (again.since, again.until) == (query.since, query.until)


# The pages, through the admin as a staff user.

@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def recent() -> list[Exchange]:
    """Two keys in the last hours, one with an error and a session."""
    now = timezone.now()
    rows = [make(now - timedelta(minutes=10), key="alice", tokens=(1200, 300, 5000, 0), ttft=250.0, session="sess-a"),
            make(now - timedelta(hours=3), key="alice", model="claude-haiku-4-5", tokens=(100, 50, 0, 0), ttft=90.0),
            make(now - timedelta(minutes=20), key="bob/ci", tokens=(700, 70, 0, 0), ttft=500.0),
            make(now - timedelta(minutes=5), key="bob/ci", status=529, error_type="overloaded_error")]
    rows[3].error_message = "backend overloaded"
    Exchange.objects.bulk_create(rows)
    return rows


def test_the_usage_page_draws_bars_per_key_and_tabulates_each_key(staff: Client, recent: list[Exchange]) -> None:
    page = staff.get("/admin/inspector/exchange/usage/").content.decode()
    assert page.count('class="usage-bar"') == 3  # alice in two hours, bob/ci in one (the error had no tokens)
    legend = page.split('id="usage-legend"', 1)[1].split("</ul>", 1)[0]
    assert "alice" in legend and "bob/ci" in legend
    assert "/admin/inspector/exchange/usage/key/alice/" in page
    assert "/admin/inspector/exchange/usage/key/bob/ci/" in page
    table = page.split('id="usage-table"', 1)[1].split("</table>", 1)[0]
    bob = table.split("bob/ci", 1)[1].split("</tr>", 1)[0]
    assert "50.0%" in bob and "700" in bob  # one error out of two; 700 tokens in
    assert "6,650" in table.split("alice", 1)[1].split("</tr>", 1)[0]  # all of alice's tokens: 1,300 + 350 + 5,000
    assert "Download CSV" in page


def test_the_usage_pages_never_read_a_body_column(staff: Client, recent: list[Exchange]) -> None:
    bodies = ("client_request", "upstream_request", "upstream_response", "client_response", "bodies")
    for url in ("/admin/inspector/exchange/usage/?group=model", "/admin/inspector/exchange/usage/csv/",
                "/admin/inspector/exchange/usage/key/alice/"):
        with CaptureQueriesContext(connection) as queries:
            assert staff.get(url).status_code == 200
        read = [q["sql"] for q in queries.captured_queries if "inspector_exchange" in q["sql"]]
        assert read and not [sql for sql in read if any(f'"{name}"' in sql for name in bodies)], url


def test_an_empty_range_says_so(staff: Client) -> None:
    page = staff.get("/admin/inspector/exchange/usage/?range=7d").content.decode()
    assert "No exchanges in this range" in page and 'class="usage-bar"' not in page


@pytest.mark.parametrize("query", ["range=forever", "bucket=week&group=color", "since=not-a-date",
                                   "since=2026-12-01&until=2026-11-01", "since=99999-01-01", "endpoint=%00",
                                   "metric=%F0%9F%92%A5", "until=9999-12-31", "since=0001-01-01T00:00",
                                   "since=2026-12-01T25:00", "range=custom"])
def test_bad_parameters_show_the_defaults_with_a_message_never_a_500(staff: Client, recent: list[Exchange],
                                                                      query: str) -> None:
    response = staff.get(f"/admin/inspector/exchange/usage/?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="usage-note' in page and 'class="usage-bar"' in page


def test_the_csv_export_keeps_the_filters_and_is_an_attachment(staff: Client, recent: list[Exchange]) -> None:
    response = staff.get("/admin/inspector/exchange/usage/csv/?range=24h&bucket=day&group=model")
    assert response["content-type"] == "text/csv; charset=utf-8"
    assert response["content-disposition"].startswith("attachment; filename=")
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
    assert lines[0][:3] == ["bucket_start", "model", "requests"]
    by_model: dict[str, int] = {}
    for line in lines[1:]:
        by_model[line[1]] = by_model.get(line[1], 0) + int(line[4])
    assert by_model == {"claude-sonnet-4-5": 1900, "claude-haiku-4-5": 100}


def test_the_key_page_shows_totals_models_errors_and_sessions(staff: Client, recent: list[Exchange]) -> None:
    page = staff.get("/admin/inspector/exchange/usage/key/bob/ci/").content.decode()
    assert "bob/ci" in page and 'class="usage-bar"' in page
    errors = page.split('id="key-errors"', 1)[1].split("</table>", 1)[0]
    assert "backend overloaded" in errors and f"/admin/inspector/exchange/{quote(recent[3].id)}/change/" in errors
    alice = staff.get("/admin/inspector/exchange/usage/key/alice/").content.decode()
    models = alice.split('id="key-models"', 1)[1].split("</table>", 1)[0]
    assert "claude-sonnet-4-5" in models and "claude-haiku-4-5" in models
    assert "sess-a" in alice.split('id="key-sessions"', 1)[1]


def test_a_key_name_with_a_nul_character_finds_nothing_instead_of_failing(staff: Client) -> None:
    response = staff.get("/admin/inspector/exchange/usage/key/a%00b/")
    assert response.status_code == 200 and "No exchanges in this range" in response.content.decode()


def test_a_key_without_exchanges_in_the_range_says_so(staff: Client) -> None:
    response = staff.get("/admin/inspector/exchange/usage/key/nobody/?range=forever")
    assert response.status_code == 200
    page = response.content.decode()
    assert "No exchanges in this range" in page and 'class="usage-note' in page


def test_the_usage_pages_need_a_staff_login(recent: list[Exchange]) -> None:
    for url in ("/admin/inspector/exchange/usage/", "/admin/inspector/exchange/usage/csv/",
                "/admin/inspector/exchange/usage/key/alice/"):
        assert Client().get(url).status_code == 302


def test_dates_with_a_preset_range_are_not_ignored_silently() -> None:
    query, notes = usage_query_parse({"range": "7d", "since": "2026-12-01"}, now=NOW)
    assert query.since == NOW - timedelta(days=7) and "since … until" in notes[0]


# The chart's geometry.

def _row(at: datetime, group: str, tokens: int, requests: int = 1) -> UsageRow:
    return UsageRow(bucket=at, group=group, requests=requests, errors=0, input_tokens=tokens, output_tokens=0,
                    cache_read_tokens=0, cache_creation_tokens=0, ttft_avg_ms=None)


def test_the_chart_stacks_the_top_groups_and_adds_the_rest_up_as_other() -> None:
    hours = [T0 + timedelta(hours=h) for h in range(4)]
    rows = [_row(hours[0], "alice", 600), _row(hours[0], "bob", 200), _row(hours[0], "carol", 100),
            _row(hours[0], "dave", 50), _row(hours[2], "alice", 300)]
    chart = usage_chart(rows=rows, buckets=hours, bucket="hour", metric="tokens", top=2)
    assert [(e.name, e.total) for e in chart.legend] == [("alice", 900), ("bob", 200), ("other (2)", 150)]
    first = [b for b in chart.bars if b.x < chart.bars[0].x + 1]
    assert [b.title.split(" · ")[0] for b in first] == ["alice", "bob", "other (2)"]
    # Stacked from the baseline up, heights proportional to the tokens (axis 0 to 1,000).
    assert first[0].y + first[0].height == pytest.approx(chart.baseline)
    assert first[1].y + first[1].height == pytest.approx(first[0].y)
    assert [b.height / first[0].height for b in first] == pytest.approx([1, 200 / 600, 150 / 600])
    assert [t.label for t in chart.y_ticks] == ["0", "250", "500", "750", "1k"]
    assert len(chart.bars) == 4  # nothing drawn for the empty hours
    assert "other (2) · 2026-12-03 10:00: 150 tokens (in 150," in first[2].title


def test_the_chart_counts_requests_when_asked_and_labels_hours_with_their_date_at_a_new_day() -> None:
    hours = [T0 + timedelta(hours=h) for h in range(12, 16)]
    chart = usage_chart(rows=[_row(hours[1], "alice", 10_000, requests=3)], buckets=hours, bucket="hour",
                        metric="requests")
    assert [(e.name, e.total) for e in chart.legend] == [("alice", 3)]
    assert [t.label for t in chart.x_ticks] == ["Dec 3 22:00", "23:00", "Dec 4 00:00", "01:00"]
    assert [t.label for t in chart.y_ticks] == ["0", "1", "2", "3", "4"]
