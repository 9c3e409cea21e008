"""POST /v1/messages/count_tokens (the counting itself: ``gateway.tokencount``), and the
inspector's replay of a stored one down the same path."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from gateway.exchange import Exchange
from gateway.pipeline.admission import admit, fail, handle
from gateway.pipeline.attempts import targets_planned
from gateway.snapshot import RouteInfo
from gateway.tokencount import tokens_count
from inspector.recorder import ExchangeRecord
from translation.errors import ApiError
from translation.schemas import CountTokensRequest, count_tokens_request_parse


async def count_tokens(request: HttpRequest) -> HttpResponseBase:
    return await handle(request, "count_tokens", _count_tokens_serve)


async def _count_tokens_serve(request: HttpRequest, exchange: Exchange) -> HttpResponseBase:
    req, route = await admit(request, exchange, count_tokens_request_parse)
    result = await _count(req, route, exchange, client_headers=request.headers)
    return HttpResponse(orjson.dumps(result), content_type="application/json")


async def _count(req: CountTokensRequest, route: RouteInfo, exchange: Exchange, *,
                 client_headers: Mapping[str, str] | None) -> dict[str, int]:
    # Counted by the target a message of this session would go to first (its tokenizer); a
    # count that fails falls back to the estimate, so there is nothing to fail over.
    target, reason = targets_planned(route, req, exchange)[0]
    exchange.attempt_started(target, reason)
    counted = await tokens_count(req, target.route, client_headers=client_headers)
    exchange.attempt_succeeded(lambda broke: None)
    result = {"input_tokens": counted.input_tokens}
    exchange.counted(result, {"input_tokens": counted.input_tokens,
                              "counted": "exact" if counted.exact else "estimate",
                              "method": counted.method, "detail": counted.detail})
    return result


async def count_tokens_replay(raw: bytes, route: RouteInfo, record: ExchangeRecord) -> None:
    """Count a stored count_tokens body (``raw``) again through ``route``, recording into
    ``record`` as ``messages_replay`` does. A body that does not parse raises its ``ApiError``
    and records nothing."""
    req = count_tokens_request_parse(raw)
    exchange = Exchange(record)
    exchange.replayed(route, model=req.model, stream=False)
    try:
        await _count(req, route, exchange, client_headers=exchange.client_headers)
    except ApiError as exc:
        fail(exchange, exc)
