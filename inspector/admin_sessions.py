"""Sessions: the turns of one Claude Code session as a thread, subagents under the agent that
spawned them (a mixin of ``inspector.admin.ExchangeAdmin``)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern


class SessionPages(admin.ModelAdmin):
    def urls_sessions(self) -> list[URLPattern]:
        return []
