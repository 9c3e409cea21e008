"""What a backend kind is: the adapter that builds its upstream call, sends it (streamed and
not), maps its failures to what a client sees, makes its stream translator, counts a prompt
through it and tells the probe how to ask it. The pipeline holds an adapter and never asks
which kind it is; adding a kind is one module in this package and one line in ``ADAPTERS``."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import orjson

from gateway.snapshot import RouteInfo
from gateway.tracing import upstream_headers
from gateway.upstream import UpstreamStatusError, pools, response_or_pending, stream_not_sse
from translation.backend_errors import backend_error_reclassify
from translation.errors import ApiError
from translation.events import StreamTranslator
from translation.jsonbytes import json_bytes
from translation.notes import RewriteNote
from translation.schemas import MessagesRequest
from translation.tokens import tokens_estimate_body, tokens_floor_body

# httpcore's trace hook (the ``trace`` request extension): event name and its details.
Trace = Callable[[str, dict[str, Any]], Awaitable[None]]

# A count is a small request: do not let a stuck backend hold the client for the read timeout.
COUNT_TIMEOUT_SECONDS = 15.0


@dataclass
class UpstreamCall:
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    notes: list[RewriteNote] = field(default_factory=list)


def error_detail(body: bytes) -> str:
    """The error text of a backend's answer: ``error.message`` of an OpenAI-style (or Anthropic)
    ``{"error": {...}}``, SGLang's ``detail``/``msg``, else the body's text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("msg")
            if isinstance(msg, str) and msg:
                return msg[:2000]
        if isinstance(err, str):
            return err[:2000]
    return str(data)[:500]


class BackendAdapter(abc.ABC):
    """One backend kind. Subclasses implement the abstract methods; the rest is shared."""

    kind: ClassVar[str]
    # ``token_count`` methods (translation.capabilities.TOKEN_COUNT_METHODS) this kind's backends
    # answer, and of those the ones cheap enough to run before every call (the context_window clamp).
    count_methods: ClassVar[frozenset[str]] = frozenset()
    prompt_count_methods: ClassVar[frozenset[str]] = frozenset()

    # -- the call ---------------------------------------------------------------------------

    @abc.abstractmethod
    def call_build(self, *, req: MessagesRequest, route: RouteInfo,
                   client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
        """The upstream request; ``client_headers`` are the client's request headers (for the
        kinds that forward some, such as ``anthropic-beta``)."""

    @abc.abstractmethod
    def response_translate(self, *, body: dict[str, Any], req: MessagesRequest, route: RouteInfo,
                           message_id: str) -> tuple[dict[str, Any], list[RewriteNote]]:
        """The backend's JSON answer as an Anthropic Message, with the rewrites it took."""

    @abc.abstractmethod
    def stream_translator(self, *, req: MessagesRequest, route: RouteInfo, message_id: str,
                          input_tokens: int) -> StreamTranslator:
        """The translator from this kind's stream chunks to Anthropic's events."""

    @abc.abstractmethod
    def auth_headers(self, api_key: str) -> dict[str, str]:
        """How this kind presents the backend's API key (none when it has none)."""

    def protocol_headers(self, route: RouteInfo,
                         client_headers: Mapping[str, str] | None) -> tuple[dict[str, str], list[RewriteNote]]:
        """Authentication and protocol headers of this kind (by default only the key)."""
        return self.auth_headers(route.backend.api_key), []

    def headers(self, route: RouteInfo, *, stream: bool,
                client_headers: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[RewriteNote]]:
        """Every header of an upstream call: JSON, the kind's protocol headers, the exchange's
        trace (W3C ``traceparent``, when tracing runs), the operator's extras."""
        protocol, notes = self.protocol_headers(route, client_headers)
        headers = {"content-type": "application/json", **protocol, **upstream_headers()}
        if stream:
            headers["accept"] = "text/event-stream"
        headers.update(route.capabilities.extra_headers)
        return headers, notes

    # -- sending ----------------------------------------------------------------------------

    async def send(self, call: UpstreamCall, route: RouteInfo, *, trace: Trace) -> httpx.Response:
        """POST a non-streamed call and read its whole answer; a transport failure is an ``ApiError``."""
        try:
            return await pools.client_for(route.backend).post(call.url, content=json_bytes(call.body),
                                                              headers=call.headers, extensions={"trace": trace})
        except httpx.HTTPError as exc:
            raise self.transport_error(backend=route.backend.name, exc=exc) from None

    async def stream_send(self, call: UpstreamCall, route: RouteInfo, *, trace: Trace,
                          wait: float, give_up: bool = False) -> tuple[httpx.Response, bool]:
        """POST a streamed call and wait up to ``wait`` seconds for its head (``response_or_pending``):
        ``(response, pending)``; a transport failure before the head is an ``ApiError`` (so is
        no head within ``wait`` when ``give_up``)."""
        client = pools.client_for(route.backend)
        request = client.build_request("POST", call.url, content=json_bytes(call.body), headers=call.headers,
                                       extensions={"trace": trace})
        name = route.backend.name
        try:
            return await response_or_pending(
                client.send(request, stream=True), wait=wait,
                refusal=lambda status, body, headers: self.upstream_error(backend=name, status=status, body=body,
                                                                          headers=headers), give_up=give_up)
        except httpx.HTTPError as exc:
            raise self.transport_error(backend=name, exc=exc) from None

    @staticmethod
    def stream_refused(resp: httpx.Response) -> bool:
        """A streamed call's answer that is not a stream: a failing status, or a page or JSON body."""
        return resp.status_code >= 300 or stream_not_sse(resp.headers)

    @staticmethod
    async def body_drain(resp: httpx.Response) -> bytes:
        """The rest of a streamed answer's body (empty if reading fails); the response is closed."""
        try:
            return await resp.aread()
        except httpx.HTTPError:
            return b""
        finally:
            await resp.aclose()

    @staticmethod
    def answer_json(resp: httpx.Response, route: RouteInfo) -> dict[str, Any]:
        """A non-streamed 2xx answer's JSON object."""
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise ApiError(500, f"backend {route.backend.name} returned a body that is not JSON",
                           source="backend") from None
        if not isinstance(body, dict):
            raise ApiError(500, f"backend {route.backend.name} returned JSON that is not an object",
                           source="backend")
        return body

    # -- failures ---------------------------------------------------------------------------

    def upstream_error(self, *, backend: str, status: int, body: bytes, headers: httpx.Headers) -> ApiError:
        """Map a non-2xx backend answer to what the client sees (map by status, not vendor
        strings), with status chosen so SDKs and Claude Code retry exactly when retrying can help."""
        if status < 300:  # a stream request answered with a page or a JSON body (stream_refused)
            content_type = headers.get("content-type", "")
            return ApiError(500, f"backend {backend} answered a stream request with {content_type}, not an "
                                 f"event stream: {error_detail(body)}", source="backend")
        detail = error_detail(body)
        if status in (400, 413, 422, 500):
            reclassified = backend_error_reclassify(detail)  # the client's request, worded as Anthropic does
            if reclassified is not None:
                if reclassified.message == detail:
                    reclassified.message = f"backend {backend} cannot serve this request: {detail}"
                return reclassified
        message = f"backend {backend} answered {status}: {detail}"
        if status == 429:
            return ApiError(429, message, source="transient", retry_after=headers.get("retry-after"))
        if status in (503, 529):
            return ApiError(529, message, type="overloaded_error", source="transient",
                            retry_after=headers.get("retry-after"))
        if status in (408, 504):
            return ApiError(504, message, type="timeout_error", source="transient")
        if status in (401, 403):
            # The backend refused *our* upstream key: an operator problem, not the client's key.
            return ApiError(500, f"backend {backend} refused the gateway's credentials ({status}); "
                                 "check the backend's API key", source="backend")
        if status == 404:
            return ApiError(404, message, source="backend")
        if status == 413:
            return ApiError(413, message, source="client")
        if 400 <= status < 500:
            return ApiError(400, message, source="client")
        return ApiError(500, message, type="api_error", source="backend")

    @staticmethod
    def transport_error(*, backend: str, exc: Exception) -> ApiError:
        """A failure below HTTP (timeouts, refused or dropped connections), or a failing status
        that arrived after the client's stream had started (``UpstreamStatusError``)."""
        if isinstance(exc, UpstreamStatusError):
            return exc.error
        if isinstance(exc, httpx.TimeoutException):
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout) else "read"
            return ApiError(504, f"backend {backend} timed out ({kind} timeout)", type="timeout_error",
                            source="transient")
        if isinstance(exc, httpx.RemoteProtocolError):
            return ApiError(500, f"backend {backend} closed the connection before the response was complete",
                            source="backend")
        if isinstance(exc, httpx.ConnectError):
            return ApiError(500, f"backend {backend} is unreachable: connection refused or failed",
                            source="transient")
        return ApiError(500, f"backend {backend} connection failed: {type(exc).__name__}", source="transient")

    # -- counting ---------------------------------------------------------------------------

    def tokens_estimate(self, body: dict[str, Any]) -> int:
        """The local estimate of an upstream body of this kind (it errs high)."""
        return tokens_estimate_body(body, kind=self.kind)

    def tokens_floor(self, body: dict[str, Any]) -> int:
        """The fewest tokens a real count of this body can be (below it a count is implausible)."""
        return tokens_floor_body(body, kind=self.kind)

    async def tokens_count(self, method: str, call: UpstreamCall, route: RouteInfo) -> int | None:
        """The backend's own count of ``call``'s prompt by ``method``: None when it answered
        without one; an ``ApiError`` when it failed or this kind has no such method."""
        raise ApiError(500, f"token_count {method} is not available for backend kind {self.kind}",
                       source="backend")

    def prompt_countable(self, route: RouteInfo) -> bool:
        """Whether ``prompt_count`` can count before a call (a cheap, exact count is configured)."""
        return route.capabilities.token_count in self.prompt_count_methods

    async def prompt_count(self, call: UpstreamCall, route: RouteInfo) -> int | None:
        """The backend's exact count of an upstream call already built (before it is sent), where
        ``token_count`` is a cheap method of this kind; None where it cannot, or where its count is
        implausibly small (``tokens_floor``)."""
        if not self.prompt_countable(route):
            return None
        count = await self.tokens_count(route.capabilities.token_count, call, route)
        return count if count is not None and count >= self.tokens_floor(call.body) else None

    async def post_json(self, route: RouteInfo, url: str, body: dict[str, object],
                        headers: Mapping[str, str]) -> object:
        """A small JSON request to the backend (a count), under ``COUNT_TIMEOUT_SECONDS``."""
        client = pools.client_for(route.backend)
        resp = await client.post(url, content=json_bytes(body), headers=dict(headers),
                                 timeout=min(COUNT_TIMEOUT_SECONDS, route.backend.read_timeout))
        if resp.status_code != 200:
            raise self.upstream_error(backend=route.backend.name, status=resp.status_code, body=resp.content,
                                      headers=resp.headers)
        return orjson.loads(resp.content)

    # -- probing (gateway.probe) ------------------------------------------------------------

    def probe_headers(self, api_key: str) -> dict[str, str]:
        """The headers the admin's probe sends with every GET."""
        return self.auth_headers(api_key)

    def probe_preset(self) -> tuple[str, str] | None:
        """A preset the kind alone implies, and the evidence line saying so; None when the
        probe must find out from the host or the server's own endpoints."""
        return None
