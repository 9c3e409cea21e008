"""``count_tokens``: the backend's own count wherever it can give one, else a conservative estimate.

Claude Code decides when to compact from this number, so an undercount is a bug: the backend
tokenizes exactly what it would be sent (the translated request, chat template included); when it
cannot (no tokenize endpoint, an error, a timeout) the local estimate, which errs high, answers and
the exchange records why. Never a 404: Claude Code would fall back to ``max_tokens: 1`` requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import orjson

from gateway.snapshot import RouteInfo
from gateway.upstream import client_for, upstream_error
from translation import anthropic as anthropic_translation
from translation.errors import ApiError
from translation.jsonbytes import json_bytes
from translation.openai_chat import build_request as chat_build_request
from translation.openai_chat.tokenize import (
    apply_template_body,
    llamacpp_tokenize_body,
    tokenize_chat_body,
    tokenize_count,
)
from translation.schemas import CountTokensRequest, MessagesRequest
from translation.tokens import tokens_estimate

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


def _chat_headers(route: RouteInfo) -> dict[str, str]:
    headers = {"content-type": "application/json", **route.capabilities.extra_headers}
    if route.backend.api_key:
        headers["authorization"] = f"Bearer {route.backend.api_key}"
    return headers


async def _chat_tokenize(req: MessagesRequest, route: RouteInfo) -> int | None:
    body, _ = chat_build_request(req, route.capabilities, upstream_model=route.upstream_model or req.model,
                                 backend_name=route.backend.name)
    url = server_root(route.backend.base_url) + route.capabilities.tokenize_path
    return tokenize_count(await _post_json(route, url, tokenize_chat_body(body), _chat_headers(route)))


async def _llamacpp_tokenize(req: MessagesRequest, route: RouteInfo) -> int | None:
    body, _ = chat_build_request(req, route.capabilities, upstream_model=route.upstream_model or req.model,
                                 backend_name=route.backend.name)
    root = server_root(route.backend.base_url)
    rendered = await _post_json(route, root + "/apply-template", apply_template_body(body), _chat_headers(route))
    prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
    if not isinstance(prompt, str):
        return None
    answer = await _post_json(route, root + route.capabilities.tokenize_path, llamacpp_tokenize_body(prompt),
                              _chat_headers(route))
    return tokenize_count(answer)


async def _native(req: MessagesRequest, route: RouteInfo, client_headers: Mapping[str, str] | None) -> int | None:
    caps = route.capabilities
    body, _ = anthropic_translation.build_request(req, caps, upstream_model=route.upstream_model or req.model)
    protocol_headers, _ = anthropic_translation.headers_build(client_headers, caps)
    headers = {"content-type": "application/json", **protocol_headers, **caps.extra_headers}
    if route.backend.api_key:
        headers["x-api-key"] = route.backend.api_key
    count_body: dict[str, object] = {k: body[k] for k in _NATIVE_COUNT_FIELDS if k in body}
    answer = await _post_json(route, f"{route.backend.base_url}/messages/count_tokens", count_body, headers)
    value = answer.get("input_tokens") if isinstance(answer, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


async def tokens_count(req: CountTokensRequest, route: RouteInfo, *,
                       client_headers: Mapping[str, str] | None = None) -> TokenCount:
    method = route.capabilities.token_count
    if method == "estimate":
        return TokenCount(tokens_estimate(req), "estimate", exact=False, detail="backend cannot count")
    messages_req = _as_messages_request(req)
    try:
        if method == "native":
            count = await _native(messages_req, route, client_headers)
        elif method == "llamacpp_tokenize":
            count = await _llamacpp_tokenize(messages_req, route)
        else:
            count = await _chat_tokenize(messages_req, route)
    except ApiError as exc:
        if method == "native" and exc.source == "client":
            raise  # Anthropic's own verdict on the request: the client must see it
        detail = f"{method} failed ({exc.status}: {exc.message[:200]})"
    except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
        detail = f"{method} failed ({type(exc).__name__})"
    else:
        if count is not None:
            return TokenCount(count, method, exact=True)
        detail = f"{method} answered without a count"
    return TokenCount(tokens_estimate(req), "estimate", exact=False, detail=detail)
