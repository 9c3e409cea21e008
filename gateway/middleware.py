"""Async-only middleware for the gateway.

``RequestIdMiddleware`` gives every request an id (the inspector Exchange id), puts it on the
response as ``request-id`` and turns any non-JSON error page (unknown path, wrong method, body
too large, an unexpected exception) into Anthropic's envelope.

``AdminOnlyMiddleware`` runs Django's session/auth/CSRF/messages middleware only off ``/v1/``:
those are sync middleware that cost two thread hops per request under ASGI, and the API
authenticates with keys, not sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string

from gateway.errors import error_response
from gateway.ids import id_new
from translation.errors import ApiError

log = logging.getLogger(__name__)

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

_GENERIC_MESSAGES = {
    404: "Not found: {method} {path}",
    405: "Method {method} not allowed for {path}",
    413: "Request body too large",
    500: "Internal server error",
}


def _is_api(request: HttpRequest) -> bool:
    path = request.path
    return path.startswith("/v1/") or path in ("/", "/healthz", "/v1")


class RequestIdMiddleware:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        if iscoroutinefunction(self):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = id_new("req_")
        request.request_id = request_id  # type: ignore[attr-defined]
        # Exceptions never reach here: Django turns them into responses below each middleware,
        # so error pages are rewritten after the fact.
        response = await self.get_response(request)
        if (
            response.status_code >= 400
            and _is_api(request)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            template = _GENERIC_MESSAGES.get(response.status_code, "Request failed")
            message = template.format(method=request.method, path=request.path)
            response = error_response(ApiError(response.status_code, message), request_id)
        response["request-id"] = request_id
        return response


class AdminOnlyMiddleware:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response: GetResponse) -> None:
        self.direct = get_response
        chain: Any = get_response
        for path in reversed(settings.ADMIN_MIDDLEWARE):
            chain = import_string(path)(chain)
        self.admin_chain = chain
        if iscoroutinefunction(self):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if _is_api(request):
            response: HttpResponseBase = await self.direct(request)
            return response
        response = await self.admin_chain(request)
        return response
