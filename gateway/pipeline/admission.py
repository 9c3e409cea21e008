"""Admission: the body within its limit, the key, the rate limit, the schema, the route — in
that order, so each failure is the one a client should fix first — and the one place every
failure of a pipeline request becomes Anthropic's envelope and is recorded (``handle``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from gateway.errors import error_response
from gateway.exchange import Exchange
from gateway.ratelimit import ratelimit_acheck
from gateway.snapshot import KeyInfo, RouteInfo, Snapshot, snapshot_get
from translation.errors import ApiError
from translation.schemas import CountTokensRequest, MessagesRequest

log = logging.getLogger(__name__)

Parsed = TypeVar("Parsed", MessagesRequest, CountTokensRequest)
Serve = Callable[[HttpRequest, Exchange], Awaitable[HttpResponseBase]]


def body_limit() -> int:
    """The request body limit in bytes: DRAGOMAN_MAX_BODY_BYTES (and Django's own, if lower)."""
    return min(settings.MAX_BODY_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or settings.MAX_BODY_BYTES)


def body_wanted(declared: int) -> int:
    """How much of a body is read (here, and by the server: ``gateway.asgi_handler``): of one whose
    Content-Length (``declared``, 0 if none) is over the limit only its head, what the inspector
    keeps; of any other one byte past the limit, which shows a body without a length is over."""
    limit = body_limit()
    return settings.INSPECTOR_MAX_BODY_BYTES if declared > limit else limit + 1


def body_read(request: HttpRequest, exchange: Exchange) -> bytes:
    """The body, never more than the limit: a Content-Length over it is refused after its head, a
    body without one (chunked) is read one byte past it. Over the limit, the inspector keeps its head."""
    limit = body_limit()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, f"Content-Length must be a number, not {request.META['CONTENT_LENGTH']!r}") from None
    raw = request.read(body_wanted(declared))
    if declared > limit or len(raw) > limit:
        exchange.body_over_limit(raw, declared=declared, limit=limit)
        sent = f" ({declared} bytes)" if declared else ""
        raise ApiError(413, f"Request body{sent} is larger than the limit of {limit} bytes: send less, "
                            "e.g. fewer or smaller images or documents")
    exchange.body_received(raw, presented=lambda: keys_presented(request))
    content_type = request.headers.get("content-type", "application/json")
    if "json" not in content_type.lower():
        raise ApiError(400, f"Content-Type must be application/json, not {content_type!r}")
    return raw


def keys_presented(request: HttpRequest) -> list[str]:
    """The keys a client sent: ``x-api-key`` and ``Authorization: Bearer`` (Claude Code may send both)."""
    presented = []
    if x_api_key := request.headers.get("x-api-key"):
        presented.append(x_api_key.strip())
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        presented.append(auth[7:].strip())
    return presented


def key_authenticate(request: HttpRequest, snap: Snapshot) -> KeyInfo:
    """The enabled key among those presented (compared by hash in constant time), else 401."""
    presented = keys_presented(request)
    if not presented:
        raise ApiError(401, "Missing API key: send it in the x-api-key header (or Authorization: Bearer)")
    for candidate in presented:
        key = snap.key_find(candidate)
        if key is not None:
            if not key.enabled:
                raise ApiError(401, "This API key is disabled")
            return key
    raise ApiError(401, "Invalid API key")


def route_for(snap: Snapshot, model: str, key: KeyInfo) -> RouteInfo:
    route = snap.route_resolve(model)
    if route is None:
        names = [r.pattern for r in snap.routes][:20]
        raise ApiError(404, f"model: no route for {model!r}. Routable models: {', '.join(names) or '(none)'}")
    if not key.allows(model):
        raise ApiError(403, f"This API key may not use model {model!r}")
    return route


async def admit(request: HttpRequest, exchange: Exchange,
                parse: Callable[[bytes], Parsed]) -> tuple[Parsed, RouteInfo]:
    """Body, key, rate limit, schema, route."""
    raw = body_read(request, exchange)
    snap = await snapshot_get()
    exchange.keys_presented(keys_presented(request))
    key = key_authenticate(request, snap)
    exchange.authenticated(key)
    await ratelimit_acheck(key_id=key.id, per_minute=key.rate_limit_per_minute)
    req = parse(raw)
    exchange.parsed(req.model)
    route = route_for(snap, req.model, key)
    exchange.admitted(route, model=req.model, stream=bool(getattr(req, "stream", False)))  # live tail
    return req, route


async def handle(request: HttpRequest, endpoint: str, serve: Serve) -> HttpResponseBase:
    """Run ``serve``; every failure becomes the Anthropic envelope and is recorded, never a 500 page."""
    exchange = Exchange.start(request, endpoint)
    try:
        return await serve(request, exchange)
    except asyncio.CancelledError:
        # Django cancels the view when the client disconnects (e.g. an SDK timing out on a slow
        # first byte); the upstream call is abandoned with it.
        exchange.client_left()
        raise
    except ApiError as exc:
        return fail(exchange, exc)
    except Exception:
        log.exception("unexpected error in request %s", exchange.id)
        return fail(exchange, ApiError(500, "Internal error in the gateway; the request id identifies it in "
                                            "the inspector", source="backend"))


def fail(exchange: Exchange, error: ApiError) -> HttpResponse:
    """The client's error response for ``error``, recorded (secrets a backend echoed masked)."""
    return error_response(exchange.failed(error), exchange.id)
