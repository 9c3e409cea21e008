"""The one place an ``ApiError`` becomes bytes on the wire (Anthropic's error envelope)."""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse

from translation.errors import ApiError


def request_id_of(request: HttpRequest) -> str | None:
    return getattr(request, "request_id", None)


def error_response(error: ApiError, request_id: str | None) -> HttpResponse:
    content = error.body if error.body is not None else orjson.dumps(error.envelope(request_id))
    response = HttpResponse(content, status=error.status, content_type="application/json")
    if error.retry_after is not None:
        response["retry-after"] = error.retry_after
    if request_id:
        response["request-id"] = request_id
    return response
