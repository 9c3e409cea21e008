from __future__ import annotations

import orjson
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from gateway.api import api
from gateway.errors import error_response, request_id_of
from translation.errors import ApiError


async def status(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return error_response(ApiError(405, f"Method {request.method} not allowed for /"), request_id_of(request))
    return HttpResponse(orjson.dumps({"name": "dragoman", "status": "ok", "api": "/v1/messages"}),
                        content_type="application/json")


async def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse(orjson.dumps({"status": "ok"}), content_type="application/json")


async def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(ApiError(404, f"Not found: {request.method} {request.path}"), request_id_of(request))


admin.site.site_header = "Dragoman"
admin.site.site_title = "Dragoman admin"
admin.site.index_title = "Gateway configuration and inspector"

urlpatterns = [
    path("", status),
    path("healthz", healthz),
    path("admin/", admin.site.urls),
    path("v1/", api.urls),
    re_path(r"^(?P<rest>.*)$", not_found),
]
