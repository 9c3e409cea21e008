"""OpenAI Responses API backends (OpenAI, vLLM's ``/v1/responses``, LM Studio, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.backends.base import BackendAdapter, StreamTranslator, UpstreamCall
from gateway.snapshot import RouteInfo
from translation.notes import RewriteNote
from translation.openai_responses import ResponsesStreamTranslator, build_request, translate_response
from translation.schemas import MessagesRequest


class OpenAIResponsesAdapter(BackendAdapter):
    kind = "openai_responses"

    def call_build(self, *, req: MessagesRequest, route: RouteInfo,
                   client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
        body, notes = build_request(req, route.capabilities, upstream_model=route.upstream_model or req.model,
                                    backend_name=route.backend.name)
        headers, _ = self.headers(route, stream=req.stream)
        return UpstreamCall(url=f"{route.backend.base_url}/responses", body=body, headers=headers, notes=notes)

    def response_translate(self, *, body: dict[str, Any], req: MessagesRequest, route: RouteInfo,
                           message_id: str) -> tuple[dict[str, Any], list[RewriteNote]]:
        return translate_response(body, route.capabilities, request=req, message_id=message_id)

    def stream_translator(self, *, req: MessagesRequest, route: RouteInfo, message_id: str,
                          input_tokens: int) -> StreamTranslator:
        return ResponsesStreamTranslator(route.capabilities, request=req, message_id=message_id,
                                         input_tokens_estimate=input_tokens)
