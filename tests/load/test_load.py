"""Load: 200 concurrent streaming clients for a minute against the mock backend (issue 9).

Each client loops streaming requests (20 text deltas, 20 ms apart upstream) for
``DRAGOMAN_LOAD_SECONDS`` (60). Passing means: zero errors (every stream is valid by the
Anthropic grammar, through message_stop), the gateway's memory is flat (see ``memory_growth``),
and the inspector stores exactly one complete exchange per request sent: the set of stored ids is
the set of ``request-id`` headers the clients got. The second test makes every tenth client leave
each of its streams after three deltas: those exchanges are stored once, marked disconnected, and
the mock backend saw each of their upstream streams closed by the gateway.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.load.conftest import LOAD_CLIENTS, LOAD_SECONDS, LoadGateway, RssSampler
from tests.load.loadgen import latency_summary, marker

pytestmark = pytest.mark.load

MiB = 1024 * 1024
# Memory is flat when, after warm-up, the highest RSS of the last third of the run is at most
# this much above the highest RSS of the first third.
RSS_SLACK_BYTES = 16 * MiB
RSS_SLACK_RATIO = 0.10


def memory_growth(samples: list[tuple[float, int]]) -> tuple[int, int, str]:
    """(first-third max, last-third max, description) of the RSS samples after warm-up: the
    first fifth of the run (at least 5 s), while pools, caches and the allocator fill up."""
    warm = max(5.0, LOAD_SECONDS / 5)
    steady = [rss for t, rss in samples if t >= warm]
    assert len(steady) >= 6, f"too few memory samples after warm-up: {samples}"
    third = len(steady) // 3
    first, last = max(steady[:third]), max(steady[-third:])
    trace = " ".join(f"{t:.0f}s:{rss / MiB:.0f}" for t, rss in samples[:: max(1, len(samples) // 30)])
    return first, last, f"RSS MiB over time: {trace}"


def assert_memory_flat(samples: list[tuple[float, int]]) -> None:
    first, last, trace = memory_growth(samples)
    allowed = max(RSS_SLACK_BYTES, int(first * RSS_SLACK_RATIO))
    print(f"gateway RSS: first third max {first / MiB:.1f} MiB, last third max {last / MiB:.1f} MiB; {trace}")
    assert last - first <= allowed, f"gateway memory grew by {(last - first) / MiB:.1f} MiB; {trace}"


def mock_streams_by_marker(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The mock's stream logs, keyed by the load generator's per-request marker."""
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        body = entry.get("body")
        if not isinstance(body, dict) or entry.get("path") != "/v1/chat/completions":
            continue
        text = body["messages"][-1]["content"]
        text = text if isinstance(text, str) else "".join(p.get("text", "") for p in text)
        found.setdefault(text.rsplit(" ", 1)[-1], []).append(entry.get("stream") or {})
    return found


def run_load(gateway: LoadGateway, *args: str) -> tuple[list[dict[str, Any]], list[tuple[float, int]]]:
    sampler = RssSampler(gateway.pid)
    with sampler.running():
        result = gateway.loadgen(*args)
    requests: list[dict[str, Any]] = result["requests"]
    outcomes = Counter(r["outcome"] for r in requests)
    print(f"{len(requests)} requests from {LOAD_CLIENTS} clients in {result['elapsed']:.1f} s "
          f"({len(requests) / result['elapsed']:.0f}/s): {dict(outcomes)}; {latency_summary(requests)}")
    assert result["unfinished_clients"] == 0, "some clients were still busy at the hard deadline"
    errors = [r for r in requests if r["outcome"] == "error"]
    assert not errors, f"{len(errors)} failed requests, e.g. {errors[:3]}"
    assert {r["client"] for r in requests} == set(range(LOAD_CLIENTS)), "some clients never finished a request"
    ids = [r["request_id"] for r in requests]
    assert len(set(ids)) == len(ids), "a request-id was given twice"
    return requests, sampler.samples


def assert_one_exchange_per_request(gateway: LoadGateway, requests: list[dict[str, Any]]) -> dict[str, Any]:
    rows = gateway.exchanges_drained(expected=len(requests))
    stored = Counter(row["id"] for row in rows)
    sent = {r["request_id"] for r in requests}
    assert not (set(stored) - sent), f"{len(set(stored) - sent)} exchanges stored for no request"
    assert not (sent - set(stored)), f"{len(sent - set(stored))} requests have no exchange"
    assert max(stored.values()) == 1
    return {row["id"]: row for row in rows}


def assert_complete(row: dict[str, Any]) -> None:
    assert (row["status"], row["stop_reason"], row["disconnected"], row["error_type"]) == (
        200, "end_turn", False, ""), row
    assert row["valid"] is True, row
    types = row["event_types"]
    assert types[0] == "message_start" and types[-1] == "message_stop", row
    assert types.count("content_block_delta") == 20, row


def test_200_streaming_clients_for_a_minute_get_valid_streams_flat_memory_and_one_exchange_each(
    load_gateway: LoadGateway,
) -> None:
    requests, samples = run_load(load_gateway)
    assert all(r["outcome"] == "complete" for r in requests)
    assert_memory_flat(samples)

    rows = assert_one_exchange_per_request(load_gateway, requests)
    for row in rows.values():
        assert_complete(row)

    upstream = mock_streams_by_marker(load_gateway.mock_requests())
    for r in requests:
        streams = upstream[marker(r["client"], r["n"])]
        assert [s["outcome"] for s in streams] == ["complete"], (r, streams)


def test_with_a_tenth_of_the_clients_leaving_mid_stream_each_exchange_is_stored_once_and_upstreams_close(
    load_gateway: LoadGateway,
) -> None:
    requests, samples = run_load(load_gateway, "--leave-every", "10", "--leave-after", "3")
    left = [r for r in requests if r["leaving"]]
    stayed = [r for r in requests if not r["leaving"]]
    assert left and all(r["outcome"] == "left" for r in left)
    assert all(r["outcome"] == "complete" for r in stayed)
    assert_memory_flat(samples)

    rows = assert_one_exchange_per_request(load_gateway, requests)
    for r in stayed:
        assert_complete(rows[r["request_id"]])
    for r in left:
        # The client saw HTTP 200 and part of the stream; the pipeline keeps that status and
        # marks the exchange disconnected, with no stop reason (tests/e2e/test_stream_faults_e2e).
        row = rows[r["request_id"]]
        assert (row["status"], row["stop_reason"], row["disconnected"]) == (200, "", True), row
        assert row["valid"] is False and "without message_stop" in row["validation_error"], row
        assert "message_stop" not in row["event_types"], row
        assert row["event_types"].count("content_block_delta") >= 3, row

    upstream = mock_streams_by_marker(load_gateway.mock_requests())
    for r in stayed:
        assert [s["outcome"] for s in upstream[marker(r["client"], r["n"])]] == ["complete"], r
    for r in left:
        streams = upstream[marker(r["client"], r["n"])]
        # The gateway closed the upstream connection: the mock noticed before its 200 frames were out.
        assert [s["outcome"] for s in streams] == ["client_closed"], (r, streams)
        assert streams[0]["frames"] < 200, (r, streams)
