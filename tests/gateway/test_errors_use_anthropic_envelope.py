"""Every failure is Anthropic's error envelope with the status Anthropic uses, and a request-id."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream
from tests.gateway.helpers import user_request

pytestmark = pytest.mark.django_db(transaction=True)


def assert_envelope(response: Any, status: int, error_type: str, contains: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["content-type"].startswith("application/json")
    body: dict[str, Any] = json.loads(response.content)
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert contains.lower() in body["error"]["message"].lower()
    assert body["request_id"].startswith("req_")
    assert response["request-id"] == body["request_id"]
    return body


async def post(client: AsyncClient, body: Any, key: str | None = KEY, **headers: str) -> Any:
    if key is not None:
        headers["x-api-key"] = key
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return await client.post("/v1/messages", data=data, content_type="application/json", headers=headers)


async def test_unknown_path_is_a_404_envelope(gateway_setup: str) -> None:
    response = await AsyncClient().get("/v1/nothing-here")
    assert_envelope(response, 404, "not_found_error", "/v1/nothing-here")
    response = await AsyncClient().get("/wp-login.php")
    assert_envelope(response, 404, "not_found_error")


async def test_wrong_method_is_a_405_envelope(gateway_setup: str) -> None:
    response = await AsyncClient().get("/v1/messages")
    assert_envelope(response, 405, "invalid_request_error", "GET")


async def test_invalid_json_is_a_400_that_says_so(gateway_setup: str) -> None:
    assert_envelope(await post(AsyncClient(), "{not json"), 400, "invalid_request_error", "not valid JSON")


async def test_non_object_body_is_a_400(gateway_setup: str) -> None:
    assert_envelope(await post(AsyncClient(), "[1, 2]"), 400, "invalid_request_error", "JSON object")


async def test_schema_violation_names_the_field(gateway_setup: str) -> None:
    body = user_request(max_tokens="lots")
    assert_envelope(await post(AsyncClient(), body), 400, "invalid_request_error", "max_tokens")
    body = user_request(messages=[])
    assert_envelope(await post(AsyncClient(), body), 400, "invalid_request_error", "messages")
    body = user_request(messages=[{"role": "user", "content": [{"type": "hologram"}]}])
    assert_envelope(await post(AsyncClient(), body), 400, "invalid_request_error", "hologram")


async def test_unknown_role_gets_the_message_claude_code_retries_on(gateway_setup: str) -> None:
    body = user_request(messages=[{"role": "ctx", "content": "x"}, {"role": "user", "content": "hi"}])
    response = await post(AsyncClient(), body)
    error = assert_envelope(response, 400, "invalid_request_error")
    assert "Unexpected role" in error["error"]["message"]
    assert "input message role" in error["error"]["message"]


async def test_missing_key_is_401(gateway_setup: str) -> None:
    assert_envelope(await post(AsyncClient(), user_request(), key=None), 401, "authentication_error", "missing")


async def test_unknown_key_is_401(gateway_setup: str) -> None:
    assert_envelope(await post(AsyncClient(), user_request(), key="dgm_wrong"), 401, "authentication_error")


async def test_disabled_key_is_401(gateway_setup: str) -> None:
    from gateway.models import ApiKey

    await ApiKey.objects.filter(name="tester").aupdate(enabled=False)
    from gateway import snapshot

    snapshot.snapshot_invalidate()
    assert_envelope(await post(AsyncClient(), user_request()), 401, "authentication_error", "disabled")


async def test_key_limited_to_other_models_is_403(gateway_setup: str) -> None:
    from gateway import snapshot
    from gateway.models import ApiKey

    await ApiKey.objects.filter(name="tester").aupdate(allowed_models="claude-*haiku*")
    snapshot.snapshot_invalidate()
    assert_envelope(await post(AsyncClient(), user_request()), 403, "permission_error", "test-model")


async def test_unknown_model_is_404_listing_routable_models(gateway_setup: str) -> None:
    response = await post(AsyncClient(), user_request(model="gpt-nothing"))
    assert_envelope(response, 404, "not_found_error", "test-model")


async def test_body_over_the_limit_is_413(gateway_setup: str, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = user_request(messages=[{"role": "user", "content": "x" * 5000}])
    assert_envelope(await post(AsyncClient(), body), 413, "request_too_large")


async def test_wrong_content_type_is_400(gateway_setup: str) -> None:
    response = await AsyncClient().post("/v1/messages", data="model=x", content_type="text/plain",
                                        headers={"x-api-key": KEY})
    assert_envelope(response, 400, "invalid_request_error", "Content-Type")


@pytest.mark.parametrize(
    ("status", "headers", "want_status", "want_type"),
    [
        (429, {"retry-after": "7"}, 429, "rate_limit_error"),
        (503, {}, 529, "overloaded_error"),
        (529, {}, 529, "overloaded_error"),
        (500, {}, 500, "api_error"),
        (502, {}, 500, "api_error"),
        (504, {}, 504, "timeout_error"),
        (400, {}, 400, "invalid_request_error"),
        (401, {}, 500, "api_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_failures_before_streaming_map_to_anthropic_statuses(
    gateway_setup: str, upstream: Upstream, status: int, headers: dict[str, str], want_status: int,
    want_type: str, stream: bool,
) -> None:
    upstream.handler = lambda request: httpx.Response(
        status, json={"error": {"message": "upstream says no", "type": "x"}}, headers=headers)
    response = await post(AsyncClient(), user_request(stream=stream))
    body = assert_envelope(response, want_status, want_type)
    if status not in (401,):
        assert "upstream says no" in body["error"]["message"]
    if status == 429:
        assert response["retry-after"] == "7"


async def test_unreachable_backend_is_a_retryable_500(gateway_setup: str, upstream: Upstream) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    upstream.handler = refuse
    assert_envelope(await post(AsyncClient(), user_request()), 500, "api_error", "unreachable")


async def test_backend_timeout_is_504(gateway_setup: str, upstream: Upstream) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    upstream.handler = slow
    assert_envelope(await post(AsyncClient(), user_request()), 504, "timeout_error", "timed out")


async def test_backend_garbage_body_is_500_not_a_crash(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, content=b"<html>oops</html>")
    assert_envelope(await post(AsyncClient(), user_request()), 500, "api_error", "not JSON")


async def test_errors_are_recorded_by_the_inspector(gateway_setup: str, recorded: Any) -> None:
    response = await post(AsyncClient(), "{broken")
    [exchange] = await recorded()
    assert exchange.id == response["request-id"]
    assert exchange.status == 400
    assert exchange.error_type == "invalid_request_error"
    assert exchange.client_request["body_text"] == "{broken"
    assert exchange.client_request["headers"]["X-Api-Key"].startswith("***")
    assert KEY not in json.dumps(exchange.client_request)
