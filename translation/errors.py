"""The one application error type, shared by the translators and the gateway.

It is rendered to the wire in exactly one place (``gateway.errors``) as Anthropic's envelope
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``.
"""

from __future__ import annotations

# HTTP status -> Anthropic error type (Anthropic docs, "Errors"; anthropic-sdk-python
# ``types/shared/error_type.py``).
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


class ApiError(Exception):
    """A failure with the HTTP status and Anthropic error type the client must see.

    ``source`` says whose failure it is: ``"client"`` (fix the request), ``"backend"`` (the
    upstream refused or broke) or ``"transient"`` (retrying may help); the inspector records it.
    ``body``: a native Anthropic backend's own error body, sent to the client byte for byte
    instead of the envelope (Claude Code matches its wording to turn features off).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        source: str = "client",
        retry_after: str | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or error_type_for(status)
        self.source = source
        self.retry_after = retry_after
        self.body = body

    def envelope(self, request_id: str | None = None) -> dict[str, object]:
        body: dict[str, object] = {
            "type": "error",
            "error": {"type": self.type, "message": self.message},
        }
        if request_id is not None:
            body["request_id"] = request_id
        return body

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.type!r}, {self.message!r})"


def invalid_request(message: str) -> ApiError:
    return ApiError(400, message)
