"""A Responses API backend end to end: the real Anthropic SDK -> daphne -> the gateway -> the mock
backend's ``POST /v1/responses`` over real sockets, streamed and not. The route ``responses-*`` uses
backend kind ``openai_responses`` with the ``openai`` preset (stateless by default)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.e2e.conftest import Gateway
from tests.mockbackend.responses import REASONING_SUMMARY, TOOL_CALL_ID, TOOL_INPUT, encrypted_for
from translation.signature import signature_read

pytestmark = pytest.mark.e2e

MODEL = "responses-gpt"
TOOLS: list[Any] = [{"name": "Bash", "description": "Run a command",
                     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]


def _create(client: anthropic.Anthropic, stream: bool, **params: Any) -> Any:
    params = {"model": MODEL, "max_tokens": 500, **params}
    if stream:
        with client.messages.stream(**params) as s:
            return s.get_final_message()
    return client.messages.create(**params)


def _last_request(gateway: Gateway) -> dict[str, Any]:
    entry = gateway.mock.requests[-1]
    assert entry["path"] == "/v1/responses"
    body: dict[str, Any] = entry["body"]
    return body


@pytest.mark.parametrize("stream", [False, True])
def test_text_round_trips_through_a_responses_backend(client: anthropic.Anthropic, gateway: Gateway,
                                                      stream: bool) -> None:
    message = _create(client, stream, system="Be brief.", messages=[{"role": "user", "content": "[[mock:text]] hi"}])
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == 'Hello from the mock Responses backend! You said: "hi".'
    assert message.stop_reason == "end_turn"
    assert message.usage.cache_read_input_tokens is not None and message.usage.output_tokens > 0
    sent = _last_request(gateway)
    assert sent["instructions"] == "Be brief."
    assert sent["input"] == [{"type": "message", "role": "user",
                              "content": [{"type": "input_text", "text": "[[mock:text]] hi"}]}]
    assert (sent["store"], sent["include"], sent["max_output_tokens"]) == (False, ["reasoning.encrypted_content"], 500)
    assert sent.get("stream", False) is stream


@pytest.mark.parametrize(("stream", "scenario"), [(False, "tool_call"), (True, "tool_call"),
                                                  (True, "tool_call_vllm"), (True, "tool_call_done_only")])
def test_a_function_call_reaches_the_client_as_tool_use(client: anthropic.Anthropic, gateway: Gateway,
                                                        stream: bool, scenario: str) -> None:
    message = _create(client, stream, tools=TOOLS, messages=[{"role": "user", "content": f"[[mock:{scenario}]] ls"}])
    assert [b.type for b in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert (tool.id, tool.name, tool.input) == (TOOL_CALL_ID, "Bash", TOOL_INPUT)
    assert message.stop_reason == "tool_use"
    assert _last_request(gateway)["tools"] == [{"type": "function", "name": "Bash", "description": "Run a command",
                                                "parameters": TOOLS[0]["input_schema"], "strict": False}]


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequences_are_honoured_by_the_gateway(client: anthropic.Anthropic, gateway: Gateway,
                                                    stream: bool) -> None:
    message = _create(client, stream, stop_sequences=["STOP"],
                      messages=[{"role": "user", "content": "[[mock:stop_text]] count"}])
    assert message.content[0].text == "Counting: 1 2 3 "
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")
    assert "stop" not in _last_request(gateway)


@pytest.mark.parametrize("stream", [False, True])
def test_a_mid_stream_failure_or_failed_response_reaches_the_client_as_an_error(client: anthropic.Anthropic,
                                                                                 stream: bool) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        _create(client, stream, messages=[{"role": "user", "content": "[[mock:failed]] go"}])
    assert "The model failed to generate a response (mock)." in str(caught.value)


def _block_params(message: Any) -> list[dict[str, Any]]:
    return [b.model_dump(exclude_none=True) for b in message.content]


@pytest.mark.parametrize("stream", [False, True])
def test_turn_two_sends_turn_ones_reasoning_back_exactly_as_the_backend_produced_it(
        client: anthropic.Anthropic, gateway: Gateway, stream: bool) -> None:
    first_user = {"role": "user", "content": "[[mock:reasoning_tool]] list the files"}
    thinking = {"type": "enabled", "budget_tokens": 2048}
    turn1 = _create(client, stream, tools=TOOLS, thinking=thinking, messages=[first_user])
    assert [b.type for b in turn1.content] == ["thinking", "tool_use"]
    sent1 = _last_request(gateway)
    assert sent1["reasoning"] == {"effort": "low", "summary": "auto"}
    block = turn1.content[0]
    assert block.thinking == "\n\n".join(REASONING_SUMMARY)
    payload = signature_read(block.signature)
    assert payload is not None and payload["src"] == "responses"
    reasoning_id = payload["id"]
    assert reasoning_id.startswith("rs_mock")

    tool = turn1.content[1]
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "a.txt"}]}
    turn2 = _create(client, stream, tools=TOOLS, thinking=thinking,
                    messages=[first_user, {"role": "assistant", "content": _block_params(turn1)}, result])

    sent2 = _last_request(gateway)
    assert sent2["input"] == [
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "[[mock:reasoning_tool]] list the files"}]},
        {"type": "reasoning", "id": reasoning_id,
         "summary": [{"type": "summary_text", "text": part} for part in REASONING_SUMMARY],
         "encrypted_content": encrypted_for(reasoning_id)},
        {"type": "function_call", "call_id": TOOL_CALL_ID, "name": "Bash",
         "arguments": '{"command":"echo hello","description":"Print a greeting"}'},
        {"type": "function_call_output", "call_id": TOOL_CALL_ID, "output": "a.txt"},
    ]
    assert [b.type for b in turn2.content] == ["thinking", "text"]
    assert turn2.content[1].text == f"The tool returned: a.txt. Reasoning items received: {reasoning_id}:enc."
    assert turn2.stop_reason == "end_turn"
