"""Failing backends over real sockets, streamed and not: the client always gets a correct error
or a correct stream, the inspector records what happened, and nothing leaks.

Client (httpx, or the real Anthropic SDK) -> daphne -> Dragoman -> the mock backend's fault
scenarios, or a port where nothing listens (route ``refused-*``). The e2e config pings after
0.4 s of backend silence; ``short-timeout-*`` goes to a backend with a 0.5 s read timeout.
``test_stream_faults_e2e.py`` covers pings, client disconnects and the SDK's view of several of
these faults; this module checks every fault both ways and its stored exchange, then looks for
leaks (connections, tasks, memory) after running them all again.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import pytest

from tests.e2e.conftest import Gateway, exchange_fetch
from tests.e2e.test_stream_faults_e2e import ask, mock_entry, sse_events, wait_for
from tests.operator import operator_headers
from translation.outputcap import output_chars_limit
from translation.validate import stream_validate

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Fault:
    """One backend failure and what the client and the inspector must show for it."""

    prompt: str  # the [[mock:…]] directive
    model: str = "claude-sonnet-4-5"
    status: int = 200  # the client's HTTP status
    error: str = ""  # the error type: of the HTTP error, or of the stream's `event: error`
    message: str = ""  # part of the error message
    upstream: int | None = 200  # the backend's status as recorded; None: no answer at all
    stop_reason: str = ""


REFUSED = Fault("", model="refused-model", status=500, error="api_error", message="unreachable", upstream=None)

# (fault, streamed) -> what happens; streams that already started end in `event: error`.
CASES: dict[str, tuple[Fault, Fault]] = {
    "refused": (REFUSED, REFUSED),
    "hang": (
        Fault("[[mock:stall stall_ms=1500]]", model="short-timeout-model", status=504, error="timeout_error",
              message="read timeout", upstream=None),
        Fault("[[mock:stall stall_ms=1500]]", model="short-timeout-model", error="timeout_error",
              message="read timeout"),
    ),
    "http_500": (Fault("[[mock:http_500]]", status=500, error="api_error", message="answered 500",
                       upstream=500),) * 2,
    "http_503": (Fault("[[mock:http_503]]", status=529, error="overloaded_error", message="overloaded (mock)",
                       upstream=503),) * 2,
    "http_429": (Fault("[[mock:http_429]]", status=429, error="rate_limit_error", message="Rate limit",
                       upstream=429),) * 2,
    "garbage": (
        Fault("[[mock:garbage]]", status=500, error="api_error", message="not JSON"),
        Fault("[[mock:garbage]]", error="api_error", message="stream chunk that is not JSON"),
    ),
    "binary_junk": (
        Fault("[[mock:garbage_binary]]", status=500, error="api_error", message="not JSON"),
        Fault("[[mock:garbage_binary]]", error="api_error", message="not JSON"),
    ),
    "html_page": (
        Fault("[[mock:html_page]]", status=500, error="api_error", message="not JSON"),
        Fault("[[mock:html_page]]", status=500, error="api_error", message="with text/html, not an event stream"),
    ),
    "cut_mid_way": (
        # Half the promised body, then the connection closes: no complete answer to record.
        Fault("[[mock:drop_mid_stream]]", status=500, error="api_error", message="closed the connection",
              upstream=None),
        Fault("[[mock:drop_mid_stream]]", error="api_error", message="closed the connection"),
    ),
    "overlong": (Fault("[[mock:overlong]]", stop_reason="max_tokens"),) * 2,
    "slow_first_byte": (Fault("[[mock:slow_first_byte first_byte_ms=300]]", stop_reason="end_turn"),) * 2,
}


@dataclass
class Outcome:
    status: int
    headers: httpx.Headers
    body: dict[str, Any] | None  # the JSON body (an HTTP error, or a non-streamed message)
    events: list[dict[str, Any]]  # a stream's events, as received

    @property
    def request_id(self) -> str:
        return self.headers["request-id"]


def call(gateway: Gateway, fault: Fault, *, stream: bool, marker: str = "", max_tokens: int = 50) -> Outcome:
    body = ask(f"{fault.prompt} {marker}", model=fault.model, max_tokens=max_tokens, stream=stream)
    with httpx.stream("POST", f"{gateway.url}/v1/messages", headers={"x-api-key": gateway.key}, json=body,
                      timeout=15) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return Outcome(response.status_code, response.headers, None,
                           [data for _, data in sse_events(response.iter_lines())])
        return Outcome(response.status_code, response.headers, json.loads(response.read()), [])


def stored(gateway: Gateway, exchange_id: str) -> dict[str, Any]:
    row = wait_for(lambda: exchange_fetch(gateway.env["DATABASE_URL"], exchange_id))
    assert row is not None, f"exchange {exchange_id} was not recorded"
    return row


def status_verbose(gateway: Gateway) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{gateway.url}/healthz?verbose=1", headers=operator_headers(), timeout=5).json()
    return body


def mock_stats(gateway: Gateway) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(f"{gateway.mock.origin}/_mock/stats", timeout=5).json()
    return stats


# -- every fault, both ways: the client's view and the stored exchange ----------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_backend_fault_reaches_the_client_correctly_and_is_recorded(
    gateway: Gateway, case: str, stream: bool
) -> None:
    fault = CASES[case][stream]
    got = call(gateway, fault, stream=stream)
    assert got.request_id.startswith("req_")
    assert got.status == fault.status, (got.body, got.events[-1:])

    if fault.status != 200:  # a real HTTP error, before any stream: the SDKs retry these
        assert got.events == []
        assert got.body is not None and got.body["type"] == "error"
        assert got.body["error"]["type"] == fault.error
        assert fault.message in got.body["error"]["message"]
        assert got.body["request_id"] == got.request_id
    elif stream:
        assert stream_validate(got.events) is None
        last = got.events[-1]
        if fault.error:  # a stream that started and failed never looks like a clean end
            assert last["type"] == "error" and last["error"]["type"] == fault.error
            assert fault.message in last["error"]["message"]
            assert all(e["type"] not in ("message_delta", "message_stop") for e in got.events)
        else:
            assert last["type"] == "message_stop"
            assert got.events[-2]["delta"]["stop_reason"] == fault.stop_reason
    else:
        assert got.body is not None and got.body["stop_reason"] == fault.stop_reason

    row = stored(gateway, got.request_id)
    assert row["status"] == fault.status and row["stream"] is stream
    assert row["error_type"] == fault.error and fault.message in row["error_message"]
    assert row["stop_reason"] == fault.stop_reason
    assert row["disconnected"] is False
    upstream = row["upstream_response"]
    if fault.upstream is None:
        assert "status" not in upstream  # nothing came back, and nothing is made up
    else:
        assert upstream["status"] == fault.upstream
        assert upstream.get("chunks") or upstream.get("body") is not None or upstream.get("body_text")
    if stream and fault.status == 200:
        recorded = [event for _, _, event in row["client_response"]["events"]]
        assert recorded == got.events  # what the client saw, event for event
        assert row["valid"] is True


def test_a_429_keeps_the_backends_retry_after_streamed_or_not(client: anthropic.Anthropic) -> None:
    for stream in (False, True):
        with pytest.raises(anthropic.RateLimitError) as excinfo:
            if stream:
                with client.messages.stream(**ask("[[mock:http_429]] again")) as s:
                    s.get_final_message()
            else:
                client.messages.create(**ask("[[mock:http_429]] again"))
        assert excinfo.value.response.headers["retry-after"] == "2"


def test_a_refused_connection_fails_at_once_as_an_error_the_sdk_retries(client: anthropic.Anthropic) -> None:
    started = time.monotonic()
    with pytest.raises(anthropic.InternalServerError) as excinfo:
        client.messages.create(**ask("hello", model="refused-model"))
    assert time.monotonic() - started < 1.0
    assert "backend mock-refused is unreachable" in excinfo.value.body["error"]["message"]  # type: ignore[index]


def test_a_stream_cut_mid_way_keeps_the_text_that_was_sent_then_an_error(gateway: Gateway) -> None:
    got = call(gateway, CASES["cut_mid_way"][1], stream=True)
    types = [e["type"] for e in got.events]
    assert types == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "error"]
    row = stored(gateway, got.request_id)
    assert row["client_response"]["message"]["content"] == [{"type": "text", "text": "Hello! This is the"}]


# -- a backend that ignores max_tokens ------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [1, 50, 400])
def test_a_backend_ignoring_max_tokens_is_cut_near_the_limit_and_hung_up_on(
    gateway: Gateway, max_tokens: int
) -> None:
    marker = f"overlong-{max_tokens}"
    # 100x the budget at one delta every 2 ms: seconds of output if nobody hung up.
    got = call(gateway, Fault("[[mock:overlong delay_ms=2]]"), stream=True, marker=marker, max_tokens=max_tokens)
    assert stream_validate(got.events) is None
    assert got.events[-2]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    text = "".join(e["delta"]["text"] for e in got.events if e["type"] == "content_block_delta")
    limit = output_chars_limit(max_tokens)
    assert limit < len(text) <= limit + 40  # cut at the first upstream chunk past the limit
    assert got.events[-2]["usage"]["output_tokens"] >= len(text) // 3

    stream_log = wait_for(lambda: mock_entry(gateway, marker)["stream"]["ended"]
                          and mock_entry(gateway, marker)["stream"])
    assert stream_log["outcome"] == "client_closed"  # the gateway hung up on the backend
    assert stream_log["frames"] < len(text) // 10 + 50
    row = stored(gateway, got.request_id)
    assert row["stop_reason"] == "max_tokens"
    assert [n["rule"] for n in row["notes"]].count("max_tokens.enforce") == 1
    assert row["client_response"]["message"]["stop_reason"] == "max_tokens"
    assert row["client_response"]["message"]["content"][0]["text"] == text


def test_a_non_streamed_overlong_reply_is_cut_at_the_limit(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**ask("[[mock:overlong]] cut me", max_tokens=50))
    assert message.stop_reason == "max_tokens"
    assert len(message.content[0].text) == output_chars_limit(50)  # type: ignore[union-attr]
    assert message.usage.output_tokens >= 50


def test_a_backend_that_keeps_to_max_tokens_is_never_cut(client: anthropic.Anthropic) -> None:
    with client.messages.stream(**ask("[[mock:bench events=300]] honest", max_tokens=300)) as s:
        message = s.get_final_message()
    assert message.stop_reason == "end_turn"
    assert message.content[0].text == " tok" * 300  # type: ignore[union-attr]


# -- a slow first byte ----------------------------------------------------------------------------


def test_a_slow_first_byte_within_the_read_timeout_succeeds_and_the_stream_pings_meanwhile(
    gateway: Gateway,
) -> None:
    got = call(gateway, Fault("[[mock:slow_first_byte first_byte_ms=2500]]"), stream=True)
    names = [e["type"] for e in got.events]
    assert names[-1] == "message_stop" and names.count("ping") >= 2
    assert names.index("ping") < names.index("content_block_start")
    assert stream_validate(got.events) is None


# -- leaks ----------------------------------------------------------------------------------------


def test_the_verbose_health_check_counts_without_a_database_or_secrets(gateway: Gateway) -> None:
    plain = httpx.get(f"{gateway.url}/healthz", timeout=5)
    assert plain.json() == {"status": "ok"}
    status = status_verbose(gateway)
    assert set(status) == {"status", "pid", "in_flight", "asyncio_tasks", "upstream", "recorder", "rss_bytes",
                           "backends", "health_sync"}
    assert set(status["recorder"]) == {"submitted", "persisted", "lost", "store_failed", "dropped", "skipped",
                                       "queued", "last_error_at"}  # no error text: it may name database hosts
    assert all(set(pool) == {"open", "active", "idle"} for pool in status["upstream"].values())
    assert gateway.key not in json.dumps(status) and "dgm_" not in json.dumps(status)


LEAK_ROUNDS = 5
SLOW = ("hang", "slow_first_byte")  # the timeouts: in the first and the last round only


def _established_to(pid: int, port: int) -> int:
    """TCP connections of process ``pid`` to 127.0.0.1:``port`` in state ESTABLISHED (Linux /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and inode in inodes and int(remote.split(":")[1], 16) == port:
                count += 1
    return count


def _mock_pools(status: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {name: pool for name, pool in status["upstream"].items() if name != "mock-refused"}


@pytest.mark.skipif(not os.path.exists("/proc/self/net/tcp"), reason="needs Linux /proc")
def test_after_every_fault_again_nothing_leaks(gateway: Gateway) -> None:
    """Connections, tasks and memory after rounds of every fault (bounded: at most a minute).
    An upstream response never closed stays "active" in its pool; a relay that outlives its
    request keeps the mock "busy"; a record that never finishes stays in flight."""
    def quiet() -> dict[str, Any]:
        status = status_verbose(gateway)
        idle = status["in_flight"] == 0 and mock_stats(gateway)["busy"] == 0
        return status if idle and all(p["active"] == 0 for p in _mock_pools(status).values()) else {}

    def round_of_faults(cases: list[str]) -> None:
        for case in cases:
            for stream in (False, True):
                call(gateway, CASES[case][stream], stream=stream)

    deadline = time.monotonic() + 60
    round_of_faults(list(CASES))  # warm-up: pools, caches and lazily imported modules settle
    baseline = wait_for(quiet, timeout=5)
    assert baseline, json.dumps([status_verbose(gateway), mock_stats(gateway)])
    rss = [baseline["rss_bytes"]]
    for _ in range(LEAK_ROUNDS):
        assert time.monotonic() < deadline, "the fault rounds took too long"
        round_of_faults([case for case in CASES if case not in SLOW])
        rss.append(status_verbose(gateway)["rss_bytes"])
    round_of_faults(list(SLOW))

    after = wait_for(quiet, timeout=5)
    assert after, f"still busy after the faults: {status_verbose(gateway)}, mock {mock_stats(gateway)}"
    pools = _mock_pools(after)
    idle = sum(p["idle"] for p in pools.values())
    # Sequential requests reuse kept-alive connections: a handful, however many faults ran.
    assert idle <= 2 * len(pools), pools
    assert _established_to(after["pid"], gateway.mock.port) <= idle
    assert mock_stats(gateway)["connections"] <= idle
    # The status request's own task and timers come and go; a leaked relay or ping task per
    # fault would add dozens.
    assert after["asyncio_tasks"] <= baseline["asyncio_tasks"] + 3, (baseline, after)
    # Memory: no steady growth over the rounds (the first ones may still fill caches).
    growth = rss[-1] - rss[1]
    assert growth < 8 * 2**20, [r // 2**20 for r in rss]
