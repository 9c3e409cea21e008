"""Usage for a team: requests, tokens, errors and TTFT per key, model and backend, by hour and
day, with a chart and a CSV export (a mixin of ``inspector.admin.ExchangeAdmin``).

The numbers come from ``inspector.usage`` (aggregated in the database, scalar columns only), the
chart's geometry from ``inspector.usage_chart``; these views only parse, call and render."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from inspector.models import Exchange
from inspector.sessions import session_url
from inspector.usage import (
    ERROR,
    GROUP_COLUMN,
    Group,
    UsageQuery,
    UsageTotal,
    usage_buckets,
    usage_csv_lines,
    usage_overall,
    usage_query_parse,
    usage_rows,
    usage_totals,
)
from inspector.usage_chart import group_label, usage_chart

CHOICES = {
    "range": [("24h", "last 24 hours"), ("7d", "last 7 days"), ("30d", "last 30 days"), ("custom", "since … until")],
    "bucket": [("hour", "by hour"), ("day", "by day")],
    "group": [("key", "per key"), ("model", "per model"), ("backend", "per backend")],
    "endpoint": [("all", "all endpoints"), ("messages", "messages"), ("count_tokens", "count_tokens")],
    "metric": [("tokens", "chart tokens"), ("requests", "chart requests")],
}
RECENT = 20


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def _local(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


class UsagePages(admin.ModelAdmin):
    def urls_usage(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("usage/", view(self.usage_view), name="inspector_exchange_usage"),
            path("usage/csv/", view(self.usage_csv_view), name="inspector_exchange_usage_csv"),
            # path, not str: a key's name may hold a slash.
            path("usage/key/<path:key_name>/", view(self.usage_key_view), name="inspector_exchange_usage_key"),
        ]

    def _query(self, request: HttpRequest) -> tuple[UsageQuery, list[str]]:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return usage_query_parse({name: request.GET.get(name, "") for name in request.GET})

    def _row(self, total: UsageTotal, *, group: Group | None, query: UsageQuery) -> dict[str, Any]:
        """A table row: a key links to its page, a model or backend to the exchanges it had."""
        link = None
        if group == "key" and total.group:
            link = reverse("admin:inspector_exchange_usage_key", args=[total.group]) + "?" + urlencode(
                {k: v for k, v in query.params().items() if k != "group"})
        elif group is not None and total.group:
            link = reverse("admin:inspector_exchange_changelist") + "?" + urlencode(
                {GROUP_COLUMN[group]: total.group})
        return {"name": group_label(total.group), "link": link, "requests": f"{total.requests:,}",
                "errors": f"{total.errors:,}", "error_rate": f"{total.error_rate:.1%}",
                "failovers": f"{total.failovers:,}",
                "input": f"{total.input_tokens:,}", "output": f"{total.output_tokens:,}",
                "cache_read": f"{total.cache_read_tokens:,}", "cache_creation": f"{total.cache_creation_tokens:,}",
                "tokens": f"{total.tokens:,}", "ttft_avg": _ms(total.ttft_avg_ms), "ttft_p50": _ms(total.ttft_p50_ms),
                "ttft_p95": _ms(total.ttft_p95_ms)}

    def _context(self, request: HttpRequest, query: UsageQuery, notes: list[str], **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "query": query, "notes": notes,
                "choices": CHOICES, "since": _local(query.since), "until": _local(query.until),
                "since_input": timezone.localtime(query.since).strftime("%Y-%m-%dT%H:%M"),
                "until_input": timezone.localtime(query.until).strftime("%Y-%m-%dT%H:%M"),
                "time_zone": timezone.get_current_timezone_name(), **extra}

    def usage_view(self, request: HttpRequest) -> HttpResponse:
        query, notes = self._query(request)
        rows = usage_rows(since=query.since, until=query.until, endpoint=query.endpoint, bucket=query.bucket,
                          group=query.group)
        totals = usage_totals(since=query.since, until=query.until, endpoint=query.endpoint, group=query.group)
        chart = usage_chart(rows=rows, buckets=usage_buckets(since=query.since, until=query.until,
                                                             bucket=query.bucket),
                            bucket=query.bucket, metric=query.metric)
        context = self._context(
            request, query, notes, title="Usage", chart=chart,
            rows=[self._row(t, group=query.group, query=query) for t in totals],
            sum=self._row(usage_overall(since=query.since, until=query.until, endpoint=query.endpoint),
                          group=None, query=query) if len(totals) > 1 else None,
            group_name=dict(CHOICES["group"])[query.group].removeprefix("per "),
            csv_url=reverse("admin:inspector_exchange_usage_csv") + "?" + urlencode(query.params()))
        return TemplateResponse(request, "admin/inspector/exchange/usage.html", context)

    def usage_csv_view(self, request: HttpRequest) -> HttpResponse:
        query, _ = self._query(request)
        rows = usage_rows(since=query.since, until=query.until, bucket=query.bucket, group=query.group,
                          endpoint=query.endpoint)
        out = io.StringIO()
        csv.writer(out).writerows(usage_csv_lines(rows, group=query.group))
        stamp = "%Y%m%dT%H%M"
        name = (f"dragoman-usage-{query.group}-{query.bucket}-{timezone.localtime(query.since).strftime(stamp)}-"
                f"{timezone.localtime(query.until).strftime(stamp)}.csv")
        response = HttpResponse(out.getvalue().encode("utf-8"), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def usage_key_view(self, request: HttpRequest, key_name: str) -> HttpResponse:
        query, notes = self._query(request)
        key_name = key_name.replace("\x00", "")  # as the recorder stores names (PostgreSQL refuses NUL)
        window = {"since": query.since, "until": query.until}
        rows = usage_rows(**window, endpoint=query.endpoint, key_name=key_name, bucket=query.bucket, group="model")
        models = usage_totals(**window, endpoint=query.endpoint, key_name=key_name, group="model")
        backends = usage_totals(**window, endpoint=query.endpoint, key_name=key_name, group="backend")
        chart = usage_chart(rows=rows, buckets=usage_buckets(since=query.since, until=query.until,
                                                             bucket=query.bucket),
                            bucket=query.bucket, metric=query.metric)
        scope = Exchange.objects.filter(key_name=key_name, created_at__gte=query.since, created_at__lt=query.until)
        if query.endpoint != "all":
            scope = scope.filter(endpoint=query.endpoint)
        errors = (scope.filter(ERROR).order_by("-created_at")
                  .only("id", "created_at", "status", "error_type", "error_message", "client_model", "backend_name")
                  [:RECENT])
        sessions = (scope.exclude(session_id="").values("session_id")
                    .annotate(first=Min("created_at"), last=Max("created_at"), requests=Count("pk"))
                    .order_by("-last")[:RECENT])
        total = usage_overall(**window, endpoint=query.endpoint, key_name=key_name)
        context = self._context(
            request, query, notes, title=f"Usage of key {key_name}", key_name=key_name, chart=chart,
            total=self._row(total, group=None, query=query) if total.requests else None,
            models=[self._row(t, group="model", query=query) for t in models],
            backends=[self._row(t, group="backend", query=query) for t in backends],
            errors=[{"link": reverse("admin:inspector_exchange_change", args=[quote(e.id)]), "id": e.id,
                     "time": _local(e.created_at), "status": e.status, "error_type": e.error_type,
                     "error_message": e.error_message, "model": e.client_model, "backend": e.backend_name}
                    for e in errors],
            sessions=[{"id": s["session_id"], "link": session_url(s["session_id"]) or None, "first": _local(s["first"]),
                       "last": _local(s["last"]), "requests": s["requests"]} for s in sessions],
            usage_url=reverse("admin:inspector_exchange_usage") + "?" + urlencode(query.params()))
        return TemplateResponse(request, "admin/inspector/exchange/usage_key.html", context)
