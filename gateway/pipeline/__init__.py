"""One request, end to end: admit (body, key, rate limit, schema, route), translate, call the
backend through its adapter (``gateway.backends``), translate back, record (``gateway.exchange``).
The views in ``gateway.api`` call exactly one function here.

    admission   body limit, key, rate limit, parse, route; every failure's envelope (``handle``)
    complete    the upstream call's preparation, the context-window fit, the non-streamed call
    relay       the streamed call: opening it, relaying its events (``StreamRelay``)
    pings       the upstream chunks read ahead, with pings while the backend is silent
    messages    POST /v1/messages, and ``messages_replay`` for the inspector
    counting    POST /v1/messages/count_tokens
    listing     GET /v1/models, /v1/models/{id}
"""

from __future__ import annotations

from django.http import HttpResponseBase

from gateway.exchange import Exchange, records_live
from gateway.pipeline.admission import fail, key_authenticate, keys_presented, route_for
from gateway.pipeline.complete import complete
from gateway.pipeline.counting import count_tokens
from gateway.pipeline.listing import model_get, models_list
from gateway.pipeline.messages import messages_create, messages_replay
from gateway.pipeline.relay import stream_open
from gateway.snapshot import RouteInfo
from inspector.recorder import ExchangeRecord
from translation.errors import ApiError
from translation.schemas import MessagesRequest

__all__ = ["count_tokens", "key_authenticate", "keys_presented", "messages_create", "messages_replay",
           "model_get", "models_list", "records_live", "route_for"]


# -- until inspector.views calls messages_replay (then delete these three) ---------------------

async def _stream_open(req: MessagesRequest, route: RouteInfo, record: ExchangeRecord) -> HttpResponseBase:
    return await stream_open(req, route, Exchange(record))


async def _complete(req: MessagesRequest, route: RouteInfo, record: ExchangeRecord) -> HttpResponseBase:
    return await complete(req, route, Exchange(record))


def _fail(record: ExchangeRecord, error: ApiError) -> HttpResponseBase:
    return fail(Exchange(record), error)
