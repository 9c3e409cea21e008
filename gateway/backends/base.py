from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.snapshot import RouteInfo
from translation.events import StreamTranslator
from translation.notes import RewriteNote
from translation.schemas import MessagesRequest


@dataclass
class UpstreamCall:
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    notes: list[RewriteNote] = field(default_factory=list)


class BackendAdapter:
    """What differs between backend kinds: the request, the response and the stream shape."""

    kind: ClassVar[str]

    def call_build(self, *, req: MessagesRequest, route: RouteInfo,
                   client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
        """The upstream request; ``client_headers`` are the client's request headers (for the
        kinds that forward some, such as ``anthropic-beta``)."""
        raise NotImplementedError

    def response_translate(self, *, body: dict[str, Any], req: MessagesRequest, route: RouteInfo,
                           message_id: str) -> tuple[dict[str, Any], list[RewriteNote]]:
        raise NotImplementedError

    def stream_translator(self, *, req: MessagesRequest, route: RouteInfo, message_id: str,
                          input_tokens: int) -> StreamTranslator:
        raise NotImplementedError

    def protocol_headers(self, route: RouteInfo,
                         client_headers: Mapping[str, str] | None) -> tuple[dict[str, str], list[RewriteNote]]:
        """Authentication and protocol headers of this kind (OpenAI style: a bearer key)."""
        key = route.backend.api_key
        return ({"authorization": f"Bearer {key}"} if key else {}), []

    def headers(self, route: RouteInfo, *, stream: bool,
                client_headers: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[RewriteNote]]:
        """Every header of an upstream call: JSON, the kind's protocol headers, the operator's extras."""
        protocol, notes = self.protocol_headers(route, client_headers)
        headers = {"content-type": "application/json", **protocol}
        if stream:
            headers["accept"] = "text/event-stream"
        headers.update(route.capabilities.extra_headers)
        return headers, notes
