"""The inspector in the Django admin: one ModelAdmin assembled from the pages each module
builds (the list and live tail, one exchange's page, sessions, usage)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern

from inspector.admin_exchange import ExchangePages
from inspector.admin_list import ExchangeListPages
from inspector.admin_sessions import SessionPages
from inspector.admin_usage import UsagePages
from inspector.models import Exchange


@admin.register(Exchange)
class ExchangeAdmin(ExchangeListPages, SessionPages, UsagePages, ExchangePages):
    def get_urls(self) -> list[URLPattern]:
        # Own pages first: the admin's own patterns end in a catch-all for object ids.
        own = [*self.urls_list(), *self.urls_sessions(), *self.urls_usage(), *self.urls_exchange()]
        return own + super().get_urls()
