"""POST /v1/messages, and the inspector's replay of a stored one down the same path."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase

from gateway.exchange import Exchange
from gateway.pipeline.admission import admit, fail, handle
from gateway.pipeline.attempts import attempts_run
from gateway.pipeline.complete import complete
from gateway.pipeline.relay import stream_open
from gateway.snapshot import RouteInfo
from inspector.recorder import ExchangeRecord
from translation.errors import ApiError
from translation.schemas import MessagesRequest, messages_request_parse


async def messages_create(request: HttpRequest) -> HttpResponseBase:
    return await handle(request, "messages", _messages_serve)


async def _messages_serve(request: HttpRequest, exchange: Exchange) -> HttpResponseBase:
    req, route = await admit(request, exchange, messages_request_parse)
    exchange.streaming(req.stream)
    return await _message_send(req, route, exchange)


async def _message_send(req: MessagesRequest, route: RouteInfo, exchange: Exchange) -> HttpResponseBase:
    if req.stream:
        return await attempts_run(req, route, exchange, stream_open)
    return await attempts_run(req, route, exchange, complete)


async def messages_replay(raw: bytes, route: RouteInfo, record: ExchangeRecord) -> None:
    """Send a stored request body (``raw``) again through ``route``, recording into ``record``
    (the caller fills its id, capture, key name and client request): translation, upstream
    call, stream relay (run to its end) and every failure recorded exactly as for a client's
    request. A body that does not parse raises its ``ApiError`` and records nothing."""
    req = messages_request_parse(raw)
    exchange = Exchange(record)
    exchange.replayed(route, model=req.model, stream=req.stream)
    try:
        response = await _message_send(req, route, exchange)
        if req.stream:
            async for _ in response:  # type: ignore[attr-defined]
                pass
    except ApiError as exc:
        fail(exchange, exc)
