"""HTTP to backends: one pooled ``httpx.AsyncClient`` per backend version (``UpstreamPools``),
and the stand-in response that starts a client's stream before a slow backend answers. What a
failure means is each backend kind's (``gateway.backends``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from gateway.snapshot import BackendInfo
from gateway.upstream_pool import PooledTransport
from translation.errors import ApiError

# A transport for a backend's client (tests: an httpx.MockTransport), or None for the real pool.
TransportFactory = Callable[[BackendInfo], httpx.AsyncBaseTransport | None]
# A backend kind's mapping of a failing answer (status, body, headers) to the client's error.
Refusal = Callable[[int, bytes, httpx.Headers], ApiError]

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


class UpstreamPools:
    """One pooled client per backend version; an edited backend (a new ``updated``) gets a new
    pool, the old one closing when its streams finish. ``transport_factory`` puts another
    transport under every client (tests: ``transport_swapped``)."""

    def __init__(self, transport_factory: TransportFactory | None = None) -> None:
        self.transport_factory: TransportFactory = transport_factory or (lambda backend: None)
        self._clients: dict[tuple[int, float], httpx.AsyncClient] = {}
        self._names: dict[tuple[int, float], str] = {}  # the backend's name per pool, for stats()

    def client_for(self, backend: BackendInfo) -> httpx.AsyncClient:
        key = (backend.id, backend.updated)
        client = self._clients.get(key)
        if client is None:
            for old in [k for k in self._clients if k[0] == backend.id]:
                self._clients.pop(old)
                self._names.pop(old, None)
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
            client = BackendClient(
                transport=self.transport_factory(backend) or PooledTransport(limits=limits),
                timeout=httpx.Timeout(connect=backend.connect_timeout, read=backend.read_timeout,
                                      write=backend.read_timeout, pool=backend.connect_timeout),
                limits=limits,
                follow_redirects=False,
            )
            self._clients[key] = client
            self._names[key] = backend.name
        return client

    def reset(self) -> None:
        """Forget every pool (a new event loop, a test): the next call opens new ones."""
        self._clients.clear()
        self._names.clear()

    @contextmanager
    def transport_swapped(self, factory: TransportFactory) -> Iterator[None]:
        """``factory``'s transport under every client opened inside the block (fresh pools on
        entry and exit)."""
        saved = self.transport_factory
        self.reset()
        self.transport_factory = factory
        try:
            yield
        finally:
            self.transport_factory = saved
            self.reset()

    def stats(self) -> dict[str, dict[str, int]]:
        """Upstream connections per backend pool: open, and of those ``active`` (carrying a request
        or a response still being read; one left active after its request ended is a leak) and
        ``idle`` (kept alive for the next request). Pools under a test transport are left out."""
        stats = {}
        for key, client in list(self._clients.items()):
            pool = getattr(getattr(client, "_transport", None), "_pool", None)
            if not isinstance(pool, httpcore.AsyncConnectionPool):
                continue
            open_ = [c for c in pool.connections if not c.is_closed()]
            idle = sum(1 for c in open_ if c.is_idle())
            stats[self._names.get(key, str(key[0]))] = {"open": len(open_), "active": len(open_) - idle,
                                                         "idle": idle}
        return stats


# The process's pools (one event loop per process serves every request).
pools = UpstreamPools()


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

    def __init__(self, sending: asyncio.Task[httpx.Response], refusal: Refusal) -> None:
        self.sending = sending
        self.refusal = refusal
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
            raise UpstreamStatusError(self.refusal(upstream.status_code, body, upstream.headers))
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
                              refusal: Refusal, give_up: bool = False) -> tuple[httpx.Response, bool]:
    """Send a stream request and wait up to ``wait`` seconds for the response head.

    Returns ``(response, False)`` when it came in time (failures so far are raised here and
    become real HTTP errors, which SDKs retry). A backend still silent after ``wait`` seconds
    (a long prompt to prefill, a queue) gets ``(stand_in, True)``: a 200 event-stream response
    whose body waits for the real one, so the client's stream can start and ping meanwhile —
    clients, and proxies with idle timeouts between them and the gateway, see bytes. A failing
    status that arrives later raises ``UpstreamStatusError`` from the body (an ``event: error``),
    with the error ``refusal`` maps it to. With ``give_up`` (another target could still answer
    before the client sees a byte), a backend silent after ``wait`` is abandoned instead: a
    ``httpx.ReadTimeout``, which fails over.
    """
    sending = asyncio.ensure_future(send)
    try:
        await asyncio.wait({sending}, timeout=wait)
    except asyncio.CancelledError:  # the client left while we waited
        await _sending_abandon(sending)
        raise
    if sending.done():
        return sending.result(), False
    if give_up:
        await _sending_abandon(sending)
        raise httpx.ReadTimeout(f"no answer within {wait:.1f} s")
    body = _LateBody(sending, refusal)
    body.stand_in = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)
    return body.stand_in, True
