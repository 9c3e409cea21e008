"""Faults over real sockets: the real Anthropic SDK (or raw httpx, where the test must control
the connection) -> daphne -> Dragoman -> the mock backend's fault scenarios.

The gateway's e2e config (tests/e2e/conftest.py) pings after 0.4 s of backend silence and has a
backend with a 0.5 s read timeout, routed as ``short-timeout-*``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.e2e.conftest import Gateway, exchange_fetch
from translation.validate import stream_validate

pytestmark = pytest.mark.e2e


def ask(text: str, *, model: str = "claude-sonnet-4-5", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs as they arrive on an Anthropic SSE stream."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def mock_entry(gateway: Gateway, marker: str) -> dict[str, Any]:
    """The mock backend's record of the request whose last user message holds ``marker``."""
    for entry in reversed(gateway.mock.requests):
        body = entry.get("body")
        if isinstance(body, dict) and marker in json.dumps(body.get("messages")):
            return entry
    raise AssertionError(f"the backend never got a request with {marker!r}")


def exchange_row(gateway: Gateway, exchange_id: str) -> dict[str, Any] | None:
    """The inspector's stored Exchange, read from the gateway's own database."""
    row = exchange_fetch(gateway.env["DATABASE_URL"], exchange_id)
    if row is None:
        return None
    return {k: row[k] for k in ("disconnected", "status", "stop_reason", "client_response")}


def wait_for(check: Any, timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


# -- pings and message_start ----------------------------------------------------------------------


def test_a_stalled_backend_gets_pings_between_real_events_and_the_stream_still_validates(
    gateway: Gateway,
) -> None:
    with httpx.stream("POST", f"{gateway.url}/v1/messages", headers={"x-api-key": gateway.key},
                      json=ask("[[mock:stall stall_ms=1500]] pings please", stream=True), timeout=10) as response:
        assert response.status_code == 200
        events = list(sse_events(response.iter_lines()))
    names = [name for name, _ in events]
    pings = names.count("ping")
    assert 2 <= pings <= 4, names
    # The stall comes after the backend's role chunk, which makes no event: pings follow message_start.
    assert names[: 1 + pings] == ["message_start", *["ping"] * pings]
    assert names[1 + pings:] == ["content_block_start", *["content_block_delta"] * 4, "content_block_stop",
                                 "message_delta", "message_stop"]
    assert stream_validate([data for _, data in events]) is None


def test_a_fast_backend_gets_no_pings(gateway: Gateway) -> None:
    with httpx.stream("POST", f"{gateway.url}/v1/messages", headers={"x-api-key": gateway.key},
                      json=ask("[[mock:text]] quick", stream=True), timeout=10) as response:
        names = [name for name, _ in sse_events(response.iter_lines())]
    assert "ping" not in names and names[-1] == "message_stop"


def test_the_sdk_ignores_pings_and_returns_the_whole_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(**ask("[[mock:stall stall_ms=900]] hi")) as stream:
        message = stream.get_final_message()
    assert message.content[0].text == "Hello! This is the mock backend speaking."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


def test_message_start_arrives_while_the_backend_is_still_silent(gateway: Gateway) -> None:
    body = ask("[[mock:stall stall_ms=3000]] " + "long prompt " * 100, stream=True)
    started = time.monotonic()
    with httpx.stream("POST", f"{gateway.url}/v1/messages", headers={"x-api-key": gateway.key}, json=body,
                      timeout=10) as response:
        name, data = next(sse_events(response.iter_lines()))
        elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert name == "message_start"
    assert data["message"]["content"] == []
    assert data["message"]["usage"]["input_tokens"] > 250  # the gateway's estimate for this prompt
    # message_start may beat the role chunk (it goes out on the upstream's 200); give the chunk a moment.
    stream_log = mock_entry(gateway, "long prompt")["stream"]
    deadline = time.monotonic() + 1.0
    while stream_log["frames"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream_log["frames"] == 1  # only the role chunk went out: the backend is still stalled


# -- client disconnect ----------------------------------------------------------------------------


def test_a_client_that_leaves_mid_stream_closes_the_upstream_within_a_second_and_is_recorded(
    gateway: Gateway,
) -> None:
    marker = "disconnect-e2e"
    body = ask(f"[[mock:bench events=100 delay_ms=300]] {marker}", stream=True)
    seen: list[dict[str, Any]] = []
    with httpx.Client(timeout=10) as http, http.stream(
        "POST", f"{gateway.url}/v1/messages", headers={"x-api-key": gateway.key}, json=body
    ) as response:
        request_id = response.headers["request-id"]
        for _, data in sse_events(response.iter_lines()):
            seen.append(data)
            if sum(1 for e in seen if e["type"] == "content_block_delta") == 3:
                break
        left_at = time.monotonic()
    # Leaving the `with` closed the client's connection mid-stream (97 deltas still to come).
    stream_log = wait_for(lambda: mock_entry(gateway, marker)["stream"]["ended"] and mock_entry(gateway, marker)["stream"])
    assert stream_log, "the backend was still streaming 3 s after the client left"
    assert stream_log["outcome"] == "client_closed"
    assert stream_log["ended"] - left_at < 1.0
    assert stream_log["frames"] < 10

    row = wait_for(lambda: exchange_row(gateway, request_id))
    assert row is not None, "the exchange was not recorded"
    assert row["disconnected"] is True
    assert row["status"] == 200 and row["stop_reason"] == ""
    recorded = [event for _, _, event in row["client_response"]["events"]]
    assert recorded[: len(seen)] == seen  # everything the client read, in order
    assert all(e["type"] not in ("message_stop", "error") for e in recorded)
    text = row["client_response"]["message"]["content"][0]["text"]
    assert text.startswith(" tok tok tok") and text.count("tok") < 10


# -- faults the SDK must see as errors it understands ---------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_backend_silent_beyond_its_read_timeout_before_the_first_byte_is_a_504_timeout_error(
    client: anthropic.Anthropic, stream: bool
) -> None:
    request = ask("[[mock:slow_first_byte first_byte_ms=1500]] hi", model="short-timeout-model")
    started = time.monotonic()
    with pytest.raises(anthropic.GatewayTimeoutError) as excinfo:
        if stream:
            with client.messages.stream(**request) as s:
                s.get_final_message()
        else:
            client.messages.create(**request)
    assert time.monotonic() - started < 1.4  # the gateway gave up at 0.5 s, not the backend
    assert excinfo.value.status_code == 504
    assert excinfo.value.body["error"]["type"] == "timeout_error"  # type: ignore[index]
    assert "read timeout" in excinfo.value.body["error"]["message"]  # type: ignore[index]
    assert excinfo.value.response.headers["request-id"].startswith("req_")


def test_a_backend_that_stalls_mid_stream_beyond_its_read_timeout_ends_in_a_timeout_error_event(
    client: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.APIStatusError) as excinfo, client.messages.stream(
        **ask("[[mock:stall stall_ms=1500]] hi", model="short-timeout-model")
    ) as s:
        s.get_final_message()
    assert excinfo.value.status_code == 200  # the stream had started: an event, not an HTTP error
    assert excinfo.value.body["error"]["type"] == "timeout_error"  # type: ignore[index]


def test_garbage_bytes_mid_stream_end_in_an_error_event(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as excinfo, client.messages.stream(
        **ask("[[mock:garbage]] hi")
    ) as s:
        s.get_final_message()
    assert type(excinfo.value) is anthropic.APIStatusError
    assert excinfo.value.body == {"type": "error", "error": {
        "type": "api_error", "message": "backend mock-vllm sent a stream chunk that is not JSON"}}


def test_an_error_chunk_mid_stream_ends_in_an_error_event(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as excinfo, client.messages.stream(
        **ask("[[mock:error_chunk]] hi")
    ) as s:
        s.get_final_message()
    assert type(excinfo.value) is anthropic.APIStatusError
    assert excinfo.value.body == {"type": "error", "error": {"type": "api_error", "message": "backend error: boom"}}


def test_garbage_and_error_chunks_close_the_open_block_before_the_error_event(gateway: Gateway) -> None:
    for scenario in ("garbage", "error_chunk"):
        with httpx.stream("POST", f"{gateway.url}/v1/messages", headers={"x-api-key": gateway.key},
                          json=ask(f"[[mock:{scenario}]]", stream=True), timeout=10) as response:
            events = [data for _, data in sse_events(response.iter_lines())]
        assert [e["type"] for e in events][-2:] == ["content_block_stop", "error"], scenario
        assert stream_validate(events) is None


def test_a_stream_without_done_after_its_finish_reason_is_a_complete_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(**ask("[[mock:no_done]] hi")) as s:
        message = s.get_final_message()
    assert message.content[0].text == "Hello! This is the mock backend speaking."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_503_backend_is_an_overloaded_error_with_status_529(client: anthropic.Anthropic, stream: bool) -> None:
    with pytest.raises(anthropic.OverloadedError) as excinfo:
        if stream:
            with client.messages.stream(**ask("[[mock:http_503]] hi")) as s:
                s.get_final_message()
        else:
            client.messages.create(**ask("[[mock:http_503]] hi"))
    assert excinfo.value.status_code == 529
    assert excinfo.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert "The server is overloaded (mock)." in excinfo.value.body["error"]["message"]  # type: ignore[index]


def test_a_429_before_the_stream_starts_is_a_rate_limit_error_with_retry_after(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as excinfo, client.messages.stream(
        **ask("[[mock:http_429]] hi")
    ) as s:
        s.get_final_message()
    assert excinfo.value.status_code == 429
    assert excinfo.value.response.headers["retry-after"] == "2"
    assert excinfo.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
