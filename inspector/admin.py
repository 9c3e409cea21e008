from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from inspector.models import Exchange


class FixedCountPaginator(Paginator):
    """COUNT(*) on a big append-only table is slow; the list never needs the exact total."""

    @cached_property
    def count(self) -> int:
        return 10**9


@admin.register(Exchange)
class ExchangeAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "key_name", "client_model", "backend_name", "upstream_model", "stream",
                    "status", "stop_reason", "input_tokens", "output_tokens", "rewrite_count", "first_event_ms",
                    "duration_ms")
    list_filter = ("status", "stream", "backend_name", "endpoint", "disconnected")
    search_fields = ("=id",)
    paginator = FixedCountPaginator
    show_full_result_count = False
    date_hierarchy = None
    readonly_fields = [f.name for f in Exchange._meta.fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Exchange]:
        qs = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "inspector_exchange_changelist":
            qs = qs.defer("client_request", "upstream_request", "upstream_response", "client_response", "notes",
                          "timings", "usage")
        return qs

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Exchange | None = None) -> bool:
        return False
