"""Async-only middleware for the gateway.

``RequestIdMiddleware`` gives every request an id (the inspector Exchange id), puts it on the
response as ``request-id``, turns any non-JSON error page (unknown path, wrong method, body
too large, an unexpected exception) into Anthropic's envelope, and records every ``/v1/``
failure the pipeline did not (404, 405, ``/v1/models`` errors) so the inspector has them all.

``AdminOnlyMiddleware`` runs Django's session/auth/CSRF/messages middleware only off ``/v1/``:
those are sync middleware that cost two thread hops per request under ASGI, and the API
authenticates with keys, not sessions. ``/metrics`` and ``/healthz?verbose=1`` take the session
too (a staff member may read them in a browser); a scraper's bearer token needs no query.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.module_loading import import_string

from gateway.errors import error_response
from gateway.ids import id_new
from gateway.metrics import verbose_asked
from gateway.observe import exchange_observed
from inspector.recorder import ExchangeRecord, recorder
from translation.errors import ApiError
from translation.masking import headers_mask, key_hint

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
        if (response.status_code >= 400 and request.path.startswith("/v1/")
                and not getattr(request, "exchange_recorded", False)):
            _failure_record(request, response, request_id)
        return response


def _failure_record(request: HttpRequest, response: HttpResponseBase, request_id: str) -> None:
    """An Exchange for a failure that never reached the pipeline (which records its own)."""
    from gateway.pipeline import keys_presented  # late: the pipeline pulls in models and backends

    record = ExchangeRecord(id=request_id, endpoint=request.path[4:44] or "v1", capture=settings.INSPECTOR_CAPTURE)
    record.client_request = {"method": request.method, "path": request.get_full_path(),
                             "headers": headers_mask(request.headers)}
    try:
        record.client_request["body_raw"] = request.body
    except Exception:  # over the size limit, or already read: the headers are still worth keeping
        record.client_request["body_unread"] = True
    presented = keys_presented(request)
    record.secrets.extend(presented)
    record.key_hint = key_hint(presented[0]) if presented else ""
    record.status = response.status_code
    if isinstance(response, HttpResponse):
        record.client_response = {"status": response.status_code, "body_raw": bytes(response.content)}
    if isinstance(response, HttpResponse):
        try:
            error = orjson.loads(response.content)["error"]
            record.error_type, record.error_message = str(error["type"]), str(error["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
    record.mark("finished")
    exchange_observed(record)
    recorder.submit(record)


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
        if _is_api(request) and not (request.path == "/healthz" and verbose_asked(request)):
            response: HttpResponseBase = await self.direct(request)
            return response
        response = await self.admin_chain(request)
        return response
