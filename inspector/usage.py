"""Usage for a team: requests, errors, tokens and time to first token per key, model or backend,
in hour or day buckets of the admin's time zone (``settings.TIME_ZONE``).

Everything is aggregated in the database over the ``created_at`` index, from scalar columns only
(never the bodies). TTFT percentiles follow PostgreSQL's ``percentile_cont`` (linear
interpolation): computed there in SQL; SQLite has no percentile function, so they are computed
here over the TTFT values of the range (at most ``PERCENTILE_SAMPLE`` of the newest).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, cast, get_args

from django.db import connection
from django.db.models import Aggregate, Avg, Count, FloatField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from inspector.models import FAILED, Exchange

Bucket = Literal["hour", "day"]
Group = Literal["key", "model", "backend"]
Endpoint = Literal["all", "messages", "count_tokens"]
Metric = Literal["tokens", "requests"]
Span = Literal["24h", "7d", "30d", "custom"]

GROUP_COLUMN: dict[Group, str] = {"key": "key_name", "model": "client_model", "backend": "backend_name"}
SPANS: dict[Span, timedelta] = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# The longest range each bucket size may cover (168 hourly bars, a quarter of daily bars).
MAX_RANGE: dict[Bucket, timedelta] = {"hour": timedelta(days=7), "day": timedelta(days=92)}
PERCENTILE_SAMPLE = 100_000
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
# An error: an HTTP error status, or an error type (a stream that failed after its 200).
ERROR = FAILED


@dataclass(frozen=True)
class UsageCounts:
    """What is counted for one group (a key name, a client model or a backend name; "" when unknown)."""

    group: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    ttft_avg_ms: float | None
    # Requests whose answer came from another target than the first tried (``Exchange.failed_over``).
    failovers: int = field(default=0, kw_only=True)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_creation_tokens

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class UsageRow(UsageCounts):
    """One bucket of one group."""

    bucket: datetime


@dataclass(frozen=True)
class UsageTotal(UsageCounts):
    """One group over the whole range."""

    ttft_p50_ms: float | None
    ttft_p95_ms: float | None


@dataclass
class UsageQuery:
    """What a usage page shows: the range [since, until), its buckets, grouping and filters."""

    span: Span = "24h"
    since: datetime = field(default_factory=timezone.now)
    until: datetime = field(default_factory=timezone.now)
    bucket: Bucket = "hour"
    group: Group = "key"
    endpoint: Endpoint = "all"
    metric: Metric = "tokens"

    def params(self) -> dict[str, str]:
        """The query string that gives this query back (for links and the CSV export)."""
        out: dict[str, str] = {"range": self.span, "bucket": self.bucket, "group": self.group, "endpoint": self.endpoint,
               "metric": self.metric}
        if self.span == "custom":
            out["since"] = timezone.localtime(self.since).strftime("%Y-%m-%dT%H:%M")
            out["until"] = timezone.localtime(self.until).strftime("%Y-%m-%dT%H:%M")
        return out


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str,
            notes: list[str]) -> str:
    value = params.get(name, "")
    if value == "":
        return default
    if value not in allowed:
        notes.append(f"Unknown {name} {value!r} (one of {', '.join(allowed)}): showing {default}.")
        return default
    return value


def _moment(value: str, *, end: bool) -> datetime | None:
    """A date (its midnight; the next midnight when it ends a range) or a date and time, in the
    admin's time zone; None when it is neither."""
    try:
        day = parse_date(value)
        moment = None if day else parse_datetime(value)
        if day is not None:
            return day_start(day + timedelta(days=1) if end else day)
        if moment is None:
            return None
        aware = timezone.make_aware(moment) if timezone.is_naive(moment) else moment
        aware.astimezone(UTC)  # the first and last days of the calendar have no UTC time in every zone
        return aware
    except (ValueError, OverflowError):
        return None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.get_current_timezone())


def usage_query_parse(params: Mapping[str, str], *, now: datetime | None = None) -> tuple[UsageQuery, list[str]]:
    """The query a page's parameters ask for, and a note for every value that was not usable
    (that value falls back to its default, so the page always renders)."""
    notes: list[str] = []
    now = now or timezone.now()
    query = UsageQuery(until=now)
    query.group = cast(Group, _choice(params, "group", get_args(Group), "key", notes))
    query.endpoint = cast(Endpoint, _choice(params, "endpoint", get_args(Endpoint), "all", notes))
    query.metric = cast(Metric, _choice(params, "metric", get_args(Metric), "tokens", notes))
    custom = bool(params.get("since") or params.get("until"))
    span = cast(Span, _choice(params, "range", get_args(Span), "custom" if custom else "24h", notes))
    if custom and span != "custom":
        notes.append(f"Since and until apply to the range “since … until”: showing the last {span}.")
    if span == "custom":
        since = _moment(params.get("since", ""), end=False)
        until = _moment(params.get("until", ""), end=True) if params.get("until") else now
        if since is None or until is None:
            notes.append("Since and until take a date (2026-12-01) or a date and time (2026-12-01T14:00): "
                         "showing the last 24 hours.")
            span = "24h"
        elif since >= until:
            notes.append("Since must be before until: showing the last 24 hours.")
            span = "24h"
        else:
            query.since, query.until = since, until
    query.span = span
    if span != "custom":
        query.since = now - SPANS[query.span]
    default_bucket = "hour" if query.until - query.since <= timedelta(days=2) else "day"
    query.bucket = cast(Bucket, _choice(params, "bucket", get_args(Bucket), default_bucket, notes))
    longest = MAX_RANGE[query.bucket]
    if query.until - query.since > longest:
        query.since = query.until - longest
        query.span = "custom"
        notes.append(f"{query.bucket.capitalize()} buckets cover at most {longest.days} days: "
                     f"showing the {longest.days} days up to until.")
    return query, notes


def usage_buckets(*, since: datetime, until: datetime, bucket: Bucket) -> list[datetime]:
    """Every bucket's start from the one holding ``since`` up to ``until``, in the admin's time zone
    (days start at local midnight, also across a daylight-saving change)."""
    tz = timezone.get_current_timezone()
    local = timezone.localtime(since, tz)
    out: list[datetime] = []
    if bucket == "hour":
        # Whole hours in UTC are whole local hours (offsets that are not whole hours keep their
        # minutes, as the database's truncation does).
        current = local.replace(minute=0, second=0, microsecond=0)
        while current < until:
            out.append(current.astimezone(tz))
            current = current.astimezone(UTC) + timedelta(hours=1)
        return out
    day = local.date()
    while (start := day_start(day)) < until:
        out.append(start)
        day += timedelta(days=1)
    return out


def _exchanges(*, since: datetime, until: datetime, endpoint: Endpoint, key_name: str | None) -> QuerySet[Exchange]:
    qs = Exchange.objects.filter(created_at__gte=since, created_at__lt=until)
    if endpoint != "all":
        qs = qs.filter(endpoint=endpoint)
    if key_name is not None:
        qs = qs.filter(key_name=key_name)
    return qs.order_by()


def _metrics() -> dict[str, Any]:
    sums = {name: Coalesce(Sum(name), Value(0)) for name in TOKEN_COLUMNS}
    return {"requests": Count("pk"), "errors": Count("pk", filter=ERROR), **sums, "ttft_avg_ms": Avg("ttft_ms"),
            "failovers": Count("pk", filter=Q(failed_over=True))}


def usage_rows(*, since: datetime, until: datetime, bucket: Bucket, group: Group, endpoint: Endpoint = "all",
               key_name: str | None = None) -> list[UsageRow]:
    """One row per bucket and group that has exchanges in [since, until), oldest bucket first."""
    trunc = TruncHour if bucket == "hour" else TruncDay
    column = GROUP_COLUMN[group]
    rows = (_exchanges(since=since, until=until, endpoint=endpoint, key_name=key_name)
            .annotate(bucket=trunc("created_at", tzinfo=timezone.get_current_timezone()))
            .values("bucket", column).annotate(**_metrics()).order_by("bucket", column))
    return [UsageRow(bucket=row["bucket"], group=row[column], requests=row["requests"], errors=row["errors"],
                     input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
                     cache_read_tokens=row["cache_read_tokens"], cache_creation_tokens=row["cache_creation_tokens"],
                     ttft_avg_ms=row["ttft_avg_ms"], failovers=row["failovers"]) for row in rows]


class _PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate ``percentile_cont(fraction) WITHIN GROUP (ORDER BY x)``."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


def percentile(values: list[float], fraction: float) -> float | None:
    """``percentile_cont`` of sorted ``values``: linear interpolation between the closest ranks."""
    if not values:
        return None
    rank = fraction * (len(values) - 1)
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def _percentiles(qs: QuerySet[Exchange], column: str | None) -> dict[str, tuple[float | None, float | None]]:
    """TTFT p50 and p95 per value of ``column`` (all of ``qs`` under the key "" when None)."""
    if connection.vendor == "postgresql":
        fractions = {"p50": _PercentileCont("ttft_ms", fraction=0.5), "p95": _PercentileCont("ttft_ms", fraction=0.95)}
        if column is None:
            found = qs.aggregate(**fractions)
            return {"": (found["p50"], found["p95"])}
        return {row[column]: (row["p50"], row["p95"]) for row in qs.values(column).annotate(**fractions)}
    values: dict[str, list[float]] = {}
    sample = qs.filter(ttft_ms__isnull=False).order_by("-created_at")
    pairs: Iterable[tuple[str, float | None]] = (
        sample.values_list(column, "ttft_ms")[:PERCENTILE_SAMPLE] if column
        else (("", ttft) for ttft in sample.values_list("ttft_ms", flat=True)[:PERCENTILE_SAMPLE]))
    for name, ttft in pairs:
        if ttft is not None:
            values.setdefault(name, []).append(ttft)
    out: dict[str, tuple[float | None, float | None]] = {}
    for name, found_values in values.items():
        found_values.sort()
        out[name] = (percentile(found_values, 0.5), percentile(found_values, 0.95))
    return out


def _total(row: dict[str, Any], group: str, percentiles: dict[str, tuple[float | None, float | None]]) -> UsageTotal:
    p50, p95 = percentiles.get(group, (None, None))
    return UsageTotal(group=group, requests=row["requests"], errors=row["errors"], input_tokens=row["input_tokens"],
                      output_tokens=row["output_tokens"], cache_read_tokens=row["cache_read_tokens"],
                      cache_creation_tokens=row["cache_creation_tokens"], ttft_avg_ms=row["ttft_avg_ms"],
                      ttft_p50_ms=p50, ttft_p95_ms=p95, failovers=row["failovers"])


def usage_totals(*, since: datetime, until: datetime, group: Group, endpoint: Endpoint = "all",
                 key_name: str | None = None) -> list[UsageTotal]:
    """One row per group over [since, until), the most tokens first."""
    column = GROUP_COLUMN[group]
    qs = _exchanges(since=since, until=until, endpoint=endpoint, key_name=key_name)
    percentiles = _percentiles(qs, column)
    totals = [_total(row, row[column], percentiles) for row in qs.values(column).annotate(**_metrics())]
    return sorted(totals, key=lambda t: (-t.tokens, -t.requests, t.group))


def usage_overall(*, since: datetime, until: datetime, endpoint: Endpoint = "all",
                  key_name: str | None = None) -> UsageTotal:
    """All of [since, until) in one row (its group is "")."""
    qs = _exchanges(since=since, until=until, endpoint=endpoint, key_name=key_name)
    return _total(qs.aggregate(**_metrics()), "", _percentiles(qs, None))


CSV_HEADER = ["bucket_start", "{group}", "requests", "errors", "input_tokens", "output_tokens",
              "cache_read_tokens", "cache_creation_tokens", "ttft_avg_ms"]


def _cell(text: str) -> str:
    # A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection");
    # model names come from clients.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def usage_csv_lines(rows: Iterable[UsageRow], *, group: Group) -> Iterator[list[str]]:
    """The CSV export: a header, then one line per bucket and group; plain numbers, bucket starts
    in ISO 8601 with their UTC offset."""
    yield [name.format(group=group) for name in CSV_HEADER]
    for row in rows:
        yield [timezone.localtime(row.bucket).isoformat(), _cell(row.group), str(row.requests), str(row.errors),
               str(row.input_tokens), str(row.output_tokens), str(row.cache_read_tokens),
               str(row.cache_creation_tokens), "" if row.ttft_avg_ms is None else f"{row.ttft_avg_ms:.1f}"]
