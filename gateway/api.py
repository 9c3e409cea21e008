"""The /v1 API. Views are thin: each calls one pipeline function (STYLE.md §1)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from gateway import pipeline
from gateway.errors import error_response, request_id_of
from translation.errors import ApiError
from translation.schemas import CountTokensRequest, MessagesRequest

api = NinjaAPI(
    title="Dragoman",
    version="1",
    description="Anthropic Messages API gateway. Authenticate with x-api-key or Authorization: Bearer.",
    urls_namespace="v1",
)


def _body_schema(model: type[Any]) -> dict[str, Any]:
    # The body is parsed by translation.schemas (for Anthropic-style error messages), so the
    # OpenAPI document gets the same pydantic schema by hand.
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": model.model_json_schema()}}}}


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponseBase:
    return error_response(exc, request_id_of(request))


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponseBase:
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
    return error_response(ApiError(400, f"{where}: {first.get('msg', 'invalid value')}"), request_id_of(request))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponseBase:
    return error_response(ApiError(exc.status_code, str(exc)), request_id_of(request))


@api.post("/messages", openapi_extra=_body_schema(MessagesRequest), summary="Create a Message")
async def messages(request: HttpRequest) -> HttpResponseBase:
    return await pipeline.messages_create(request)


@api.post("/messages/count_tokens", openapi_extra=_body_schema(CountTokensRequest),
          summary="Count tokens in a Message")
async def count_tokens(request: HttpRequest) -> HttpResponseBase:
    return await pipeline.count_tokens(request)


@api.get("/models", summary="List models")
async def models(request: HttpRequest, limit: int = 20, after_id: str | None = None,
                 before_id: str | None = None) -> HttpResponseBase:
    return await pipeline.models_list(request, limit=limit, after_id=after_id, before_id=before_id)


@api.get("/models/{model_id}", summary="Get a model")
async def model(request: HttpRequest, model_id: str) -> HttpResponseBase:
    return await pipeline.model_get(request, model_id=model_id)
