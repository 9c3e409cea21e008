"""Dragoman in front of a real llama.cpp ``llama-server`` with a real model, driven by the real
Anthropic SDK (`make test-real`). Each test asserts protocol: what Anthropic's API promises the
client, whatever the 135M-parameter model says."""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

import anthropic
import httpx
import pytest

from tests.real.conftest import NO_EOS, RealGateway

pytestmark = pytest.mark.real

COUNT = [{"role": "user", "content": "Count to five, just the numbers comma-separated."}]
PREFILL = [*COUNT, {"role": "assistant", "content": "1, 2,"}]


def _text(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def _stream(client: Any, **kwargs: Any) -> tuple[Any, list[Any]]:
    with client.messages.stream(**kwargs) as stream:
        events = list(stream)
        return stream.get_final_message(), events


# -- prefill ---------------------------------------------------------------------------------------


def test_llama_server_itself_puts_the_prefill_back_in_front_of_its_reply(real_gateway: RealGateway) -> None:
    """The quirk the llamacpp preset exists for (if llama.cpp stops doing it, prefill_echo can go)."""
    reply = real_gateway.servers["main"].chat({"messages": PREFILL, "max_tokens": 12, "temperature": 0})
    assert reply["choices"][0]["message"]["content"].startswith("1, 2,")


@pytest.mark.parametrize("stream", [False, True], ids=["non-streamed", "streamed"])
def test_a_prefilled_reply_is_only_the_continuation(client: Any, real_gateway: RealGateway, stream: bool) -> None:
    direct = real_gateway.servers["main"].chat({"messages": PREFILL, "max_tokens": 12, "temperature": 0,
                                                "continue_final_message": True, "add_generation_prompt": False})
    continuation = direct["choices"][0]["message"]["content"].removeprefix("1, 2,")
    kwargs: dict[str, Any] = {"model": "llama-smollm2", "max_tokens": 12, "messages": PREFILL}
    message = _stream(client, **kwargs)[0] if stream else client.messages.create(**kwargs)
    assert _text(message) == continuation
    assert not _text(message).startswith("1, 2,")


@pytest.mark.parametrize("stream", [False, True], ids=["non-streamed", "streamed"])
def test_a_json_prefill_brace_is_not_doubled(client: Any, stream: bool) -> None:
    messages = [{"role": "user", "content": 'Reply with a JSON object {"a": 1}.'}, {"role": "assistant", "content": "{"}]
    kwargs: dict[str, Any] = {"model": "llama-smollm2", "max_tokens": 16, "messages": messages}
    message = _stream(client, **kwargs)[0] if stream else client.messages.create(**kwargs)
    assert not _text(message).lstrip().startswith("{")


def test_a_prefill_with_thinking_on_is_served_with_thinking_off(client: Any, real_gateway: RealGateway) -> None:
    """llama.cpp answers 400 "Assistant response prefill is incompatible with enable_thinking"."""
    messages = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi"}]
    raw = client.messages.with_raw_response.create(model="llama-smollm2", max_tokens=1100, messages=messages,
                                                   thinking={"type": "enabled", "budget_tokens": 1024})
    assert raw.parse().stop_reason in ("end_turn", "max_tokens")
    assert "prefill.thinking_off" in _rules(real_gateway.exchange(raw.headers["request-id"]))


def _rules(exchange: dict[str, Any]) -> list[str]:
    return [n["rule"] if isinstance(n, dict) else n[0] for n in exchange["notes"]]


# -- stop sequences, max_tokens, usage --------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["non-streamed", "streamed"])
def test_a_stop_sequence_ends_the_turn_with_stop_sequence(client: Any, stream: bool) -> None:
    free = client.messages.create(model="llama-smollm2", max_tokens=24, messages=COUNT)
    text = _text(free)
    assert len(text) >= 6, text
    stop = text[3:5]  # a sequence the reply is known to contain (temperature 0 repeats it)
    kwargs: dict[str, Any] = {"model": "llama-smollm2", "max_tokens": 24, "messages": COUNT, "stop_sequences": [stop]}
    message = _stream(client, **kwargs)[0] if stream else client.messages.create(**kwargs)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", stop)
    assert _text(message) == text[: text.index(stop)]


@pytest.mark.parametrize("stream", [False, True], ids=["non-streamed", "streamed"])
def test_a_stop_sequence_matched_by_the_gateway_is_reported(client: Any, stream: bool) -> None:
    """stop_sequences=gateway against the real server: not sent; the gateway cuts the text there."""
    text = _text(client.messages.create(model="gwstop-smollm2", max_tokens=24, messages=COUNT))
    stop = text[3:5]
    kwargs: dict[str, Any] = {"model": "gwstop-smollm2", "max_tokens": 24, "messages": COUNT,
                              "stop_sequences": [stop]}
    message = _stream(client, **kwargs)[0] if stream else client.messages.create(**kwargs)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", stop)
    assert _text(message) == text[: text.index(stop)]


@pytest.mark.parametrize("stream", [False, True], ids=["non-streamed", "streamed"])
def test_max_tokens_ends_the_turn_with_max_tokens_and_exact_usage(client: Any, stream: bool) -> None:
    kwargs: dict[str, Any] = {"model": "llama-smollm2", "max_tokens": 5,
                              "messages": [{"role": "user", "content": "Write a long story about a dragon."}]}
    message = _stream(client, **kwargs)[0] if stream else client.messages.create(**kwargs)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5


def test_count_tokens_is_exact_against_the_next_requests_usage(client: Any) -> None:
    kwargs: dict[str, Any] = {"model": "llama-smollm2", "system": "You are terse.",
                              "messages": [{"role": "user", "content": "Say hello to the team."},
                                           {"role": "assistant", "content": "Hello, team."},
                                           {"role": "user", "content": "Again, louder."}]}
    counted = client.messages.count_tokens(**kwargs).input_tokens
    message = client.messages.create(max_tokens=4, **kwargs)
    assert counted == message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)
    assert counted > 10


def test_message_start_carries_the_backends_exact_input_count(client: Any) -> None:
    kwargs: dict[str, Any] = {"model": "llama-smollm2", "max_tokens": 4, "system": "Answer in one word.",
                              "messages": [{"role": "user", "content": "What colour is the sky on a clear day?"}]}
    final, events = _stream(client, **kwargs)
    start = next(e for e in events if e.type == "message_start")
    assert start.message.usage.input_tokens == final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)


def test_system_prompt_and_multi_turn_reach_the_backend(client: Any) -> None:
    short = client.messages.count_tokens(model="llama-smollm2", messages=COUNT).input_tokens
    longer = client.messages.count_tokens(
        model="llama-smollm2", system="You are a counting assistant.",
        messages=[*COUNT, {"role": "assistant", "content": "1, 2, 3, 4, 5"}, {"role": "user", "content": "Again."}],
    ).input_tokens
    assert longer > short
    message = client.messages.create(model="llama-smollm2", max_tokens=8, system="You are a counting assistant.",
                                     messages=[*COUNT, {"role": "assistant", "content": "1, 2, 3, 4, 5"},
                                               {"role": "user", "content": "Again."}])
    assert message.content and message.content[0].type == "text"


def test_structured_output_follows_the_schema(client: Any) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "blue"]}},
              "required": ["colour"], "additionalProperties": False}
    message = client.messages.create(model="llama-smollm2", max_tokens=32,
                                     messages=[{"role": "user", "content": "Pick a colour."}],
                                     extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}})
    assert json.loads(_text(message))["colour"] in ("red", "blue")


# -- errors that are the client's request --------------------------------------------------------------


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data":
         "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="}}


def test_an_image_to_a_text_only_model_is_a_placeholder_where_configured(client: Any) -> None:
    message = client.messages.create(model="llama-smollm2", max_tokens=4, messages=[
        {"role": "user", "content": [IMAGE, {"type": "text", "text": "What is this?"}]}])
    assert message.stop_reason in ("end_turn", "max_tokens")


def test_an_image_the_server_cannot_take_is_a_400_the_client_does_not_retry(client: Any) -> None:
    """llama-server answers 500 "image input is not supported"; retrying cannot help."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="images-pass-smollm2", max_tokens=4, messages=[
            {"role": "user", "content": [IMAGE, {"type": "text", "text": "What is this?"}]}])
    assert "image input is not supported" in str(caught.value)


WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_tools_on_a_server_without_jinja_are_a_400(client: Any) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="nojinja-smollm2", max_tokens=8, tools=[WEATHER],
                               messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert "--jinja" in str(caught.value)


def test_a_prompt_larger_than_the_context_is_prompt_too_long(client: Any) -> None:
    """The wording Claude Code compacts on."""
    long = " ".join(["the weather is nice today"] * 120)
    for stream in (False, True):
        with pytest.raises(anthropic.BadRequestError) as caught:
            kwargs: dict[str, Any] = {"model": "small-smollm2", "max_tokens": 8,
                                      "messages": [{"role": "user", "content": long}]}
            _stream(client, **kwargs) if stream else client.messages.create(**kwargs)
        assert "prompt is too long" in str(caught.value)


@pytest.mark.parametrize("stream", [False, True], ids=["non-streamed", "streamed"])
def test_output_that_fills_the_context_is_model_context_window_exceeded(client: Any, stream: bool) -> None:
    kwargs: dict[str, Any] = {"model": "small-smollm2", "max_tokens": 1000,
                              "messages": [{"role": "user", "content": "Tell me a story."}]}
    message = _stream(client, **kwargs)[0] if stream else client.messages.create(**kwargs)
    assert message.stop_reason == "model_context_window_exceeded"


def test_max_tokens_is_clamped_to_what_the_prompt_leaves_of_the_window(client: Any,
                                                                     real_gateway: RealGateway) -> None:
    message = client.messages.with_raw_response.create(
        model="smallcap-smollm2", max_tokens=1000, messages=[{"role": "user", "content": "Tell me a story."}])
    parsed = message.parse()
    assert parsed.stop_reason == "max_tokens"
    assert "max_tokens.context_window" in _rules(real_gateway.exchange(message.headers["request-id"]))
    assert parsed.usage.input_tokens + parsed.usage.output_tokens <= 256


# -- tools --------------------------------------------------------------------------------------------


def test_tools_and_a_tool_result_reach_the_servers_template(client: Any) -> None:
    """A 135M model does not call tools reliably, so the history carries the call: the tool_use and
    its tool_result must render through llama.cpp's tool template (a 400/500 otherwise), and the
    tools must be in the prompt (count_tokens grows with them)."""
    plain = client.messages.count_tokens(model="tools-smollm2", messages=COUNT).input_tokens
    with_tools = client.messages.count_tokens(model="tools-smollm2", messages=COUNT, tools=[WEATHER]).input_tokens
    assert with_tools > plain + 20
    message = client.messages.create(model="tools-smollm2", max_tokens=16, tools=[WEATHER], messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "Sunny, 21 C"}]},
    ])
    assert message.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert message.content


# -- concurrency and a dying backend ----------------------------------------------------------------------


def test_concurrent_streams_all_complete(client: Any) -> None:
    def one(i: int) -> str | None:
        final, _ = _stream(client, model="llama-smollm2", max_tokens=16,
                           messages=[{"role": "user", "content": f"Say the number {i}."}])
        return final.stop_reason

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        reasons = list(pool.map(one, range(8)))
    assert all(r in ("end_turn", "max_tokens") for r in reasons), reasons


def test_a_server_killed_mid_stream_ends_the_stream_with_an_error_and_a_restart_serves_again(
        client: Any, real_gateway: RealGateway) -> None:
    server = real_gateway.servers["kill"]
    seen_text = False
    with pytest.raises(anthropic.APIError), client.messages.stream(
            model="kill-smollm2", max_tokens=1500,
            messages=[{"role": "user", "content": "Tell me a very long story."}]) as stream:
        for event in stream:
            if event.type == "content_block_delta" and not seen_text:
                seen_text = True
                server.stop()
    assert seen_text
    with pytest.raises((anthropic.InternalServerError, anthropic.APIConnectionError)):
        client.messages.create(model="kill-smollm2", max_tokens=4, messages=COUNT)
    server.start()
    message = client.messages.create(model="kill-smollm2", max_tokens=4, messages=COUNT)
    assert message.stop_reason == "max_tokens"


def test_the_logit_bias_really_bans_the_end_of_turn(real_gateway: RealGateway) -> None:
    """The overflow tests rely on it: without EOS the model writes until a limit."""
    reply = real_gateway.servers["main"].chat({"messages": COUNT, "max_tokens": 40, "temperature": 0,
                                                "logit_bias": NO_EOS})
    assert reply["choices"][0]["finish_reason"] == "length"


def test_the_gateways_health_and_models_answer(real_gateway: RealGateway) -> None:
    assert httpx.get(f"{real_gateway.url}/healthz").status_code == 200


@pytest.mark.parametrize("stream", [False, True], ids=["message", "stream"])
def test_a_route_whose_first_target_is_gone_is_served_by_the_real_fallback(
        client: Any, real_gateway: RealGateway, stream: bool) -> None:
    """Failover before the first byte, to a real server: the request llama-server gets is its own
    translation (llamacpp preset), and the inspector keeps both attempts."""
    raw = client.messages.with_raw_response.create(model="failover-smollm2", max_tokens=8, messages=COUNT,
                                                   stream=stream)
    if stream:
        events = list(raw.parse())
        assert events[-1].type == "message_stop"
    else:
        assert raw.parse().stop_reason in ("end_turn", "max_tokens")
    stored = real_gateway.exchange(raw.headers["request-id"])
    assert stored["status"] == 200 and stored["backend_name"] == "llama"
    attempts = [(a["backend"], a["outcome"], a["reason"]) for a in stored["attempts"]]
    assert attempts[-1] == ("llama", "ok", "fallback")
    # the gone backend is tried until it is ejected (DRAGOMAN_EJECT_FAILURES, 3), then skipped
    assert attempts[:-1] in ([("llama-gone", "failed", "least in-flight")], [])
    if attempts[:-1]:
        assert "unreachable" in stored["attempts"][0]["error"]
