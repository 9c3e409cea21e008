"""POST /v1/messages/count_tokens (the counting itself: ``gateway.tokencount``)."""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from gateway.exchange import Exchange
from gateway.pipeline.admission import admit, handle
from gateway.tokencount import tokens_count
from translation.schemas import count_tokens_request_parse


async def count_tokens(request: HttpRequest) -> HttpResponseBase:
    return await handle(request, "count_tokens", _count_tokens_serve)


async def _count_tokens_serve(request: HttpRequest, exchange: Exchange) -> HttpResponseBase:
    req, route = await admit(request, exchange, count_tokens_request_parse)
    counted = await tokens_count(req, route, client_headers=request.headers)
    result = {"input_tokens": counted.input_tokens}
    exchange.counted(result, {"input_tokens": counted.input_tokens,
                              "counted": "exact" if counted.exact else "estimate",
                              "method": counted.method, "detail": counted.detail})
    return HttpResponse(orjson.dumps(result), content_type="application/json")
