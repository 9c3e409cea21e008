"""Sessions: the turns of one Claude Code session as a thread, subagents under the agent that
spawned them, and the recent sessions (a mixin of ``inspector.admin.ExchangeAdmin``)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from inspector.sessions import SESSION_ID_MAX, TURNS_MAX, session_thread, sessions_recent

SESSIONS_DAYS = 7
SESSIONS_SHOWN = 100


class SessionPages(admin.ModelAdmin):
    def urls_sessions(self) -> list[URLPattern]:
        return [
            path("sessions/", self.admin_site.admin_view(self.sessions_view), name="inspector_exchange_sessions"),
            path("sessions/<str:session_id>/", self.admin_site.admin_view(self.session_view),
                 name="inspector_exchange_session"),
        ]

    def sessions_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Sessions",
                   "sessions": sessions_recent(days=SESSIONS_DAYS, limit=SESSIONS_SHOWN),
                   "days": SESSIONS_DAYS, "shown": SESSIONS_SHOWN}
        return TemplateResponse(request, "admin/inspector/exchange/sessions.html", context)

    def session_view(self, request: HttpRequest, session_id: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "opts": self.opts, "session_id": session_id,
                   "title": f"Session {session_id}", "turns_max": TURNS_MAX}
        if len(session_id) > SESSION_ID_MAX:
            context["problem"] = f"A session id has at most {SESSION_ID_MAX} characters; this one has {len(session_id)}."
            return TemplateResponse(request, "admin/inspector/exchange/session.html", context, status=400)
        thread = session_thread(session_id, turns_max=TURNS_MAX)
        if thread is None:
            context["problem"] = f"No exchange recorded for session {session_id} (it may have been pruned)."
            return TemplateResponse(request, "admin/inspector/exchange/session.html", context, status=404)
        context["thread"] = thread
        return TemplateResponse(request, "admin/inspector/exchange/session.html", context)
