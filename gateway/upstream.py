"""HTTP to backends: one pooled ``httpx.AsyncClient`` per backend version, and the mapping of
every upstream failure to the ``ApiError`` a client should see (status chosen so SDKs and
Claude Code retry exactly when retrying can help)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson

from gateway.snapshot import BackendInfo
from translation.errors import ApiError

# Tests swap this to put an httpx.MockTransport under every backend client.
TransportFactory = Callable[[BackendInfo], httpx.AsyncBaseTransport | None]
transport_factory: TransportFactory = lambda backend: None  # noqa: E731

_clients: dict[tuple[int, float], httpx.AsyncClient] = {}


def client_for(backend: BackendInfo) -> httpx.AsyncClient:
    key = (backend.id, backend.updated)
    client = _clients.get(key)
    if client is None:
        for old in [k for k in _clients if k[0] == backend.id]:
            # An edited backend gets a new pool; the old one closes when its streams finish.
            _clients.pop(old)
        client = httpx.AsyncClient(
            transport=transport_factory(backend),
            timeout=httpx.Timeout(connect=backend.connect_timeout, read=backend.read_timeout,
                                  write=backend.read_timeout, pool=backend.connect_timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=200),
            follow_redirects=False,
        )
        _clients[key] = client
    return client


def clients_reset() -> None:
    _clients.clear()


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

    A native Anthropic backend's own error (its envelope) reaches the client with Anthropic's
    type and message unchanged, except for 401/403, which concern the gateway's credentials.
    """
    anthropic = _anthropic_error(body) if status not in (401, 403) else None
    if anthropic is not None:
        error_type, message = anthropic
        retry_after = headers.get("retry-after")
        if status == 429 or error_type == "rate_limit_error":
            return ApiError(429, message, type=error_type, source="transient", retry_after=retry_after)
        if status in (503, 529) or error_type == "overloaded_error":
            return ApiError(529, message, type="overloaded_error", source="transient", retry_after=retry_after)
        if status in (408, 504):
            return ApiError(504, message, type=error_type, source="transient")
        if 400 <= status < 500:
            return ApiError(status, message, type=error_type, source="client")
        return ApiError(500, message, type=error_type, source="backend")
    message = f"backend {backend} answered {status}: {_upstream_message(body)}"
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


def transport_error(*, backend: str, exc: Exception) -> ApiError:
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
