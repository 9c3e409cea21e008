"""HTTP to backends: one pooled ``httpx.AsyncClient`` per backend version, and the mapping of
every upstream failure to the ``ApiError`` a client should see (status chosen so SDKs and
Claude Code retry exactly when retrying can help)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpcore
import httpx
import orjson

from gateway.snapshot import BackendInfo
from gateway.upstream_pool import PooledTransport
from translation.backend_errors import backend_error_reclassify
from translation.errors import ApiError

# Tests swap this to put an httpx.MockTransport under every backend client.
TransportFactory = Callable[[BackendInfo], httpx.AsyncBaseTransport | None]
transport_factory: TransportFactory = lambda backend: None  # noqa: E731

_clients: dict[tuple[int, float], httpx.AsyncClient] = {}
_names: dict[tuple[int, float], str] = {}  # the backend's name per pool, for pools_stats()


class _NoCookies(httpx.Cookies):
    """A jar that never stores: one client serves every user of a backend, so a cookie one
    response sets (a load balancer's sticky session, a login) must never ride on another user's
    request. It also skips httpx's per-response cookie parsing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


_NO_COOKIES = _NoCookies()


class BackendClient(httpx.AsyncClient):
    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise AttributeError("backend clients keep no cookies")


def client_for(backend: BackendInfo) -> httpx.AsyncClient:
    key = (backend.id, backend.updated)
    client = _clients.get(key)
    if client is None:
        for old in [k for k in _clients if k[0] == backend.id]:
            # An edited backend gets a new pool; the old one closes when its streams finish.
            _clients.pop(old)
            _names.pop(old, None)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
        client = BackendClient(
            transport=transport_factory(backend) or PooledTransport(limits=limits),
            timeout=httpx.Timeout(connect=backend.connect_timeout, read=backend.read_timeout,
                                  write=backend.read_timeout, pool=backend.connect_timeout),
            limits=limits,
            follow_redirects=False,
        )
        _clients[key] = client
        _names[key] = backend.name
    return client


def clients_reset() -> None:
    _clients.clear()
    _names.clear()


def pools_stats() -> dict[str, dict[str, int]]:
    """Upstream connections per backend pool: open, and of those ``active`` (carrying a request
    or a response still being read; one left active after its request ended is a leak) and
    ``idle`` (kept alive for the next request). Pools under a test transport are left out."""
    stats = {}
    for key, client in list(_clients.items()):
        pool = getattr(getattr(client, "_transport", None), "_pool", None)
        if not isinstance(pool, httpcore.AsyncConnectionPool):
            continue
        open_ = [c for c in pool.connections if not c.is_closed()]
        idle = sum(1 for c in open_ if c.is_idle())
        stats[_names.get(key, str(key[0]))] = {"open": len(open_), "active": len(open_) - idle, "idle": idle}
    return stats


def _upstream_message(body: bytes) -> str:
    """The error text from an OpenAI-style ``{"error": {...}}`` or SGLang-style body."""
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


# Anthropic's ``ErrorType`` values (anthropic-sdk-python ``types/shared/error_type.py``).
ANTHROPIC_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error", "rate_limit_error",
    "timeout_error", "overloaded_error", "api_error", "billing_error", "request_too_large",
})


def _anthropic_error(body: bytes) -> tuple[str, str] | None:
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


def upstream_error(*, backend: str, status: int, body: bytes, headers: httpx.Headers) -> ApiError:
    """Map a non-2xx backend answer to what the client sees (map by status, not vendor strings).

    A native Anthropic backend's own error (its envelope) reaches the client unmodified, status
    and body bytes: Claude Code's gateway protocol reference (code.claude.com/docs/en/
    llm-gateway-protocol) asks for it, because Claude Code matches the wording to turn features
    off. 401/403 are the exception: they concern the gateway's credentials, not the client's.
    """
    anthropic = _anthropic_error(body) if status >= 400 and status not in (401, 403) else None
    if anthropic is not None:
        error_type, message = anthropic
        if status == 429 or status in (408, 503, 504, 529) or error_type in ("rate_limit_error", "overloaded_error"):
            source = "transient"
        else:
            source = "client" if 400 <= status < 500 else "backend"
        return ApiError(status, message, type=error_type, source=source, retry_after=headers.get("retry-after"),
                        body=body)
    if status < 300:  # a stream request answered with a page or a JSON body (stream_not_sse)
        content_type = headers.get("content-type", "")
        return ApiError(500, f"backend {backend} answered a stream request with {content_type}, not an event "
                             f"stream: {_upstream_message(body)}", source="backend")
    detail = _upstream_message(body)
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


def stream_not_sse(headers: httpx.Headers) -> bool:
    """A 200 to a stream request that cannot be an event stream: an HTML page (a proxy's error
    page) or a JSON body. It fails as an HTTP error before the client's stream starts, so SDKs
    retry it; other or missing content types are read as SSE (some servers label it loosely)."""
    content_type = headers.get("content-type", "").lower()
    return "html" in content_type or "json" in content_type


class UpstreamStatusError(httpx.HTTPError):
    """A failing status that arrived after the client's stream had started (``response_or_pending``)."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


class _LateBody(httpx.AsyncByteStream):
    """The body of a stand-in response: waits for the real one, then passes its bytes through."""

    def __init__(self, sending: asyncio.Task[httpx.Response], backend: str) -> None:
        self.sending = sending
        self.backend = backend
        self.stand_in: httpx.Response | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        upstream = await self.sending
        if self.stand_in is not None:
            self.stand_in.status_code = upstream.status_code
        if upstream.status_code >= 300 or stream_not_sse(upstream.headers):
            try:
                body = await upstream.aread()
            except httpx.HTTPError:
                body = b""
            raise UpstreamStatusError(upstream_error(backend=self.backend, status=upstream.status_code,
                                                     body=body, headers=upstream.headers))
        async for chunk in upstream.aiter_bytes():
            yield chunk

    async def aclose(self) -> None:
        await _sending_abandon(self.sending)


async def _sending_abandon(sending: asyncio.Task[httpx.Response]) -> None:
    """Stop waiting for a response; close it if it came."""
    sending.cancel()
    await asyncio.wait({sending})
    if not sending.cancelled() and sending.exception() is None:
        await sending.result().aclose()


async def response_or_pending(send: Coroutine[Any, Any, httpx.Response], *, wait: float,
                              backend: str) -> tuple[httpx.Response, bool]:
    """Send a stream request and wait up to ``wait`` seconds for the response head.

    Returns ``(response, False)`` when it came in time (failures so far are raised here and
    become real HTTP errors, which SDKs retry). A backend still silent after ``wait`` seconds
    (a long prompt to prefill, a queue) gets ``(stand_in, True)``: a 200 event-stream response
    whose body waits for the real one, so the client's stream can start and ping meanwhile —
    clients, and proxies with idle timeouts between them and the gateway, see bytes. A failing
    status that arrives later raises ``UpstreamStatusError`` from the body (an ``event: error``).
    """
    sending = asyncio.ensure_future(send)
    try:
        await asyncio.wait({sending}, timeout=wait)
    except asyncio.CancelledError:  # the client left while we waited
        await _sending_abandon(sending)
        raise
    if sending.done():
        return sending.result(), False
    body = _LateBody(sending, backend)
    body.stand_in = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)
    return body.stand_in, True


def transport_error(*, backend: str, exc: Exception) -> ApiError:
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
