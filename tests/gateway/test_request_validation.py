"""Sampling values outside Anthropic's ranges (temperature and top_p 0.0-1.0, top_k ≥ 0) and a
negative max_tokens are the client's 400, naming the field; they never reach the backend, and the
inspector keeps them like any other bad input. Values on the edges of the ranges pass.

``max_tokens: 0`` stays valid: Anthropic documents it as a prompt-cache pre-warm (anthropic-sdk-python
2.x ``message_create_params.py``: "Set to `0` to populate the prompt cache without generating a
response")."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, user_request

pytestmark = pytest.mark.django_db(transaction=True)


async def post(body: dict[str, Any], endpoint: str = "/v1/messages") -> Any:
    return await AsyncClient().post(endpoint, data=json.dumps(body), content_type="application/json",
                                    headers={"x-api-key": KEY})


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("temperature", 5, "temperature: Input should be less than or equal to 1"),
    ("temperature", 1.01, "temperature: Input should be less than or equal to 1"),
    ("temperature", -0.1, "temperature: Input should be greater than or equal to 0"),
    ("top_p", 1.5, "top_p: Input should be less than or equal to 1"),
    ("top_p", -1, "top_p: Input should be greater than or equal to 0"),
    ("top_k", -1, "top_k: Input should be greater than or equal to 0"),
    ("max_tokens", -1, "max_tokens: Input should be greater than or equal to 0"),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_out_of_range_value_is_a_400_naming_the_field_and_never_reaches_the_backend(
        gateway_setup: str, upstream: Upstream, recorded: Any, field: str, value: float, fragment: str,
        stream: bool) -> None:
    body = user_request(stream=stream, **{field: value})
    response = await post(body)
    assert response.status_code == 400
    envelope = json.loads(response.content)
    assert envelope["error"] == {"type": "invalid_request_error", "message": fragment}
    assert upstream.requests == []
    [exchange] = await recorded()
    assert exchange.id == response["request-id"]
    assert (exchange.status, exchange.error_type, exchange.error_message) == (400, "invalid_request_error", fragment)
    assert exchange.client_request["body"] == body


@pytest.mark.parametrize("edges", [
    {"temperature": 0, "top_p": 0, "top_k": 0},
    {"temperature": 1, "top_p": 1, "top_k": 500},
    {"temperature": 0.7},
])
async def test_values_on_the_edges_of_the_ranges_reach_the_backend(gateway_setup: str, upstream: Upstream,
                                                                   edges: dict[str, float]) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await post(user_request(**edges))
    assert response.status_code == 200, response.content
    [sent] = upstream.bodies()
    for name, value in edges.items():
        assert sent[name] == value


async def test_max_tokens_zero_is_accepted_as_anthropic_documents_it(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion(""))
    response = await post(user_request(max_tokens=0))
    assert response.status_code == 200, response.content
    assert upstream.bodies()[0]["max_tokens"] == 0

