"""One exchange's page and its actions: JSON, fixture and body downloads, replay (edited or as
stored; a mixin of ``inspector.admin.ExchangeAdmin``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from inspector import views
from inspector.hooks import hooks
from inspector.models import Exchange
from inspector.sessions import session_panel_context
from inspector.storage import exchanges_load
from translation.errors import ApiError


def trace_url(exchange: Exchange) -> str:
    """The exchange's trace in the operator's tracing UI (DRAGOMAN_TRACE_URL), or '' (unset, or no trace)."""
    template: str = settings.TRACE_URL
    return template.replace("{trace_id}", exchange.trace_id) if template and exchange.trace_id else ""


class ExchangePages(admin.ModelAdmin):
    def urls_exchange(self) -> list[URLPattern]:
        return [
            path("<path:object_id>/json/", self.admin_site.admin_view(self.json_view),
                 name="inspector_exchange_json"),
            path("<path:object_id>/fixture/", self.admin_site.admin_view(self.fixture_view),
                 name="inspector_exchange_fixture"),
            path("<path:object_id>/replay/", self.admin_site.admin_view(self.replay_view),
                 name="inspector_exchange_replay"),
            path("<path:object_id>/body.json", self.admin_site.admin_view(self.body_view),
                 name="inspector_exchange_body"),
        ]

    def _exchange(self, request: HttpRequest, object_id: str) -> Exchange:
        if not self.has_view_permission(request):
            raise PermissionDenied
        exchange = self.get_object(request, unquote(object_id))
        if exchange is None:
            raise Http404(f"No exchange {object_id}")
        exchanges_load([exchange])
        return exchange

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return self._page(request, self._exchange(request, object_id), **(extra_context or {}))

    def _page(self, request: HttpRequest, exchange: Exchange, **extra: Any) -> TemplateResponse:
        page = views.exchange_page_context(exchange)
        compare_id = request.GET.get("compare", "") or page["replay_of"]
        compare = Exchange.objects.filter(pk=compare_id).first() if compare_id else None
        if compare is not None:
            exchanges_load([compare])
        context = {
            **self.admin_site.each_context(request), **page,
            "opts": self.opts, "title": f"Exchange {exchange.id}", "compare": compare,
            "comparison": views.replay_comparison(compare, exchange) if compare else None,
            "replay_targets": views.replay_targets(hooks.routes_now()),
            "replay_body": views.replay_body(exchange), "replay_error": "", "replay_target": "",
            "session_panel": session_panel_context(exchange),
            "session_panel_template": "admin/inspector/exchange/_session_panel.html",
            "trace_url": trace_url(exchange),
            **extra,
        }
        return TemplateResponse(request, "admin/inspector/exchange/exchange.html", context)

    def json_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        exchange = self._exchange(request, object_id)
        response = HttpResponse(views.json_pretty(views.exchange_export(exchange)), content_type="application/json")
        response["content-disposition"] = f'attachment; filename="{exchange.id}.json"'
        return response

    def fixture_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        exchange = self._exchange(request, object_id)
        response = HttpResponse(views.json_pretty(views.exchange_fixture(exchange)), content_type="application/json")
        response["content-disposition"] = f'attachment; filename="fixture-{exchange.id}.json"'
        return response

    def body_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The client's body as curl's ``--data-binary @body.json`` reads it."""
        exchange = self._exchange(request, object_id)
        response = HttpResponse(views.curl_body(exchange), content_type="application/json")
        response["content-disposition"] = 'attachment; filename="body.json"'
        return response

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """POST only (the admin's CSRF check applies): replays need staff, never an API key. An
        edited body (``body``) replaces the stored one; one that is not a JSON object, or a replay
        that fails before it is recorded, shows the page again with the reason and the edit kept."""
        exchange = self._exchange(request, object_id)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:inspector_exchange_change", args=[quote(exchange.pk)]))
        user = getattr(request, "user", None)
        if user is None or not user.is_staff:
            raise PermissionDenied
        target = request.POST.get("target", "")
        edited = request.POST.get("body")
        try:
            body = views.replay_body_parse(edited) if edited is not None else None
            new_id = views.exchange_replay(exchange, target=target, user=user.get_username(), body=body)
        except ApiError as exc:
            if edited is None:
                messages.error(request, f"Replay failed: {exc.message}")
                return HttpResponseRedirect(reverse("admin:inspector_exchange_change", args=[quote(exchange.pk)]))
            response = self._page(request, exchange, replay_error=f"Replay failed: {exc.message}",
                                  replay_body=edited, replay_target=target, replay_open=True)
            response.status_code = 400
            return response
        url = reverse("admin:inspector_exchange_change", args=[quote(new_id)])
        return HttpResponseRedirect(f"{url}?compare={exchange.pk}")
