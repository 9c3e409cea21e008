"""Integers beyond 64 bits in tool inputs survive every hop exactly (orjson cannot encode them)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream
from tests.gateway.helpers import parse_sse, sse_chunks, sse_response

pytestmark = pytest.mark.django_db(transaction=True)

BIG = 123456789012345678901234567890
CALL = {"id": "call_1", "type": "function", "function": {"name": "Store", "arguments": f'{{"n": {BIG}}}'}}


async def post(body: dict[str, Any]) -> Any:
    return await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                    headers={"x-api-key": KEY})


def request(stream: bool) -> dict[str, Any]:
    return {"model": "test-model", "max_tokens": 50, "stream": stream, "messages": [
        {"role": "user", "content": "store it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Store", "input": {"n": BIG}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
    ]}


async def test_a_big_integer_from_the_client_reaches_the_backend_exactly(gateway_setup: str,
                                                                          upstream: Upstream) -> None:
    upstream.handler = lambda r: httpx.Response(200, json={
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "tool_calls": [CALL]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5}})
    response = await post(request(stream=False))
    assert response.status_code == 200, response.content
    sent = json.loads(upstream.requests[0].content)
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == f'{{"n":{BIG}}}'
    assert json.loads(response.content)["content"][0]["input"] == {"n": BIG}


async def test_a_big_integer_from_the_backend_streams_exactly(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda r: sse_response(sse_chunks([{"tool_calls": [{"index": 0, **CALL}]}],
                                                         finish="tool_calls"))
    response = await post(request(stream=True))
    events = parse_sse(b"".join([c async for c in response.streaming_content]))
    partial = "".join(d["delta"]["partial_json"] for _, d in events
                      if d["type"] == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
    assert json.loads(partial) == {"n": BIG}
    assert events[-1][0] == "message_stop"
