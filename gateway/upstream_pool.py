"""The connection pool under every backend's ``httpx.AsyncClient``: httpcore's, with a linear
assignment pass.

httpcore 1.0's ``AsyncConnectionPool._assign_requests_to_connections`` runs twice per request
(when it is queued and when its response closes). It is O(N²) in the pool's connections (a
list over every connection for each idle one) and probes every idle socket for readability
(an anyio attribute lookup and a ``poll`` call each). With 100 streams in flight that pass was
half of the gateway's CPU (docs/performance.md). The same fix is upstream in pydantic's httpx2
(PRs 974 and 1075) and proposed for httpcore (encode/httpcore#1035).

This pass is O(N + M): one walk over the connections, one over the queued requests; an idle
connection is handed to one request only, in this pass and the next ones until that request has
started on it; and idle sockets are probed on a sweep at most every ``SWEEP_SECONDS``, and
always just before one is reused. Behaviour is otherwise httpcore's: keep-alive expiry, the
keep-alive limit (oldest idle connections close first), ``max_connections`` (an idle connection
closes to make room).

A connection handed to a request stays idle until the request's task runs and takes it; httpcore's
pass (and this one, before) gave it again to every request that arrived meanwhile, all but one of
which then failed on it (``ConnectionNotAvailable``) and went round again, and again, all picking
the same first idle connection. At 100 streams a request went round 7 times at the median, 49 at
the 99th percentile: most of the time to first token and of its tail (docs/performance.md,
"Profile").
"""

from __future__ import annotations

import time

import httpcore
import httpx

SWEEP_SECONDS = 1.0


class LinearPool(httpcore.AsyncConnectionPool):
    _next_sweep = 0.0

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + SWEEP_SECONDS
        live: list[httpcore.AsyncConnectionInterface] = []
        idle: list[httpcore.AsyncConnectionInterface] = []
        # Handed out and not yet taken (HTTP/1.1: one request per connection); a request leaves
        # ``_requests`` when its response closes.
        handed = {id(r.connection) for r in self._requests if r.connection is not None}
        for connection in self._connections:
            if connection.is_closed():
                continue
            if id(connection) not in handed and connection.is_idle():
                if sweep and connection.has_expired():
                    closing.append(connection)
                    continue
                idle.append(connection)
            live.append(connection)
        surplus = len(idle) - self._max_keepalive_connections
        if surplus > 0:  # the oldest idle connections go first, as in httpcore
            dropped = {id(c) for c in idle[:surplus]}
            closing.extend(idle[:surplus])
            idle = idle[surplus:]
            live = [c for c in live if id(c) not in dropped]
        self._connections = live

        queued = [request for request in self._requests if request.is_queued()]
        if not queued:
            return closing
        available = [c for c in idle if c.is_available()]
        for pool_request in queued:
            origin = pool_request.request.url.origin
            chosen = next((c for c in available if c.can_handle_request(origin)), None)
            while chosen is not None and chosen.is_idle() and chosen.has_expired():
                # The server closed it while it sat idle: the probe the sweep skipped.
                available.remove(chosen)
                live.remove(chosen)
                closing.append(chosen)
                chosen = next((c for c in available if c.can_handle_request(origin)), None)
            if chosen is not None:
                available.remove(chosen)  # HTTP/1.1: one request per connection
            else:
                if len(live) >= self._max_connections:
                    # Make room: close an idle connection not handed out in this pass.
                    spare = next((c for c in available if c.is_idle()), None)
                    if spare is None:
                        continue  # stays queued until a connection frees up
                    live.remove(spare)
                    available.remove(spare)
                    closing.append(spare)
                chosen = self.create_connection(origin)
                live.append(chosen)
            pool_request.assign_to_connection(chosen)
        return closing


class PooledTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with ``LinearPool`` under it (HTTP/1.1, verified TLS, as httpx's defaults)."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        self._pool = LinearPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
        )
