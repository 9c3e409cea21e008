"""Native Anthropic Messages backends (Anthropic, or any endpoint that speaks ``/v1/messages``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from gateway.backends.base import BackendAdapter, StreamTranslator, UpstreamCall
from gateway.snapshot import RouteInfo
from translation.anthropic import (
    ANTHROPIC_VERSION,
    AnthropicStreamRelay,
    beta_fields_drop,
    build_request,
    headers_build,
    translate_response,
)
from translation.errors import ApiError
from translation.notes import RewriteNote
from translation.schemas import MessagesRequest

# Anthropic's ``ErrorType`` values (anthropic-sdk-python ``types/shared/error_type.py``).
ANTHROPIC_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error", "rate_limit_error",
    "timeout_error", "overloaded_error", "api_error", "billing_error", "request_too_large",
})

# Fields Anthropic's count_tokens accepts (it answers 400 to max_tokens, stream, sampling ...).
_NATIVE_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
                        "context_management", "output_config", "output_format", "cache_control")


def anthropic_error(body: bytes) -> tuple[str, str] | None:
    """(type, message) of an Anthropic envelope ``{"type": "error", "error": {...}}``, else None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) and data.get("type") == "error" else None
    if not isinstance(error, dict) or error.get("type") not in ANTHROPIC_ERROR_TYPES:
        return None
    message = error.get("message")
    return error["type"], message if isinstance(message, str) and message else error["type"]


class AnthropicAdapter(BackendAdapter):
    kind = "anthropic"
    count_methods = frozenset({"native"})  # POST /v1/messages/count_tokens: a remote call, not before each request

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key} if api_key else {}

    def protocol_headers(self, route: RouteInfo,
                         client_headers: Mapping[str, str] | None) -> tuple[dict[str, str], list[RewriteNote]]:
        headers, notes = headers_build(client_headers, route.capabilities)
        headers.update(self.auth_headers(route.backend.api_key))
        return headers, notes

    def call_build(self, *, req: MessagesRequest, route: RouteInfo,
                   client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
        body, notes = build_request(req, route.capabilities, upstream_model=route.upstream_model or req.model)
        headers, header_notes = self.headers(route, stream=req.stream, client_headers=client_headers)
        header_notes += beta_fields_drop(body, client_headers, headers)
        return UpstreamCall(url=f"{route.backend.base_url}/messages", body=body, headers=headers,
                            notes=notes + header_notes)

    def response_translate(self, *, body: dict[str, Any], req: MessagesRequest, route: RouteInfo,
                           message_id: str) -> tuple[dict[str, Any], list[RewriteNote]]:
        return translate_response(body, route.capabilities, request=req, message_id=message_id)

    def stream_translator(self, *, req: MessagesRequest, route: RouteInfo, message_id: str,
                          input_tokens: int) -> StreamTranslator:
        return AnthropicStreamRelay(route.capabilities, request=req, message_id=message_id)

    def upstream_error(self, *, backend: str, status: int, body: bytes, headers: httpx.Headers) -> ApiError:
        """The backend's own error (its envelope) reaches the client unmodified, status and body
        bytes: Claude Code's gateway protocol reference (code.claude.com/docs/en/
        llm-gateway-protocol) asks for it, because Claude Code matches the wording to turn features
        off. 401/403 are the exception: they concern the gateway's credentials, not the client's.
        Anything else (a proxy's page, an unknown error type) is mapped as every kind's is."""
        envelope = anthropic_error(body) if status >= 400 and status not in (401, 403) else None
        if envelope is None:
            return super().upstream_error(backend=backend, status=status, body=body, headers=headers)
        error_type, message = envelope
        if status == 429 or status in (408, 503, 504, 529) or error_type in ("rate_limit_error", "overloaded_error"):
            source = "transient"
        else:
            source = "client" if 400 <= status < 500 else "backend"
        return ApiError(status, message, type=error_type, source=source, retry_after=headers.get("retry-after"),
                        body=body)

    async def tokens_count(self, method: str, call: UpstreamCall, route: RouteInfo) -> int | None:
        if method != "native":
            return await super().tokens_count(method, call, route)
        count_body: dict[str, object] = {k: call.body[k] for k in _NATIVE_COUNT_FIELDS if k in call.body}
        answer = await self.post_json(route, f"{call.url}/count_tokens", count_body, call.headers)
        value = answer.get("input_tokens") if isinstance(answer, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    def probe_headers(self, api_key: str) -> dict[str, str]:
        return {"anthropic-version": ANTHROPIC_VERSION, **self.auth_headers(api_key)}

    def probe_preset(self) -> tuple[str, str] | None:
        return "anthropic", ("kind is anthropic: preset anthropic (anthropic-no-prefill for models that "
                             "reject prefill, Claude 4.6 and later)")
