"""A stream chunk that is JSON but not an object (``data: 12``, ``data: null``) fails the
stream with an ``error`` event, as a chunk that is not JSON does: every backend kind's chunks are
objects, and a translator is only ever fed one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream
from tests.gateway.helpers import parse_sse, sse_response, user_request
from translation.validate import stream_validate

pytestmark = pytest.mark.django_db(transaction=True)

HEAD = b'data: {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n'


@pytest.mark.parametrize("data", [b"12", b"[1, 2]", b'"text"', b"null"])
async def test_a_chunk_that_is_json_but_not_an_object_fails_the_stream_with_an_error_event(
    gateway_setup: str, upstream: Upstream, recorded: Any, data: bytes
) -> None:
    upstream.handler = lambda request: sse_response(HEAD + b"data: " + data + b"\n\n")
    response = await AsyncClient().post("/v1/messages", data=json.dumps(user_request(stream=True)),
                                        content_type="application/json", headers={"x-api-key": KEY})
    events = [event for _, event in parse_sse(b"".join([part async for part in response.streaming_content]))]
    assert stream_validate(events) is None
    assert "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta") == "Hel"
    assert events[-1] == {"type": "error", "error": {
        "type": "api_error", "message": "backend vllm-test sent a stream chunk that is not a JSON object"}}
    [exchange] = await recorded()
    assert (exchange.status, exchange.error_message) == (200, events[-1]["error"]["message"])
