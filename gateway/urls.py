from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from gateway.api import api
from gateway.errors import error_response, request_id_of
from gateway.health import health, health_sync
from gateway.metrics import OPERATOR_ONLY, metrics_view, operator_allowed, verbose_asked
from gateway.pipeline import records_live
from gateway.upstream import pools
from inspector.recorder import recorder
from translation.errors import ApiError


async def status(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return error_response(ApiError(405, f"Method {request.method} not allowed for /"), request_id_of(request))
    return HttpResponse(orjson.dumps({"name": "dragoman", "status": "ok", "api": "/v1/messages"}),
                        content_type="application/json")


async def healthz(request: HttpRequest) -> HttpResponse:
    """``{"status": "ok"}`` without a database query, so it answers while the database is down;
    with ``?verbose=1`` also this process's load and leak indicators (``status_verbose``) and the
    backends' health (``health_verbose``), for whoever may scrape ``/metrics`` (``operator_allowed``)."""
    body: dict[str, Any] = {"status": "ok"}
    if verbose_asked(request):
        if not await operator_allowed(request):
            return error_response(ApiError(401, f"/healthz?verbose=1 {OPERATOR_ONLY}"), request_id_of(request))
        body.update(status_verbose())
        body.update(health_verbose())
    return HttpResponse(orjson.dumps(body), content_type="application/json")


def health_verbose() -> dict[str, Any]:
    """This process's view of every backend it has sent to (``Health.report``: its own findings
    and the ejections other instances shared with it), without a query, so it answers while the
    database or Redis is down; the shared store itself is in the admin."""
    return {"backends": health.report(),
            "health_sync": {"running": health_sync.running, "failing": health_sync.failing}}


_RECORDER_COUNTERS = ("submitted", "persisted", "lost", "store_failed", "dropped", "skipped", "queued",
                      "last_error_at")


def status_verbose() -> dict[str, Any]:
    """Counts only, cheap, nothing secret: exchanges in flight (started, not finished), asyncio
    tasks on this loop, upstream connections per backend pool, the inspector's counters (its
    error text stays in the admin: it may name database hosts) and the resident memory."""
    stats = recorder.stats()
    return {
        "pid": os.getpid(),
        "in_flight": records_live.in_flight(),
        "asyncio_tasks": len(asyncio.all_tasks()),
        "upstream": pools.stats(),
        "recorder": {name: stats.get(name) for name in _RECORDER_COUNTERS},
        "rss_bytes": _rss_bytes(),
    }


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:  # Linux: pages
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


async def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(ApiError(404, f"Not found: {request.method} {request.path}"), request_id_of(request))


admin.site.site_header = "Dragoman"
admin.site.site_title = "Dragoman admin"
admin.site.index_title = "Gateway configuration and inspector"

urlpatterns = [
    path("", status),
    path("healthz", healthz),
    path("metrics", metrics_view),
    path("admin/", admin.site.urls),
    path("v1/", api.urls),
    re_path(r"^(?P<rest>.*)$", not_found),
]
