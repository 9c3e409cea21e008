"""POST /v1/messages against a scripted upstream: non-streaming and streaming, recorded."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream, claude_code_fixture
from tests.gateway.helpers import chat_completion, parse_sse, sse_chunks, sse_response, user_request

pytestmark = pytest.mark.django_db(transaction=True)


async def post(body: dict[str, Any], path: str = "/v1/messages", **headers: str) -> Any:
    headers.setdefault("x-api-key", KEY)
    return await AsyncClient().post(path, data=json.dumps(body), content_type="application/json", headers=headers)


async def stream_events(response: Any) -> list[tuple[str, dict[str, Any]]]:
    raw = b"".join([chunk async for chunk in response.streaming_content])
    return parse_sse(raw)


async def test_non_streaming_text_reply_is_an_anthropic_message(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("Hello there"))
    response = await post(user_request())
    assert response.status_code == 200
    message = json.loads(response.content)
    assert message["type"] == "message"
    assert message["id"].startswith("msg_")
    assert message["model"] == "test-model"
    assert message["content"] == [{"type": "text", "text": "Hello there"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 12
    assert message["usage"]["output_tokens"] == 3
    assert response["request-id"].startswith("req_")
    [sent] = upstream.bodies()
    assert str(upstream.requests[0].url) == "http://upstream.test/v1/chat/completions"
    assert sent["model"] == "Qwen/Qwen3-8B"
    assert sent["messages"] == [{"role": "user", "content": "Hi"}]


async def test_query_string_and_claude_code_headers_are_tolerated(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await post(user_request(), path="/v1/messages?beta=true", **{
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "anthropic-version": "2023-06-01", "x-app": "cli", "authorization": f"Bearer {KEY}",
    })
    assert response.status_code == 200


async def test_bearer_token_alone_authenticates(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("ok"))
    response = await AsyncClient().post("/v1/messages", data=json.dumps(user_request()),
                                        content_type="application/json",
                                        headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 200


async def test_streaming_text_reply_follows_the_anthropic_grammar(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: sse_response(sse_chunks([
        {"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}]))
    response = await post(user_request(stream=True))
    assert response.status_code == 200
    assert response["content-type"] == "text/event-stream"
    events = await stream_events(response)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    texts = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert texts == ["Hel", "lo"]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] == 3
    [sent] = upstream.bodies()
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


async def test_prefill_reaches_vllm_as_continue_final_message(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion(" world."))
    body = user_request(messages=[{"role": "user", "content": "Say hello world"},
                                  {"role": "assistant", "content": "Hello"}])
    message = json.loads((await post(body)).content)
    [sent] = upstream.bodies()
    assert sent["continue_final_message"] is True
    assert sent["add_generation_prompt"] is False
    assert sent["messages"][-1] == {"role": "assistant", "content": "Hello"}
    assert message["content"] == [{"type": "text", "text": " world."}]


@pytest.mark.parametrize("stream", [False, True])
async def test_empty_tool_calls_list_alongside_content_is_text(
    gateway_setup: str, upstream: Upstream, stream: bool
) -> None:
    if stream:
        upstream.handler = lambda request: sse_response(sse_chunks([
            {"role": "assistant", "content": ""}, {"content": "1\n", "tool_calls": []},
            {"content": "2", "tool_calls": []}]))
    else:
        upstream.handler = lambda request: httpx.Response(200, json=chat_completion("1\n2", tool_calls=[]))
    response = await post(user_request(stream=stream))
    if stream:
        events = await stream_events(response)
        deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
        assert deltas == [{"type": "text_delta", "text": "1\n"}, {"type": "text_delta", "text": "2"}]
        assert [d["content_block"]["type"] for n, d in events if n == "content_block_start"] == ["text"]
        assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    else:
        message = json.loads(response.content)
        assert message["content"] == [{"type": "text", "text": "1\n2"}]
        assert message["stop_reason"] == "end_turn"


async def test_reasoning_comes_back_as_thinking_and_goes_upstream_as_reasoning(
    gateway_setup: str, upstream: Upstream
) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("42", reasoning="Let me think."))
    first = json.loads((await post(user_request())).content)
    thinking, text = first["content"]
    assert thinking["type"] == "thinking"
    assert thinking["thinking"] == "Let me think."
    assert thinking["signature"]
    assert text == {"type": "text", "text": "42"}
    history = user_request(messages=[{"role": "user", "content": "Q"},
                                     {"role": "assistant", "content": first["content"]},
                                     {"role": "user", "content": "And?"}])
    await post(history)
    sent = upstream.bodies()[1]
    assistant = sent["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["reasoning"] == "Let me think."  # the vllm preset writes "reasoning"
    assert assistant["content"] == "42"


async def test_claude_code_request_goes_through(gateway_setup: str, upstream: Upstream) -> None:
    capture = claude_code_fixture("03_")
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("done"))
    body = {**capture["body"], "stream": False}
    response = await post(body, path=capture["path"])
    assert response.status_code == 200, response.content
    [sent] = upstream.bodies()
    roles = [m["role"] for m in sent["messages"]]
    assert "tool" in roles
    assert not any("x-anthropic-billing-header" in json.dumps(m) for m in sent["messages"])


async def test_exchange_records_both_sides_of_a_stream(gateway_setup: str, upstream: Upstream,
                                                       recorded: Any) -> None:
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "Hi"}]))
    response = await post(user_request(stream=True))
    events = await stream_events(response)
    [exchange] = await recorded()
    assert exchange.id == response["request-id"]
    assert exchange.stream is True
    assert exchange.status == 200
    assert exchange.backend_name == "vllm-test"
    assert exchange.upstream_model == "Qwen/Qwen3-8B"
    assert exchange.stop_reason == "end_turn"
    assert exchange.client_request["body"]["model"] == "test-model"
    assert exchange.upstream_request["body"]["model"] == "Qwen/Qwen3-8B"
    assert "".join(c[1] for c in exchange.upstream_response["chunks"]).endswith("data: [DONE]\n\n")
    assert [e[2]["type"] for e in exchange.client_response["events"]] == [d["type"] for _, d in events]
    assert exchange.timings["first_event"] <= exchange.timings["finished"]


async def test_prefill_rewrite_is_noted_in_the_exchange(gateway_setup: str, upstream: Upstream,
                                                        recorded: Any) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("!"))
    await post(user_request(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]))
    [exchange] = await recorded()
    assert any(n["rule"].startswith("prefill") for n in exchange.notes)
    assert exchange.rewrite_count == len(exchange.notes)


async def test_mid_stream_drop_ends_with_an_error_event(gateway_setup: str, upstream: Upstream) -> None:
    class Dropping(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b'data: {"choices":[{"index":0,"delta":{"content":"partial"}}]}\n\n'
            raise httpx.RemoteProtocolError("peer closed connection")

    upstream.handler = lambda request: httpx.Response(200, stream=Dropping(),
                                                      headers={"content-type": "text/event-stream"})
    events = await stream_events(await post(user_request(stream=True)))
    names = [n for n, _ in events]
    assert names[-1] == "error"
    assert "message_stop" not in names
    assert names[-2] == "content_block_stop"
    assert events[-1][1]["error"]["type"] == "api_error"


async def test_non_json_chunk_ends_with_an_error_event(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: sse_response(b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
                                                    b"data: <<garbage>>\n\n")
    events = await stream_events(await post(user_request(stream=True)))
    assert events[-1][0] == "error"
    assert "not JSON" in events[-1][1]["error"]["message"]


async def test_stream_cut_before_finish_reason_is_an_error_even_without_transport_error(
    gateway_setup: str, upstream: Upstream
) -> None:
    upstream.handler = lambda request: sse_response(b'data: {"choices":[{"index":0,"delta":{"content":"par"}}]}\n\n')
    events = await stream_events(await post(user_request(stream=True)))
    assert events[-1][0] == "error"
    assert "before finishing" in events[-1][1]["error"]["message"]


async def test_missing_done_after_finish_reason_still_completes(gateway_setup: str, upstream: Upstream) -> None:
    body = sse_chunks([{"content": "ok"}]).replace(b"data: [DONE]\n\n", b"")
    upstream.handler = lambda request: sse_response(body)
    events = await stream_events(await post(user_request(stream=True)))
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
