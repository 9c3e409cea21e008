"""A backend's last event without its blank line still reaches the client.

Real servers close the stream after a final ``data: [DONE]`` with no line ending, or after a
last chunk ended by one ``\\n``; WHATWG would drop that event (``translation.sse``), the relay
flushes the decoder at the upstream's end and takes it. An event cut off inside its JSON (the
stream ended mid-line) is not a chunk: the message ends as any stream cut short does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream
from tests.gateway.helpers import parse_sse, sse_response, user_request
from tests.mockbackend import native, responses
from translation.validate import stream_validate

pytestmark = pytest.mark.django_db(transaction=True)


def data(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body).encode()


def chat_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra}


USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
HEAD = data(chat_chunk({"role": "assistant", "content": "Hel"})) + b"\n\n"
LAST_CONTENT = data(chat_chunk({"content": "lo!"}))
FINISH = data(chat_chunk({}, "stop"))
USAGE_CHUNK = data({"object": "chat.completion.chunk", "choices": [], "usage": USAGE})

# The final upstream chunk (after HEAD): its last event lacks the blank line that ends it.
CHAT_TAILS = {
    "usage-without-line-end": LAST_CONTENT + b"\n\n" + FINISH + b"\n\n" + USAGE_CHUNK,
    "usage-with-one-newline": LAST_CONTENT + b"\n\n" + FINISH + b"\n\n" + USAGE_CHUNK + b"\n",
    "finish-and-usage-in-the-last-event": LAST_CONTENT + b"\n\n" + data(chat_chunk({}, "stop", usage=USAGE)),
    "content-finish-usage-in-the-last-event": data(chat_chunk({"content": "lo!"}, "stop", usage=USAGE)) + b"\n",
    "only-done-without-line-end": (LAST_CONTENT + b"\n\n" + FINISH + b"\n\n" + USAGE_CHUNK + b"\n\n"
                                   + b"data: [DONE]"),
    "done-with-one-newline": LAST_CONTENT + b"\n\n" + FINISH + b"\n\n" + USAGE_CHUNK + b"\n\ndata: [DONE]\n",
}


async def post(body: dict[str, Any]) -> Any:
    return await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                    headers={"x-api-key": KEY})


async def stream_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await post(body)
    assert response.status_code == 200
    events = parse_sse(b"".join([part async for part in response.streaming_content]))
    assert all(name == event["type"] for name, event in events)
    return [event for _, event in events]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")


def final_delta(events: list[dict[str, Any]]) -> dict[str, Any]:
    [delta] = [e for e in events if e["type"] == "message_delta"]
    return delta


def stored_upstream_bytes(exchange: Any) -> bytes:
    return "".join(text for _, text in exchange.upstream_response["chunks"]).encode()


@pytest.mark.parametrize("tail", CHAT_TAILS.values(), ids=CHAT_TAILS.keys())
async def test_the_last_chat_chunk_without_its_blank_line_completes_the_message(
    gateway_setup: str, upstream: Upstream, recorded: Any, tail: bytes
) -> None:
    upstream.handler = lambda request: sse_response(HEAD + tail)
    events = await stream_events(user_request(stream=True))
    assert stream_validate(events) is None
    assert text_of(events) == "Hello!"
    delta = final_delta(events)
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 7  # the backend's count, not an estimate
    assert events[-1]["type"] == "message_stop"
    [exchange] = await recorded()
    assert (exchange.status, exchange.stop_reason, exchange.error_type) == (200, "end_turn", "")
    assert exchange.usage["output_tokens"] == 7
    assert stored_upstream_bytes(exchange) == HEAD + tail
    assert [e[2]["type"] for e in exchange.client_response["events"]] == [e["type"] for e in events]


async def test_a_stream_that_ends_inside_its_last_json_line_is_cut_off_not_bad_json(
    gateway_setup: str, upstream: Upstream, recorded: Any
) -> None:
    cut = LAST_CONTENT[:-9]  # the JSON of the last chunk, truncated
    upstream.handler = lambda request: sse_response(HEAD + cut)
    events = await stream_events(user_request(stream=True))
    assert text_of(events) == "Hel"  # nothing of the truncated chunk became text
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["message"] == "backend vllm-test ended the stream before finishing the message"
    [exchange] = await recorded()
    assert exchange.error_message == events[-1]["error"]["message"]
    assert stored_upstream_bytes(exchange) == HEAD + cut
    assert any(note["rule"] == "stream.cut_event" for note in exchange.notes)


async def test_a_truncated_usage_chunk_after_the_finish_leaves_a_finished_message(
    gateway_setup: str, upstream: Upstream, recorded: Any
) -> None:
    upstream.handler = lambda request: sse_response(HEAD + LAST_CONTENT + b"\n\n" + FINISH + b"\n\n"
                                                    + USAGE_CHUNK[:-5])
    events = await stream_events(user_request(stream=True))
    assert stream_validate(events) is None
    assert text_of(events) == "Hello!" and final_delta(events)["delta"]["stop_reason"] == "end_turn"
    [exchange] = await recorded()
    rules = [note["rule"] for note in exchange.notes]
    assert "stream.cut_event" in rules and "usage.missing" in rules


# -- the other stream kinds go through the same relay -------------------------------------------


@pytest.fixture
def other_kinds(gateway_setup: str) -> Iterator[None]:
    """A native Anthropic backend behind ``native-*`` and a Responses API one behind ``resp-*``."""
    from gateway import snapshot
    from gateway.models import Backend, Route

    claude = Backend.objects.create(name="claude", kind="anthropic", base_url="http://anthropic.test/v1",
                                    preset="anthropic", api_key="sk-ant-upstream-test")
    openai = Backend.objects.create(name="openai", kind="openai_responses", base_url="http://openai.test/v1",
                                    preset="openai", api_key="sk-upstream-test")
    Route.objects.create(model="native-*", backend=claude, upstream_model="claude-sonnet-4-5", order=1)
    Route.objects.create(model="resp-*", backend=openai, upstream_model="gpt-5", order=2)
    snapshot.snapshot_invalidate()
    yield
    snapshot.snapshot_invalidate()


def unterminated(frames: list[bytes]) -> bytes:
    """The frames of a stream whose last event ends with its data line's newline only."""
    return b"".join(frames)[:-1]


async def test_a_native_stream_closed_after_an_unterminated_message_delta_ends_the_message(
    other_kinds: None, upstream: Upstream, recorded: Any
) -> None:
    reply = native.NativeReply(content=({"type": "text", "text": "Hello from Claude"},), stop_reason="end_turn")
    frames = [native.sse_frame(e) for e in native.events_render(reply, id="msg_n", model="claude-sonnet-4-5",
                                                                 usage=(9, 4))]
    assert frames[-1].startswith(b"event: message_stop")  # the server closes without it
    upstream.handler = lambda request: sse_response(unterminated(frames[:-1]))
    events = await stream_events(user_request(model="native-sonnet", stream=True))
    assert stream_validate(events) is None
    assert text_of(events) == "Hello from Claude" and events[-1]["type"] == "message_stop"
    assert final_delta(events)["usage"]["output_tokens"] == 4
    [exchange] = await recorded()
    assert (exchange.status, exchange.stop_reason, exchange.error_type) == (200, "end_turn", "")


async def test_a_responses_completed_event_without_its_blank_line_ends_the_message(
    other_kinds: None, upstream: Upstream, recorded: Any
) -> None:
    body = {"model": "gpt-5", "input": "hi"}
    upstream_events = responses.events_render(body, responses.RESPONSES_SCENARIOS["text"](body), id="resp_t")
    completed = upstream_events[-1]["response"]
    upstream.handler = lambda request: sse_response(unterminated([responses.sse_frame(e) for e in upstream_events]))
    events = await stream_events(user_request(model="resp-gpt", stream=True))
    assert stream_validate(events) is None
    assert text_of(events) == completed["output"][0]["content"][0]["text"]
    assert final_delta(events)["usage"]["output_tokens"] == completed["usage"]["output_tokens"]
    [exchange] = await recorded()
    assert (exchange.status, exchange.stop_reason, exchange.error_type) == (200, "end_turn", "")
