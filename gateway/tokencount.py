"""``count_tokens``: the backend's own count wherever it can give one, else a conservative estimate.

Claude Code decides when to compact from this number, so an undercount is a bug: the backend
tokenizes exactly what it would be sent (the translated request, chat template included); when it
cannot (no tokenize endpoint, an error, a timeout, an empty or implausibly small count) the local
estimate of that same translated request, which errs high, answers and the exchange records why.
Never a 404: Claude Code would fall back to ``max_tokens: 1`` requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import orjson

from gateway.backends import adapter_for
from gateway.backends.base import UpstreamCall
from gateway.snapshot import RouteInfo
from gateway.upstream import client_for, upstream_error
from translation.errors import ApiError
from translation.jsonbytes import json_bytes
from translation.openai_chat.tokenize import (
    llamacpp_tokenize_body,
    tokenize_chat_body,
    tokenize_count,
)
from translation.schemas import CountTokensRequest, MessagesRequest
from translation.tokens import tokens_estimate, tokens_estimate_body, tokens_floor_body

# token_count methods where the backend tokenizes the translated request itself (cheap, local).
TOKENIZE_METHODS = ("chat_tokenize", "llamacpp_tokenize")

# A count is a small request: do not let a stuck backend hold the client for the read timeout.
COUNT_TIMEOUT_SECONDS = 15.0

# Fields Anthropic's count_tokens accepts (it answers 400 to max_tokens, stream, sampling ...).
_NATIVE_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
                        "context_management", "output_config", "output_format", "cache_control")


@dataclass(frozen=True, slots=True)
class TokenCount:
    input_tokens: int
    method: str  # "chat_tokenize", "llamacpp_tokenize", "native" or "estimate"
    exact: bool
    detail: str = ""


def server_root(base_url: str) -> str:
    """``http://host:8000/v1`` → ``http://host:8000`` (tokenize endpoints live beside /v1)."""
    return re.sub(r"/v1/?$", "", base_url.rstrip("/"))


def _as_messages_request(req: CountTokensRequest) -> MessagesRequest:
    return MessagesRequest.model_validate({**req.model_dump(exclude_unset=True), "max_tokens": 1})


async def _post_json(route: RouteInfo, url: str, body: dict[str, object],
                     headers: Mapping[str, str]) -> object:
    client = client_for(route.backend)
    resp = await client.post(url, content=json_bytes(body), headers=dict(headers),
                             timeout=min(COUNT_TIMEOUT_SECONDS, route.backend.read_timeout))
    if resp.status_code != 200:
        raise upstream_error(backend=route.backend.name, status=resp.status_code, body=resp.content,
                             headers=resp.headers)
    return orjson.loads(resp.content)


async def _chat_tokenize(call: UpstreamCall, route: RouteInfo) -> int | None:
    url = server_root(route.backend.base_url) + route.capabilities.tokenize_path
    return tokenize_count(await _post_json(route, url, tokenize_chat_body(call.body), call.headers))


async def _llamacpp_tokenize(call: UpstreamCall, route: RouteInfo) -> int | None:
    root = server_root(route.backend.base_url)
    rendered = await _post_json(route, root + "/apply-template", tokenize_chat_body(call.body), call.headers)
    prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
    if not isinstance(prompt, str):
        return None
    answer = await _post_json(route, root + route.capabilities.tokenize_path, llamacpp_tokenize_body(prompt),
                              call.headers)
    return tokenize_count(answer)


async def _native(call: UpstreamCall, route: RouteInfo) -> int | None:
    count_body: dict[str, object] = {k: call.body[k] for k in _NATIVE_COUNT_FIELDS if k in call.body}
    answer = await _post_json(route, f"{call.url}/count_tokens", count_body, call.headers)
    value = answer.get("input_tokens") if isinstance(answer, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


async def _backend_count(method: str, call: UpstreamCall, route: RouteInfo) -> int | None:
    if method == "native":
        return await _native(call, route)
    if method == "llamacpp_tokenize":
        return await _llamacpp_tokenize(call, route)
    return await _chat_tokenize(call, route)


async def tokens_count(req: CountTokensRequest, route: RouteInfo, *,
                       client_headers: Mapping[str, str] | None = None) -> TokenCount:
    method = route.capabilities.token_count
    adapter = adapter_for(route.backend)
    call: UpstreamCall | None = None
    try:
        # Exactly what the backend would be sent: the route's own translation, headers included.
        call = adapter.call_build(req=_as_messages_request(req), route=route, client_headers=client_headers)
        if method == "estimate":
            detail = "backend cannot count"
        else:
            count = await _backend_count(method, call, route)
            floor = tokens_floor_body(call.body, kind=adapter.kind)
            if count is not None and count >= floor:
                return TokenCount(count, method, exact=True)
            detail = (f"{method} answered without a count" if count is None else
                      f"{method} answered an implausible count ({count} tokens, at least {floor} expected)")
    except ApiError as exc:
        if method == "native" and exc.source == "client":
            raise  # Anthropic's own verdict on the request: the client must see it
        detail = f"{method} failed ({exc.status}: {exc.message[:200]})"
    except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
        detail = f"{method} failed ({type(exc).__name__})"
    # The translated request when there is one: it holds what the client's does not (prefill
    # rewrite, hoisted system text), and its template overhead is estimated.
    estimate = tokens_estimate(req) if call is None else tokens_estimate_body(call.body, kind=adapter.kind)
    return TokenCount(estimate, "estimate", exact=False, detail=detail)


async def upstream_call_count(call: UpstreamCall, route: RouteInfo) -> int | None:
    """The backend's exact count of the prompt of an upstream call already built (before it is
    sent), where ``token_count`` tokenizes through the backend; None where it cannot, or where its
    count is implausibly small (``tokens_floor_body``)."""
    method = route.capabilities.token_count
    if method not in TOKENIZE_METHODS:
        return None
    count = await _backend_count(method, call, route)
    floor = tokens_floor_body(call.body, kind=adapter_for(route.backend).kind)
    return count if count is not None and count >= floor else None
