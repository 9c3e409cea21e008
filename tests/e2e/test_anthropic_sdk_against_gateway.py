"""The real Anthropic SDK talks to Dragoman under daphne, which talks to the mock backend,
everything over real sockets."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.e2e


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": text}],
            **extra}


def last_backend_body(gateway: Gateway) -> dict[str, Any]:
    body: dict[str, Any] = gateway.mock.requests[-1]["body"]
    return body


def test_create_returns_a_message_from_the_backend(client: anthropic.Anthropic, gateway: Gateway) -> None:
    message = client.messages.create(**ask("Hello gateway"))
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-sonnet-4-5"
    assert message.stop_reason == "end_turn"
    assert "Hello gateway" in message.content[0].text  # type: ignore[union-attr]
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert last_backend_body(gateway)["model"] == "mock-model"


def test_stream_accumulates_to_the_same_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(**ask("[[mock:text]] hi")) as stream:
        streamed = stream.get_final_message()
    created = client.messages.create(**ask("[[mock:text]] hi"))
    assert streamed.content[0].text == created.content[0].text  # type: ignore[union-attr]
    assert streamed.stop_reason == "end_turn"
    assert streamed.usage.output_tokens == created.usage.output_tokens


@pytest.mark.parametrize("stream", [False, True])
def test_vllm_empty_tool_calls_chunks_arrive_as_text(client: anthropic.Anthropic, stream: bool) -> None:
    if stream:
        with client.messages.stream(**ask("[[mock:tool_calls_empty]]")) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**ask("[[mock:tool_calls_empty]]"))
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "1\n2\n3"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_arrives_whole_with_tool_use_stop_reason(client: anthropic.Anthropic, stream: bool) -> None:
    tools = [{"name": "Bash", "description": "Run a command",
              "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]
    request = ask("[[mock:tool_call]] run it", tools=tools)
    if stream:
        with client.messages.stream(**request) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**request)
    assert [b.type for b in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert tool.name == "Bash"  # type: ignore[union-attr]
    assert tool.input == {"command": "echo hello", "description": "Print a greeting"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"


def test_parallel_tool_calls_become_two_blocks(client: anthropic.Anthropic) -> None:
    tools = [{"name": n, "input_schema": {"type": "object"}} for n in ("Bash", "Read")]
    with client.messages.stream(**ask("[[mock:parallel_tools]]", tools=tools)) as s:
        message = s.get_final_message()
    assert [b.name for b in message.content if b.type == "tool_use"] == ["Bash", "Read"]  # type: ignore[union-attr]


def test_prefill_reaches_the_backend_as_continue_final_message(client: anthropic.Anthropic,
                                                               gateway: Gateway) -> None:
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[
        {"role": "user", "content": "[[mock:continuation]] greet"}, {"role": "assistant", "content": "hello"}])
    sent = last_backend_body(gateway)
    assert sent["continue_final_message"] is True
    assert sent["add_generation_prompt"] is False
    assert sent["messages"][-1]["role"] == "assistant"
    assert message.content[0].text == " world."  # type: ignore[union-attr]


def test_thinking_round_trips_through_two_turns(client: anthropic.Anthropic, gateway: Gateway) -> None:
    with client.messages.stream(**ask("[[mock:reasoning]] think")) as s:
        first = s.get_final_message()
    assert first.content[0].type == "thinking"
    thinking_text = first.content[0].thinking  # type: ignore[union-attr]
    assert thinking_text
    client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[
        {"role": "user", "content": "[[mock:reasoning]] think"},
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": "[[mock:text]] again"},
    ])
    assistant = last_backend_body(gateway)["messages"][1]
    assert assistant["reasoning"] == thinking_text


def test_upstream_rate_limit_is_a_429_the_sdk_understands(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as excinfo:
        client.messages.create(**ask("[[mock:http_429]]"))
    assert excinfo.value.response.headers["retry-after"] == "2"
    assert excinfo.value.response.headers["request-id"].startswith("req_")


def test_mid_stream_drop_is_an_error_not_a_complete_message(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError), client.messages.stream(**ask("[[mock:drop_mid_stream]]")) as s:
        s.get_final_message()


def test_count_tokens_and_models_work_with_the_sdk(client: anthropic.Anthropic) -> None:
    count = client.messages.count_tokens(model="claude-sonnet-4-5",
                                         messages=[{"role": "user", "content": "hello " * 50}])
    assert count.input_tokens >= 50
    page = client.models.list()
    assert page.data == []  # only glob routes are configured: nothing to list by exact name


def test_request_id_header_names_the_exchange(gateway: Gateway) -> None:
    response = httpx.post(f"{gateway.url}/v1/messages?beta=true", headers={"x-api-key": gateway.key},
                          json=ask("hi"))
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_")
    bad = httpx.post(f"{gateway.url}/v1/messages", headers={"x-api-key": gateway.key}, content=b"{")
    assert bad.status_code == 400
    assert json.loads(bad.content)["request_id"] == bad.headers["request-id"]
