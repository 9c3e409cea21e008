"""The real Anthropic SDK -> Dragoman under daphne -> the mock backend's native ``/v1/messages``,
which refuses prefill exactly like Claude 4.6 (backend ``mock-anthropic``, preset
``anthropic-no-prefill``, in tests/e2e/conftest.py)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest
from anthropic._constants import ANTHROPIC_API_VERSION

from tests.e2e.conftest import Gateway
from tests.mockbackend.native import (
    CONTINUATION,
    NATIVE_REPLY,
    THINKING_REPLY,
    THINKING_SIGNATURE,
    THINKING_TEXT,
)
from tests.mockbackend.scenarios import PREFILL_REJECTED

pytestmark = pytest.mark.e2e

PREFILL = [{"role": "user", "content": "Say hello world"}, {"role": "assistant", "content": "hello"}]


def create(client: anthropic.Anthropic, stream: bool, **request: Any) -> anthropic.types.Message:
    request.setdefault("max_tokens", 200)
    if stream:
        with client.messages.stream(**request) as s:
            return s.get_final_message()
    return client.messages.create(**request)


def native_requests(gateway: Gateway) -> list[dict[str, Any]]:
    return [r for r in gateway.mock.requests if r["path"] == "/v1/messages"]


def text_of(message: anthropic.types.Message) -> list[str]:
    return [b.text for b in message.content if b.type == "text"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_prefill_to_a_model_that_rejects_prefill_succeeds_through_the_rewrite(
        client: anthropic.Anthropic, gateway: Gateway, stream: bool) -> None:
    before = len(native_requests(gateway))
    message = create(client, stream, model="claude-opus-4-6", messages=PREFILL)
    assert text_of(message) == [CONTINUATION]
    assert message.model == "claude-opus-4-6" and message.stop_reason == "end_turn"
    [received] = native_requests(gateway)[before:]
    body = received["body"]
    assert body["model"] == "mock-no-prefill"
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert "<reply_so_far>\nhello\n</reply_so_far>" in body["messages"][-1]["content"][-1]["text"]
    # The client's own API version reaches the backend (this SDK sends its release's version).
    assert received["headers"]["anthropic-version"] == ANTHROPIC_API_VERSION


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_that_repeats_the_prefix_is_cut_back_to_the_continuation(client: anthropic.Anthropic,
                                                                         stream: bool) -> None:
    messages = [{"role": "user", "content": "[[mock:repeat_prefix]] Say hello world"},
                {"role": "assistant", "content": "hello"}]
    message = create(client, stream, model="claude-opus-4-6", messages=messages)
    assert text_of(message) == [CONTINUATION]


@pytest.mark.parametrize("stream", [False, True])
def test_without_the_rewrite_the_client_gets_claudes_own_400(client: anthropic.Anthropic, stream: bool) -> None:
    with pytest.raises(anthropic.BadRequestError) as error:
        create(client, stream, model="native-prefill-claude", messages=PREFILL)
    assert error.value.status_code == 400
    # The backend's own body, unmodified (Claude Code's gateway contract); the mock's has no request_id.
    assert error.value.body == {"type": "error", "error": {"type": "invalid_request_error",
                                                           "message": PREFILL_REJECTED}}
    assert error.value.request_id is not None and error.value.request_id.startswith("req_")


@pytest.mark.parametrize("stream", [False, True])
def test_a_plain_request_passes_through(client: anthropic.Anthropic, gateway: Gateway, stream: bool) -> None:
    message = create(client, stream, model="native-claude", messages=[{"role": "user", "content": "Hi there"}],
                     extra_body={"temperature": 0.5, "top_p": 0.9})
    assert text_of(message) == [f'{NATIVE_REPLY} You said: "Hi there".']
    assert message.model == "native-claude" and message.id.startswith("msg_")
    assert not message.id.startswith("msg_mock")
    body = native_requests(gateway)[-1]["body"]
    assert body == {"model": "native-claude", "max_tokens": 200, "temperature": 0.5,
                    "messages": [{"role": "user", "content": "Hi there"}], **({"stream": True} if stream else {})}


def test_thinking_round_trips_with_its_signature_byte_for_byte(client: anthropic.Anthropic, gateway: Gateway) -> None:
    ask = [{"role": "user", "content": "[[mock:thinking]] What is the answer?"}]
    message = create(client, True, model="native-claude", messages=ask,
                     thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=2048)
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == (THINKING_TEXT, THINKING_SIGNATURE)
    assert text_of(message) == [THINKING_REPLY]
    follow_up = [*ask, {"role": "assistant", "content": [b.model_dump() for b in message.content]},
                 {"role": "user", "content": "[[mock:thinking]] And again?"}]
    create(client, False, model="native-claude", messages=follow_up, thinking={"type": "enabled", "budget_tokens": 1024},
           max_tokens=2048)
    replayed = native_requests(gateway)[-1]["body"]["messages"][1]["content"][0]
    assert replayed == {"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE}


def test_tool_use_streams_to_the_sdk(client: anthropic.Anthropic) -> None:
    message = create(client, True, model="native-claude",
                     messages=[{"role": "user", "content": "[[mock:tool_use]] run it"}])
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"command": "echo hello", "description": "Print a greeting"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"


def test_an_error_mid_stream_reaches_the_sdk_as_an_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as error:
        create(client, True, model="native-claude",
               messages=[{"role": "user", "content": "[[mock:error_mid_stream]] go"}])
    assert "Overloaded" in str(error.value)


def test_upstream_429_and_529_keep_their_status_and_type(gateway: Gateway) -> None:
    for scenario, status, error_type in (("rate_limited", 429, "rate_limit_error"),
                                         ("overloaded", 529, "overloaded_error")):
        response = httpx.post(f"{gateway.url}/v1/messages", headers={"x-api-key": gateway.key}, json={
            "model": "native-claude", "max_tokens": 10,
            "messages": [{"role": "user", "content": f"[[mock:{scenario}]]"}]})
        assert response.status_code == status
        assert response.json()["error"]["type"] == error_type
        if status == 429:
            assert response.headers["retry-after"] == "3"
