"""Native Anthropic Messages backends (Anthropic, or any endpoint that speaks ``/v1/messages``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.backends.base import BackendAdapter, StreamTranslator, UpstreamCall
from gateway.snapshot import RouteInfo
from translation.anthropic import (
    AnthropicStreamRelay,
    beta_fields_drop,
    build_request,
    headers_build,
    translate_response,
)
from translation.notes import RewriteNote
from translation.schemas import MessagesRequest


class AnthropicAdapter(BackendAdapter):
    kind = "anthropic"

    def protocol_headers(self, route: RouteInfo,
                         client_headers: Mapping[str, str] | None) -> tuple[dict[str, str], list[RewriteNote]]:
        headers, notes = headers_build(client_headers, route.capabilities)
        if route.backend.api_key:
            headers["x-api-key"] = route.backend.api_key
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
