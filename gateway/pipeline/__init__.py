"""One request, end to end: admit (body, key, rate limit, schema, route), translate, call the
backend through its adapter (``gateway.backends``), translate back, record (``gateway.exchange``).
The views in ``gateway.api`` call exactly one function here.

    admission   body limit, key, rate limit, parse, route; every failure's envelope (``handle``)
    complete    the upstream call's preparation, the context-window fit, the non-streamed call
    relay       the streamed call: opening it, relaying its events (``StreamRelay``)
    pings       the upstream chunks read ahead, with pings while the backend is silent
    messages    POST /v1/messages, and ``messages_replay`` for the inspector
    counting    POST /v1/messages/count_tokens, and ``count_tokens_replay``
    listing     GET /v1/models, /v1/models/{id}
"""

from __future__ import annotations

from gateway.exchange import records_live
from gateway.pipeline.admission import key_authenticate, keys_presented, route_for
from gateway.pipeline.counting import count_tokens, count_tokens_replay
from gateway.pipeline.listing import model_get, models_list
from gateway.pipeline.messages import messages_create, messages_replay

__all__ = ["count_tokens", "count_tokens_replay", "key_authenticate", "keys_presented", "messages_create", "messages_replay",
           "model_get", "models_list", "records_live", "route_for"]

