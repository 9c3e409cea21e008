"""Usage for a team: requests, tokens, errors and TTFT per key, model and backend, by hour and
day, with a chart and a CSV export (a mixin of ``inspector.admin.ExchangeAdmin``)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern


class UsagePages(admin.ModelAdmin):
    def urls_usage(self) -> list[URLPattern]:
        return []
