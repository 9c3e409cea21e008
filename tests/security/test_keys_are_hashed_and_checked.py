"""Client keys: stored as a hash and a prefix only, compared in constant time; disabled keys are
401, model-limited keys 403 on other models, and /v1/models shows a key only what it may use."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from gateway import snapshot
from gateway.models import ApiKey
from gateway.services import apikey_create
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, user_request
from tests.security.conftest import api_post, error_of

pytestmark = pytest.mark.django_db(transaction=True)

KeyMake = Callable[..., Awaitable[str]]


def test_a_key_row_holds_its_hash_and_prefix_never_the_secret() -> None:
    key, secret = apikey_create(name="laptop")
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert row["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(row["prefix"]) and len(row["prefix"]) < len(secret) // 2
    assert not any(secret in str(value) for value in row.values())


async def test_the_presented_key_is_compared_with_hmac_compare_digest(
        gateway_setup: str, upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(snapshot.hmac, "compare_digest", spy)
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion())
    assert (await api_post(user_request(), key=KEY)).status_code == 200
    stored = snapshot.key_hash(KEY)
    assert (stored, stored) in calls


async def test_a_wrong_key_with_the_right_prefix_is_refused(gateway_setup: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(snapshot.hmac, "compare_digest", spy)
    forged = KEY[: snapshot.KEY_PREFIX_LEN] + "x" * (len(KEY) - snapshot.KEY_PREFIX_LEN)
    response = await api_post(user_request(), key=forged)
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"
    # The candidate sharing the prefix was checked, by hash, in constant time.
    assert calls == [(snapshot.key_hash(KEY), snapshot.key_hash(forged))]
    assert (await api_post(user_request(), key=KEY[:-1])).status_code == 401
    assert (await api_post(user_request(), key=KEY + "x")).status_code == 401


async def test_a_disabled_key_is_401_on_every_endpoint(key_make: KeyMake) -> None:
    secret = await key_make("off", enabled=False)
    for response in (
        await api_post(user_request(), key=secret),
        await api_post({"model": "test-model", "messages": [{"role": "user", "content": "hi"}]},
                       key=secret, path="/v1/messages/count_tokens"),
        await AsyncClient().get("/v1/models", headers={"x-api-key": secret}),
        await AsyncClient().get("/v1/models/test-model", headers={"authorization": f"Bearer {secret}"}),
    ):
        assert response.status_code == 401, response.content
        assert "disabled" in error_of(response)["message"]


async def test_a_model_limited_key_gets_403_elsewhere_and_200_on_its_models(
        key_make: KeyMake, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion())
    secret = await key_make("haiku-only", allowed_models="claude-*haiku*")
    refused = await api_post(user_request(model="test-model"), key=secret)
    assert refused.status_code == 403
    assert error_of(refused)["type"] == "permission_error"
    allowed = await api_post(user_request(model="claude-3-5-haiku-latest"), key=secret)
    assert allowed.status_code == 200, allowed.content
    assert len(upstream.requests) == 1  # the refused request never reached the backend


async def test_models_lists_only_what_the_key_may_use(key_make: KeyMake) -> None:
    from gateway.models import Backend, Route

    backend = await Backend.objects.aget(name="vllm-test")
    for name in ("claude-3-5-haiku-latest", "claude-sonnet-4-5", "qwen-coder"):
        await Route.objects.acreate(model=name, backend=backend, order=5)
    snapshot.snapshot_invalidate()
    limited = await key_make("limited", allowed_models="claude-*haiku*\nqwen-*")

    async def listed(key: str) -> list[str]:
        response = await AsyncClient().get("/v1/models?limit=100", headers={"x-api-key": key})
        assert response.status_code == 200, response.content
        return [m["id"] for m in json.loads(response.content)["data"]]

    assert await listed(limited) == ["claude-3-5-haiku-latest", "qwen-coder"]
    assert set(await listed(KEY)) == {"claude-3-5-haiku-latest", "claude-sonnet-4-5", "qwen-coder", "test-model"}
    hidden = await AsyncClient().get("/v1/models/claude-sonnet-4-5", headers={"x-api-key": limited})
    assert hidden.status_code == 404 and error_of(hidden)["type"] == "not_found_error"
    shown = await AsyncClient().get("/v1/models/qwen-coder", headers={"x-api-key": limited})
    assert shown.status_code == 200 and json.loads(shown.content)["id"] == "qwen-coder"



async def test_last_use_is_written_by_the_inspector_writer_in_batches_not_per_request(
        gateway_setup: str, upstream: Upstream, monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    import threading

    from asgiref.sync import sync_to_async

    from gateway import services
    from inspector.recorder import recorder

    touched: list[tuple[str, set[int]]] = []
    real = services.apikeys_touch

    def spy(*, key_ids: Any) -> None:
        touched.append((threading.current_thread().name, set(key_ids)))
        real(key_ids=key_ids)

    monkeypatch.setattr(services, "apikeys_touch", spy)
    settings.INSPECTOR_FLUSH_SECONDS = 1.0  # the five requests below land in one or two batches
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion())
    for _ in range(5):
        assert (await api_post(user_request(), key=KEY)).status_code == 200
    assert await sync_to_async(recorder.flush)(10)
    key = await ApiKey.objects.aget(name="tester")
    assert key.last_used_at is not None
    assert touched and {thread for thread, _ in touched} == {"inspector-writer"}
    assert len(touched) < 5 and all(ids == {key.pk} for _, ids in touched)
