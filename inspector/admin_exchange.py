"""One exchange's page and its actions: JSON and fixture downloads, replay (a mixin of
``inspector.admin.ExchangeAdmin``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from inspector import views
from inspector.hooks import hooks
from inspector.models import Exchange
from inspector.storage import exchanges_load
from translation.errors import ApiError


class ExchangePages(admin.ModelAdmin):
    def urls_exchange(self) -> list[URLPattern]:
        return [
            path("<path:object_id>/json/", self.admin_site.admin_view(self.json_view),
                 name="inspector_exchange_json"),
            path("<path:object_id>/fixture/", self.admin_site.admin_view(self.fixture_view),
                 name="inspector_exchange_fixture"),
            path("<path:object_id>/replay/", self.admin_site.admin_view(self.replay_view),
                 name="inspector_exchange_replay"),
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
        exchange = self._exchange(request, object_id)
        page = views.exchange_page_context(exchange)
        compare_id = request.GET.get("compare", "") or page["replay_of"]
        compare = Exchange.objects.filter(pk=compare_id).first() if compare_id else None
        if compare is not None:
            exchanges_load([compare])
        context = {
            **self.admin_site.each_context(request), **page,
            "opts": self.opts, "title": f"Exchange {exchange.id}", "compare": compare,
            "compare_message": views.exchange_page_context(compare)["message_json"] if compare else "",
            "replay_targets": views.replay_targets(hooks.routes_now()),
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

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """POST only (the admin's CSRF check applies): replays need staff, never an API key."""
        exchange = self._exchange(request, object_id)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:inspector_exchange_change", args=[quote(exchange.pk)]))
        user = getattr(request, "user", None)
        if user is None or not user.is_staff:
            raise PermissionDenied
        try:
            new_id = views.exchange_replay(exchange, target=request.POST.get("target", ""), user=user.get_username())
        except ApiError as exc:
            messages.error(request, f"Replay failed: {exc.message}")
            return HttpResponseRedirect(reverse("admin:inspector_exchange_change", args=[quote(exchange.pk)]))
        url = reverse("admin:inspector_exchange_change", args=[quote(new_id)])
        return HttpResponseRedirect(f"{url}?compare={exchange.pk}")

