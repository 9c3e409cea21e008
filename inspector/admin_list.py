"""The exchange list: its columns, filters, search and the live tail (a mixin of
``inspector.admin.ExchangeAdmin``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from inspector.models import Exchange
from inspector.recorder import recorder
from translation.usage import overhead_ms

_FIELDS = {f.name for f in Exchange._meta.concrete_fields}
# Columns the recording side may add; the list uses them when they exist.
_OPTIONAL = [name for name in ("ttft_ms", "overhead_ms", "route", "valid") if name in _FIELDS]
_LIST_FIELDS = ["id", "created_at", "key_name", "client_model", "backend_name", "upstream_model", "stream",
                "status", "stop_reason", "error_type", "disconnected", "input_tokens", "output_tokens",
                "rewrite_count", "upstream_first_byte_ms", "first_event_ms", "duration_ms", "timings", *_OPTIONAL]


class FixedCountPaginator(Paginator):
    """COUNT(*) on a big append-only table is slow and the list never needs the exact total: count
    at most ``COUNT_CAP + 1`` rows (a LIMIT subquery), so the pager shows "10000+" at worst."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        rows: Any = self.object_list  # the admin always pages a QuerySet
        return int(rows[: self.COUNT_CAP + 1].count())


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
    title = "error"
    parameter_name = "has_error"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "with an error"), ("no", "without")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> QuerySet[Exchange]:
        if self.value() == "yes":
            return queryset.exclude(error_type="")
        if self.value() == "no":
            return queryset.filter(error_type="")
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
    value = getattr(obj, "ttft_ms", None)
    return value if value is not None else obj.first_event_ms


def exchange_overhead(obj: Exchange) -> float | None:
    """Time the gateway added: the stored column, or (rows written before it existed) the same
    computation the recorder makes, from the stored timing marks."""
    value = getattr(obj, "overhead_ms", None)
    if value is not None:
        return float(value)
    return overhead_ms(obj.timings or {}, obj.stream)


class ExchangeListPages(admin.ModelAdmin):
    list_display = ["time", "key_name", "models", "stream", "status_code", "stop_reason", "tokens", "overhead",
                    "ttft", "rewrites", *(["verdict"] if "valid" in _FIELDS else [])]
    list_display_links = ["time"]
    list_filter = ["backend_name", "client_model", StatusFilter, ErrorFilter, RewritesFilter, DateFilter, "stream"]
    search_fields = ["=id"]
    search_help_text = "Request id (the request-id header a client saw)"
    paginator = FixedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    change_list_template = "admin/inspector/exchange/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Exchange]:
        qs = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "inspector_exchange_changelist":
            qs = qs.only(*_LIST_FIELDS)
        return qs

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Exchange | None = None) -> bool:
        return False

    # -- list columns ---------------------------------------------------------------------

    @admin.display(description="time", ordering="created_at")
    def time(self, obj: Exchange) -> str:
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="client model → backend / upstream model")
    def models(self, obj: Exchange) -> str:
        return format_html("{} → {} / {}", obj.client_model or "—", obj.backend_name or "—",
                           obj.upstream_model or "—")

    @admin.display(description="status", ordering="status")
    def status_code(self, obj: Exchange) -> str:
        css = "ok" if 200 <= obj.status < 300 else "bad"
        label = f"{obj.status}" + (f" {obj.error_type}" if obj.error_type else "")
        label += " (client left)" if obj.disconnected else ""
        return format_html('<span class="status-{}">{}</span>', css, label)

    @admin.display(description="tokens in / out")
    def tokens(self, obj: Exchange) -> str:
        if obj.input_tokens is None and obj.output_tokens is None:
            return "—"
        return f"{obj.input_tokens if obj.input_tokens is not None else '—'} / " \
               f"{obj.output_tokens if obj.output_tokens is not None else '—'}"

    @admin.display(description="gateway overhead")
    def overhead(self, obj: Exchange) -> str:
        return _ms(exchange_overhead(obj))

    @admin.display(description="TTFT")
    def ttft(self, obj: Exchange) -> str:
        return _ms(exchange_ttft(obj))

    @admin.display(description="rewrites", ordering="rewrite_count")
    def rewrites(self, obj: Exchange) -> int:
        return obj.rewrite_count

    @admin.display(description="valid", boolean=True)
    def verdict(self, obj: Exchange) -> bool | None:
        return getattr(obj, "valid", None)

    # -- list page ----------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        stats_fn = getattr(recorder, "stats", None)
        if callable(stats_fn):
            stats = dict(stats_fn())
        else:
            stats = {"submitted": recorder.submitted, "persisted": recorder.persisted, "lost": recorder.lost,
                     "last_error": recorder.last_error}
        context = {**(extra_context or {}), "recorder_stats": sorted(stats.items()),
                   "recorder_lost": any(v for k, v in stats.items() if "lost" in k or "dropped" in k)}
        return super().changelist_view(request, extra_context=context)

    def urls_list(self) -> list[URLPattern]:
        return [path("live/", self.admin_site.admin_view(self.live_view), name="inspector_exchange_live")]

    def live_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        recent = Exchange.objects.only(*_LIST_FIELDS).order_by("-created_at")[:20]
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Live tail",
                   "recent": [{"id": e.id, "time": self.time(e), "client_model": e.client_model,
                               "backend_name": e.backend_name, "stream": e.stream, "status": e.status,
                               "stop_reason": e.stop_reason} for e in recent]}
        return TemplateResponse(request, "admin/inspector/exchange/live.html", context)

