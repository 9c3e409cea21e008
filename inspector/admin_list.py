"""The exchange list: its columns, filters, search and the live tail (a mixin of
``inspector.admin.ExchangeAdmin``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from inspector.live import summary_row
from inspector.models import FAILED, Exchange
from inspector.recorder import recorder
from inspector.rows import (
    ENDPOINT_NAMES,
    VERDICT_LABELS,
    endpoint_label,
    failover_label,
    status_label,
    time_label,
    verdict_of,
)
from inspector.search import SEARCH_HELP, exchanges_search
from inspector.sessions import session_list_url, session_url
from translation.usage import overhead_ms

# The scalar columns the list shows (never the bodies).
_LIST_FIELDS = ["id", "created_at", "endpoint", "method", "path", "key_name", "key_hint", "session_id",
                "client_model", "backend_name", "upstream_model", "stream", "status", "stop_reason", "error_type",
                "disconnected", "input_tokens", "output_tokens", "rewrite_count", "upstream_first_byte_ms",
                "first_event_ms", "duration_ms", "timings", "ttft_ms", "overhead_ms", "valid", "attempts"]


class FixedCountPaginator(Paginator):
    """COUNT(*) on a big append-only table is slow and the list never needs the exact total: count
    at most ``COUNT_CAP + 1`` rows (a LIMIT subquery), so the pager shows "10000+" at worst."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        rows: Any = self.object_list  # the admin always pages a QuerySet
        return int(rows[: self.COUNT_CAP + 1].count())


def _recent_distinct(column: str) -> list[str]:
    """The distinct non-empty values of ``column`` among the latest ``_RECENT_ROWS`` exchanges:
    a filter's choices from an index walk of bounded length, never a scan of the whole table."""
    recent = Exchange.objects.order_by("-created_at").values("pk")[:_RECENT_ROWS]
    values = (Exchange.objects.filter(pk__in=recent).exclude(**{column: ""}).order_by(column)
              .values_list(column, flat=True).distinct()[:_CHOICES_MAX])
    return list(values)


_RECENT_ROWS = 5000
_CHOICES_MAX = 50


class RecentValuesFilter(admin.SimpleListFilter):
    """Exact match on a column, its choices the values seen lately (and the one chosen, if older)."""

    column = ""
    none_label = ""  # when set, a choice for the rows without a value

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = _recent_distinct(self.column)
        chosen = self.value()
        if chosen and chosen != _NONE and chosen not in values:
            values.append(chosen)
        choices = [(v, v) for v in values]
        return [*choices, (_NONE, self.none_label)] if self.none_label else choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(**{self.column: "" if value == _NONE else value})


_NONE = "-"


class KeyFilter(RecentValuesFilter):
    title = "key"
    parameter_name = column = "key_name"
    none_label = "no key (rejected)"


class ModelFilter(RecentValuesFilter):
    title = "client model"
    parameter_name = column = "client_model"


class BackendFilter(RecentValuesFilter):
    title = "backend"
    parameter_name = column = "backend_name"


class EndpointFilter(admin.SimpleListFilter):
    title = "endpoint"
    parameter_name = "endpoint"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("messages", "messages"), ("count_tokens", "count_tokens"), ("models", "models"),
                ("other", "other paths")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        value = self.value()
        if value == "other":
            return queryset.exclude(endpoint__in=ENDPOINT_NAMES)
        if value in ENDPOINT_NAMES.values():
            return queryset.filter(endpoint__in=[k for k, v in ENDPOINT_NAMES.items() if v == value])
        return queryset


class SessionFilter(admin.SimpleListFilter):
    """``?session_id=…``: one session's exchanges (the session page links here). Shown only when
    set (as a removable chip above the list): sessions are too many to list."""

    title = "session"
    parameter_name = "session_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value[:12])] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        value = self.value()
        return queryset.filter(session_id=value) if value else queryset


class StopReasonFilter(admin.SimpleListFilter):
    title = "stop reason"
    parameter_name = "stop_reason"
    _REASONS = ("end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal")

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*((r, r) for r in self._REASONS), (_NONE, "none (an error, or not a message)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(stop_reason="" if value == _NONE else value)


class ToolCallsFilter(admin.SimpleListFilter):
    title = "tool calls"
    parameter_name = "has_tool_calls"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "called tools"), ("no", "no tool call")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        if self.value() in ("yes", "no"):
            return queryset.filter(has_tool_calls=self.value() == "yes")
        return queryset


class AboveFilter(admin.SimpleListFilter):
    """``column`` above N ms: a few usual thresholds, and any N in the URL (checked by
    ``thresholds_invalid`` before the list runs, so a bad one gets a message, not an error page)."""

    column = ""
    thresholds: tuple[int, ...] = ()

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices = [(str(n), f"over {n:,} ms") for n in self.thresholds]
        chosen = self.value()
        if chosen and chosen not in dict(choices):
            choices.append((chosen, f"over {chosen} ms"))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        value = self.value()
        return queryset.filter(**{f"{self.column}__gt": float(value)}) if value else queryset


class TtftFilter(AboveFilter):
    title = "TTFT"
    parameter_name = "ttft_over"
    column = "ttft_ms"
    thresholds = (500, 2000, 10_000)


class OverheadFilter(AboveFilter):
    title = "gateway overhead"
    parameter_name = "overhead_over"
    column = "overhead_ms"
    thresholds = (5, 20, 100)


def thresholds_invalid(query: Mapping[str, str]) -> list[str]:
    """What is wrong with the threshold filters of ``query`` (a message each)."""
    problems = []
    for spec in (TtftFilter, OverheadFilter):
        raw = query.get(spec.parameter_name)
        if raw is None:
            continue
        try:
            ok = math.isfinite(float(raw)) and float(raw) >= 0
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"{spec.title} over: {raw!r} is not a number of milliseconds; the filter was removed.")
    return problems


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status_class"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("2xx", "2xx success"), ("4xx", "4xx client error"), ("499", "499 client left"),
                ("5xx", "5xx gateway/backend error")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        value = self.value()
        if value == "499":
            return queryset.filter(status=499)
        if value in ("2xx", "4xx", "5xx"):
            low = int(value[0]) * 100
            qs = queryset.filter(status__gte=low, status__lt=low + 100)
            return qs.exclude(status=499) if value == "4xx" else qs
        return queryset


class ErrorFilter(admin.SimpleListFilter):
    """Error rows as the list marks them: a status outside 2xx, or a stream that ended with an error."""

    title = "error"
    parameter_name = "has_error"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "with an error"), ("no", "without")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        if self.value() == "yes":
            return queryset.filter(FAILED)
        if self.value() == "no":
            return queryset.exclude(FAILED)
        return queryset


class FailedOverFilter(admin.SimpleListFilter):
    """Exchanges whose answer came from another target than the first one tried."""

    title = "failed over"
    parameter_name = "failed_over"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "yes"), ("no", "no")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        if self.value() in ("yes", "no"):
            return queryset.filter(failed_over=self.value() == "yes")
        return queryset


class RewritesFilter(admin.SimpleListFilter):
    title = "rewrites"
    parameter_name = "has_rewrites"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "rewritten"), ("no", "passed as is")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        if self.value() == "yes":
            return queryset.filter(rewrite_count__gt=0)
        if self.value() == "no":
            return queryset.filter(rewrite_count=0)
        return queryset


class DateFilter(admin.SimpleListFilter):
    """Range filters only: a date hierarchy would aggregate over the whole table."""

    title = "date"
    parameter_name = "since"
    _SPANS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1),
              "7d": timedelta(days=7)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("15m", "last 15 minutes"), ("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        span = self._SPANS.get(self.value() or "")
        return queryset.filter(created_at__gte=timezone.now() - span) if span else queryset


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def exchange_ttft(obj: Exchange) -> float | None:
    return obj.ttft_ms if obj.ttft_ms is not None else obj.first_event_ms


def exchange_overhead(obj: Exchange) -> float | None:
    """Time the gateway added: the stored column, or (rows written before it existed) the same
    computation the recorder makes, from the stored timing marks."""
    if obj.overhead_ms is not None:
        return float(obj.overhead_ms)
    return overhead_ms(obj.timings or {}, obj.stream)


def _session_url(session_id: str) -> str:
    """The session's page, or the list of its exchanges for an id that cannot be in a path."""
    return session_url(session_id) or session_list_url(session_id)


class ExchangeListPages(admin.ModelAdmin):
    list_display = ["time", "endpoint_name", "key", "models", "status_code", "stop", "tokens", "ttft", "overhead",
                    "rewrites", "verdict", "session"]
    list_display_links = ["time"]
    list_filter = [KeyFilter, EndpointFilter, StatusFilter, ErrorFilter, StopReasonFilter, ToolCallsFilter,
                   TtftFilter, OverheadFilter, ModelFilter, BackendFilter, FailedOverFilter, RewritesFilter,
                   DateFilter, "stream",
                   SessionFilter]
    search_fields = ["id"]  # shows the search box; get_search_results does the searching
    search_help_text = SEARCH_HELP
    paginator = FixedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    change_list_template = "admin/inspector/exchange/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Exchange]:
        qs = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "inspector_exchange_changelist":
            qs = qs.only(*_LIST_FIELDS)
        return qs

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Exchange],
                           search_term: str) -> tuple[QuerySet[Exchange], bool]:
        return exchanges_search(queryset, text=search_term), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Exchange | None = None) -> bool:
        return False

    # -- list columns ---------------------------------------------------------------------

    @admin.display(description="time", ordering="created_at")
    def time(self, obj: Exchange) -> str:
        short, full = time_label(obj.created_at)
        return format_html('<span class="nowrap" title="{} · {}">{}</span>', full, obj.id, short)

    @admin.display(description="endpoint")
    def endpoint_name(self, obj: Exchange) -> str:
        label = endpoint_label(endpoint=obj.endpoint, method=obj.method, path=obj.path)
        return format_html('<span class="clip endpoint" title="{}">{}</span>', obj.path or label, label)

    @admin.display(description="key")
    def key(self, obj: Exchange) -> str:
        if obj.key_name:
            return format_html('<span class="clip key" title="{}">{}</span>', obj.key_name, obj.key_name)
        if obj.key_hint:
            return format_html('<span class="key quiet nowrap" title="presented, not accepted">{}</span>', obj.key_hint)
        return format_html('<span class="quiet">{}</span>', "none")

    @admin.display(description="model → backend / upstream")
    def models(self, obj: Exchange) -> str:
        models = format_html('<span class="models">{} → {} / {}</span>', obj.client_model or "—",
                             obj.backend_name or "—", obj.upstream_model or "—")
        failover = failover_label(obj.attempts)
        if failover is None:
            return models
        return format_html('{} <span class="failover nowrap" title="{}">{}</span>', models, failover[1], failover[0])

    @admin.display(description="status")
    def status_code(self, obj: Exchange) -> str:
        label, is_error = status_label(status=obj.status, error_type=obj.error_type, disconnected=obj.disconnected)
        return format_html('<span class="status-{}">{}</span>', "bad" if is_error else "ok", label)

    @admin.display(description="stop")
    def stop(self, obj: Exchange) -> str:
        return obj.stop_reason or "—"

    @admin.display(description="tokens")
    def tokens(self, obj: Exchange) -> str:
        if obj.input_tokens is None and obj.output_tokens is None:
            return "—"
        return format_html('<span class="nowrap">{} / {}</span>', _count(obj.input_tokens), _count(obj.output_tokens))

    @admin.display(description="overhead")
    def overhead(self, obj: Exchange) -> str:
        return format_html('<span class="nowrap">{}</span>', _ms(exchange_overhead(obj)))

    @admin.display(description="TTFT")
    def ttft(self, obj: Exchange) -> str:
        return format_html('<span class="nowrap">{}</span>', _ms(exchange_ttft(obj)))

    @admin.display(description="rw")
    def rewrites(self, obj: Exchange) -> int:
        return obj.rewrite_count

    @admin.display(description="valid")
    def verdict(self, obj: Exchange) -> str:
        verdict = verdict_of(valid=obj.valid, error_type=obj.error_type)
        icon, title = VERDICT_LABELS[verdict]
        return format_html('<span class="verdict verdict-{}" title="{}">{}</span>', verdict, title, icon)

    @admin.display(description="session")
    def session(self, obj: Exchange) -> str:
        if not obj.session_id:
            return "—"
        return format_html('<a class="session" href="{}" title="session {}">{}</a>', _session_url(obj.session_id),
                           obj.session_id, obj.session_id[:8])

    # -- list page ----------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        problems = thresholds_invalid(request.GET)
        if problems or any("\x00" in v for v in request.GET.values()):
            # PostgreSQL refuses a NUL in a parameter: drop it, as the bad thresholds, and say so.
            kept = request.GET.copy()
            for spec in (TtftFilter, OverheadFilter):
                if any(spec.title in p for p in problems):
                    kept.pop(spec.parameter_name, None)
            for name, values in list(kept.lists()):
                if any("\x00" in v for v in values):
                    kept.setlist(name, [v.replace("\x00", "") for v in values])
                    problems.append(f"The parameter {name} held a NUL character: it was removed.")
            for problem in problems:
                messages.error(request, problem)
            return HttpResponseRedirect(f"{request.path}?{kept.urlencode()}")
        stats_fn = getattr(recorder, "stats", None)
        if callable(stats_fn):
            stats = dict(stats_fn())
        else:
            stats = {"submitted": recorder.submitted, "persisted": recorder.persisted, "lost": recorder.lost,
                     "last_error": recorder.last_error}
        context = {**(extra_context or {}), "recorder_stats": sorted(stats.items()),
                   "recorder_lost": any(v for k, v in stats.items() if "lost" in k or "dropped" in k)}
        session_id = request.GET.get(SessionFilter.parameter_name)
        if session_id:
            rest = request.GET.copy()
            rest.pop(SessionFilter.parameter_name)
            context["session_chip"] = {"id": session_id, "url": _session_url(session_id),
                                       "remove": f"?{rest.urlencode()}"}
        return super().changelist_view(request, extra_context=context)

    def urls_list(self) -> list[URLPattern]:
        return [path("live/", self.admin_site.admin_view(self.live_view), name="inspector_exchange_live")]

    def live_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        recent = Exchange.objects.only(*_LIST_FIELDS).order_by("-created_at")[:LIVE_RECENT]
        rows = [{**summary_row(
            id=e.id, created_at=e.created_at, endpoint=e.endpoint, method=e.method, path=e.path,
            key_name=e.key_name, key_hint=e.key_hint, session_id=e.session_id, client_model=e.client_model,
            backend_name=e.backend_name, upstream_model=e.upstream_model, stream=e.stream, status=e.status,
            stop_reason=e.stop_reason, error_type=e.error_type, disconnected=e.disconnected,
            input_tokens=e.input_tokens, output_tokens=e.output_tokens, rewrite_count=e.rewrite_count,
            ttft_ms=exchange_ttft(e), overhead_ms=exchange_overhead(e), valid=e.valid), "state": "stored"}
            for e in reversed(recent)]
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Live tail",
                   "recent": rows, "row_cap": LIVE_ROW_CAP,
                   "session_url": _session_url("SESSION-ID")}  # the page's script fills in each row's id
        return TemplateResponse(request, "admin/inspector/exchange/live.html", context)


# The live tail opens with the latest stored exchanges and keeps at most LIVE_ROW_CAP rows.
LIVE_RECENT = 20
LIVE_ROW_CAP = 200


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"
