"""The upstream pool's assignment pass (gateway/upstream_pool.py): an idle connection goes to one
request, and stays that request's until it has started on it — the next request gets another."""

from __future__ import annotations

import httpcore

from gateway.upstream_pool import LinearPool


class _IdleConnection(httpcore.AsyncConnectionInterface):
    """An open keep-alive connection with nothing on it (what a finished response leaves)."""

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return True

    def is_available(self) -> bool:
        return True

    def has_expired(self) -> bool:
        return False

    def is_idle(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False

    def info(self) -> str:
        return "idle"


def _queued(pool: LinearPool) -> httpcore._async.connection_pool.AsyncPoolRequest:
    request = httpcore._async.connection_pool.AsyncPoolRequest(
        httpcore.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    pool._requests.append(request)
    return request


async def test_a_connection_handed_to_a_request_is_not_handed_again_before_the_request_takes_it() -> None:
    pool = LinearPool(max_connections=None, max_keepalive_connections=200)
    idle = _IdleConnection()
    pool._connections = [idle]

    first = _queued(pool)
    assert pool._assign_requests_to_connections() == []
    assert first.connection is idle

    # The first request's task has not run yet: the connection still says it is idle.
    second = _queued(pool)
    pool._assign_requests_to_connections()
    assert second.connection is not None and second.connection is not idle
    assert len(pool._connections) == 2


async def test_the_connection_is_handed_out_again_once_its_request_is_done() -> None:
    pool = LinearPool(max_connections=None, max_keepalive_connections=200)
    idle = _IdleConnection()
    pool._connections = [idle]
    first = _queued(pool)
    pool._assign_requests_to_connections()
    pool._requests.remove(first)  # its response closed (httpcore's PoolByteStream.aclose)

    second = _queued(pool)
    pool._assign_requests_to_connections()
    assert second.connection is idle and pool._connections == [idle]
