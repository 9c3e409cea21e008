from __future__ import annotations

import json

import pytest
from django.test import AsyncClient

from tests.conftest import KEY

pytestmark = pytest.mark.django_db(transaction=True)


async def test_root_answers_get_and_head() -> None:
    client = AsyncClient()
    response = await client.get("/")
    assert response.status_code == 200
    assert json.loads(response.content)["status"] == "ok"
    assert response["request-id"].startswith("req_")
    assert (await client.head("/")).status_code == 200


async def test_healthz_is_ok() -> None:
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


async def test_models_lists_exact_route_names_in_anthropic_shape(gateway_setup: str) -> None:
    response = await AsyncClient().get("/v1/models", headers={"x-api-key": KEY})
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["has_more"] is False
    assert [m["id"] for m in body["data"]] == ["test-model"]  # the glob route is not a model id
    model = body["data"][0]
    assert model["type"] == "model"
    assert model["display_name"] == "test-model"
    assert model["created_at"].endswith("Z")
    assert body["first_id"] == body["last_id"] == "test-model"


async def test_models_pages_with_limit_and_after_id(gateway_setup: str) -> None:
    from gateway import snapshot
    from gateway.models import Backend, Route

    backend = await Backend.objects.aget(name="vllm-test")
    for name in ("m-a", "m-b", "m-c"):
        await Route.objects.acreate(model=name, backend=backend)
    snapshot.snapshot_invalidate()
    client = AsyncClient()
    first = json.loads((await client.get("/v1/models?limit=2", headers={"x-api-key": KEY})).content)
    assert [m["id"] for m in first["data"]] == ["test-model", "m-a"]
    assert first["has_more"] is True
    second = json.loads((await client.get(f"/v1/models?limit=2&after_id={first['last_id']}",
                                          headers={"x-api-key": KEY})).content)
    assert [m["id"] for m in second["data"]] == ["m-b", "m-c"]
    assert second["has_more"] is False


async def test_model_get_resolves_globs(gateway_setup: str) -> None:
    response = await AsyncClient().get("/v1/models/claude-haiku-4-5", headers={"x-api-key": KEY})
    assert response.status_code == 200
    assert json.loads(response.content)["id"] == "claude-haiku-4-5"
    missing = await AsyncClient().get("/v1/models/gpt-x", headers={"x-api-key": KEY})
    assert missing.status_code == 404


async def test_models_needs_a_key(gateway_setup: str) -> None:
    response = await AsyncClient().get("/v1/models")
    assert response.status_code == 401
    assert json.loads(response.content)["error"]["type"] == "authentication_error"


async def test_count_tokens_estimates_and_never_404s(gateway_setup: str) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello " * 100}]}
    response = await AsyncClient().post("/v1/messages/count_tokens?beta=true", data=json.dumps(body),
                                        content_type="application/json", headers={"x-api-key": KEY})
    assert response.status_code == 200
    count = json.loads(response.content)["input_tokens"]
    assert count >= 100  # "hello " is one token; an undercount would make Claude Code compact late
