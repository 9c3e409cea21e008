"""The /v1 API. Views are thin: each calls one pipeline function.

Bodies are parsed by ``translation.schemas`` (for Anthropic-style error messages) and responses
are built by the pipeline, so the OpenAPI document at ``/v1/openapi.json`` is assembled here from
the same pydantic models: requests, every response status with its envelope, the event stream,
and the key header. ``tests/gateway/test_openapi_fuzz.py`` holds the gateway to it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase
from ninja import NinjaAPI, Query
from ninja.errors import HttpError, ValidationError
from ninja.openapi.schema import OpenAPISchema
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import pipeline
from gateway.errors import error_response, request_id_of
from translation.errors import ApiError
from translation.schemas import (
    STREAM_EVENTS,
    CountTokensRequest,
    CountTokensResponse,
    ErrorResponse,
    MessageResponse,
    MessagesRequest,
    ModelInfo,
    ModelList,
)

_MODELS: list[type[BaseModel]] = [MessagesRequest, CountTokensRequest, MessageResponse, CountTokensResponse,
                                  ModelInfo, ModelList, ErrorResponse, *STREAM_EVENTS.values()]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_REQUEST_ID = {"request-id": {"required": True, "description": "The inspector's id for this exchange",
                              "schema": {"type": "string", "pattern": "^req_"}}}

# What each failure means here (Anthropic's statuses, Anthropic docs, errors); "default" covers the rest
# (a native Anthropic backend's own 4xx passes through with its status).
_ERRORS: dict[int | str, str] = {
    400: "invalid_request_error: the body, a header or a parameter is wrong; the message names it",
    401: "authentication_error: missing, unknown or disabled API key",
    403: "permission_error: this key may not use the model",
    404: "not_found_error: no route for the model (or the backend answered 404)",
    413: "request_too_large: the body is over DRAGOMAN_MAX_BODY_BYTES",
    429: "rate_limit_error: the key's or the backend's rate limit; see retry-after",
    500: "api_error: the backend failed or is unreachable",
    504: "timeout_error: the backend timed out",
    529: "overloaded_error: the backend is overloaded",
    "default": "another status a native Anthropic backend answered, with its envelope",
}


def _errors(*statuses: int) -> dict[int | str, Any]:
    keys: list[int | str] = [*statuses, "default"]
    return {key: {"description": _ERRORS[key], "headers": _REQUEST_ID,
                  "content": {"application/json": {"schema": _ref(ErrorResponse)}}} for key in keys}


# One SSE event: its name and its JSON data (OpenAPI 3.2 ``itemSchema``; schemathesis reads it).
_SSE_EVENT = {"oneOf": [
    {"type": "object", "required": ["event", "data"],
     "properties": {"event": {"const": name},
                    "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref(model)}}}
    for name, model in STREAM_EVENTS.items()
]}


def _json_ok(model: type[BaseModel], description: str) -> dict[int | str, Any]:
    # int keys: ninja keys its default "200: OK" by int, and this must replace it
    return {200: {"description": description, "headers": _REQUEST_ID,
                    "content": {"application/json": {"schema": _ref(model)}}}}


def _operation(request_model: type[BaseModel] | None, responses: dict[int | str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {"responses": responses}
    if request_model is not None:
        extra["requestBody"] = {"required": True,
                                "content": {"application/json": {"schema": _ref(request_model)}}}
    return extra


_MESSAGES_OK = _json_ok(MessageResponse, "The message; with `stream: true`, Anthropic's event stream")
_MESSAGES_OK[200]["content"]["text/event-stream"] = {"itemSchema": _SSE_EVENT}


class GatewayApi(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None,
                           path_params: dict[str, Any] | None = None) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        _, defs = models_json_schema([(m, "validation") for m in _MODELS],
                                     ref_template="#/components/schemas/{model}")
        schema["components"]["schemas"].update(defs["$defs"])
        schema["components"]["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "Bearer": {"type": "http", "scheme": "bearer", "description": "The same key as a bearer token"},
        }
        return schema


api = GatewayApi(
    title="Dragoman",
    version="1",
    description="Anthropic Messages API gateway. Authenticate with x-api-key or Authorization: Bearer.",
    urls_namespace="v1",
    openapi_extra={"security": [{"ApiKey": []}, {"Bearer": []}]},
)


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


@api.post("/messages", summary="Create a Message", openapi_extra=_operation(
    MessagesRequest, {**_MESSAGES_OK, **_errors(400, 401, 403, 404, 413, 429, 500, 504, 529)}))
async def messages(request: HttpRequest) -> HttpResponseBase:
    return await pipeline.messages_create(request)


@api.post("/messages/count_tokens", summary="Count tokens in a Message", openapi_extra=_operation(
    CountTokensRequest, {**_json_ok(CountTokensResponse, "The number of input tokens"),
                         **_errors(400, 401, 403, 404, 413, 429, 500, 504, 529)}))
async def count_tokens(request: HttpRequest) -> HttpResponseBase:
    return await pipeline.count_tokens(request)


@api.get("/models", summary="List models",
         openapi_extra=_operation(None, {**_json_ok(ModelList, "Models this key may use"), **_errors(400, 401)}))
async def models(request: HttpRequest, limit: int = Query(20, ge=1, le=1000),
                 after_id: str | None = None, before_id: str | None = None) -> HttpResponseBase:
    return await pipeline.models_list(request, limit=limit, after_id=after_id, before_id=before_id)


@api.get("/models/{model_id}", summary="Get a model",
         openapi_extra=_operation(None, {**_json_ok(ModelInfo, "The model"), **_errors(401, 404)}))
async def model(request: HttpRequest, model_id: str) -> HttpResponseBase:
    return await pipeline.model_get(request, model_id=model_id)
