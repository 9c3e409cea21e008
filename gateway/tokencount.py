"""``count_tokens``: the backend's own count wherever it can give one, else a conservative estimate.

Claude Code decides when to compact from this number, so an undercount is a bug: the backend
tokenizes exactly what it would be sent (the translated request, chat template included); when it
cannot (no tokenize endpoint, an error, a timeout, an empty or implausibly small count) the local
estimate of that same translated request, which errs high, answers and the exchange records why.
Never a 404: Claude Code would fall back to ``max_tokens: 1`` requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import orjson

from gateway.backends import adapter_for
from gateway.backends.base import UpstreamCall
from gateway.snapshot import RouteInfo
from translation.errors import ApiError
from translation.schemas import CountTokensRequest, MessagesRequest
from translation.tokens import tokens_estimate


@dataclass(frozen=True, slots=True)
class TokenCount:
    input_tokens: int
    method: str  # "chat_tokenize", "llamacpp_tokenize", "native" or "estimate"
    exact: bool
    detail: str = ""


def _as_messages_request(req: CountTokensRequest) -> MessagesRequest:
    return MessagesRequest.model_validate({**req.model_dump(exclude_unset=True), "max_tokens": 1})


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
            count = await adapter.tokens_count(method, call, route)
            floor = adapter.tokens_floor(call.body)
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
    estimate = tokens_estimate(req) if call is None else adapter.tokens_estimate(call.body)
    return TokenCount(estimate, "estimate", exact=False, detail=detail)
