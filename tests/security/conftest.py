"""Fixtures for the security tests.

``staff`` and ``api`` exist because nearly every test here either looks at admin pages as a
superuser or sends /v1 requests with a given key; ``key_make`` creates keys the way operators
do (through ``gateway.services``) and refreshes the in-process snapshot so requests see them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, Client

from gateway import snapshot
from gateway.ratelimit import limiter


@pytest.fixture
def staff(transactional_db: None) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    # The limiter is process-wide: buckets of one test's key id must not leak into the next.
    limiter.reset()
    yield
    limiter.reset()


@pytest.fixture
def key_make(gateway_setup: str) -> Callable[..., Awaitable[str]]:
    """``await key_make(name, **fields)``: a new key's secret (ApiKey fields set as given)."""
    from gateway.models import ApiKey
    from gateway.services import apikey_create

    def make(name: str, **fields: Any) -> str:
        key, secret = apikey_create(name=name)
        if fields:
            ApiKey.objects.filter(pk=key.pk).update(**fields)
        snapshot.snapshot_invalidate()
        return secret

    return sync_to_async(make)


async def api_post(body: Any, *, key: str | None, path: str = "/v1/messages", **headers: str) -> Any:
    if key is not None:
        headers["x-api-key"] = key
    return await AsyncClient().post(path, data=json.dumps(body), content_type="application/json",
                                    headers=headers)


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.content)
    assert body["type"] == "error", body
    error: dict[str, Any] = body["error"]
    return error
