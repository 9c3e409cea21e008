"""The upstream call of a message: built by the route's adapter, its output limit fitted to the
context window, and (not streamed) sent, answered and translated back."""

from __future__ import annotations

import asyncio

import httpx
import orjson
from django.http import HttpResponse

from gateway.backends import adapter_for
from gateway.backends.base import BackendAdapter, UpstreamCall
from gateway.exchange import Exchange
from gateway.ids import id_new
from gateway.snapshot import RouteInfo
from translation.errors import ApiError
from translation.jsonbytes import json_bytes
from translation.outputcap import message_capped
from translation.schemas import MessagesRequest

# The prompt count before a call (context_window clamp): a local tokenize is milliseconds; a
# backend slower than this is sent the request unclamped rather than keep the client waiting.
PROMPT_COUNT_TIMEOUT_SECONDS = 2.0


def upstream_prepare(req: MessagesRequest, route: RouteInfo, exchange: Exchange) -> tuple[BackendAdapter, UpstreamCall]:
    adapter = adapter_for(route.backend)
    # The masked copy is enough: adapters read only protocol headers (anthropic-version, -beta).
    call = adapter.call_build(req=req, route=route, client_headers=exchange.client_headers)
    exchange.upstream_prepared(call, route)
    return adapter, call


async def window_fit(adapter: BackendAdapter, call: UpstreamCall, route: RouteInfo, exchange: Exchange) -> int | None:
    """Clamp the output limit to what the prompt leaves of the model's context window.

    Only where both are known exactly: ``context_window`` set and a backend that tokenizes the
    translated request cheaply (the adapter's ``prompt_count``: ``chat_tokenize``,
    ``llamacpp_tokenize``). Returns the prompt count (it is also the exact ``message_start``
    input count), or None. A prompt that fills the window alone is answered as Anthropic does,
    400 "prompt is too long", before the backend is asked.
    """
    caps = route.capabilities
    if not caps.context_window or not adapter.prompt_countable(route):
        return None
    try:
        count = await asyncio.wait_for(adapter.prompt_count(call, route), PROMPT_COUNT_TIMEOUT_SECONDS)
    except (ApiError, httpx.HTTPError, orjson.JSONDecodeError, TimeoutError) as exc:
        exchange.note("context_window.count_failed", "max_tokens",
                      f"The prompt could not be counted ({type(exc).__name__}); max_tokens was sent unclamped.")
        return None
    if not count:
        return None
    room = caps.context_window - count - 1  # llama.cpp stops one short of the window (truncated)
    if room < 1:
        raise ApiError(400, f"prompt is too long: {count} tokens > {caps.context_window} maximum")
    field = caps.max_tokens_field
    asked = call.body.get(field)
    if isinstance(asked, int) and asked > room:
        call.body[field] = room
        exchange.note("max_tokens.context_window", field,
                      f"max_tokens {asked} does not fit: the prompt is {count} tokens of a "
                      f"{caps.context_window}-token context window; sent {room}.")
    return count


async def complete(req: MessagesRequest, route: RouteInfo, exchange: Exchange) -> HttpResponse:
    """A non-streamed message: one request, one answer, translated whole."""
    adapter, call = upstream_prepare(req, route, exchange)
    await window_fit(adapter, call, route, exchange)
    resp = await adapter.send(call, route, trace=exchange.trace)
    exchange.upstream_answered(resp.status_code, resp.content)
    if resp.status_code >= 300:
        raise adapter.upstream_error(backend=route.backend.name, status=resp.status_code, body=resp.content,
                                     headers=resp.headers)
    body = adapter.answer_json(resp, route)
    message, notes = adapter.response_translate(body=body, req=req, route=route, message_id=id_new("msg_"))
    message, notes = message_capped(message, notes, max_tokens=req.max_tokens)  # a backend ignoring max_tokens
    exchange.completed(message, notes, body)
    return HttpResponse(json_bytes(message), content_type="application/json")
