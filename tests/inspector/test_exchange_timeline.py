"""The exchange's timeline: its recorded moments, every upstream chunk and client event on one
axis to scale, silences over a second marked with their length, pings marked."""

from __future__ import annotations

from inspector.models import Exchange
from inspector.views import exchange_timeline


def stalled_stream() -> Exchange:
    """A backend that took 30 s to send its first chunk, while the gateway pinged the client."""
    chunks = [[30_050.0, "data: a\n\n"], [30_060.0, "data: b\n\n"], [30_070.0, "data: [DONE]\n\n"]]
    events = [[2.0, -1, {"type": "message_start"}], [15_000.0, -1, {"type": "ping"}],
              [30_000.0, -1, {"type": "ping"}], [30_051.0, 0, {"type": "content_block_delta"}],
              [30_071.0, 2, {"type": "message_stop"}]]
    return Exchange(id="req_stall", stream=True, duration_ms=30_080.0,
                    timings={"upstream_connected": 3.0, "upstream_headers": 40.0, "upstream_first_byte": 30_050.0,
                             "first_token": 30_051.0, "finished": 30_080.0},
                    upstream_response={"status": 200, "chunks": chunks},
                    client_response={"events": events, "message": {}})


def test_a_30_second_stall_before_the_first_chunk_is_marked_and_drawn_to_scale() -> None:
    timeline = exchange_timeline(stalled_stream())
    assert timeline is not None
    # The backend's silence, from its headers to its first chunk; the gateway's pings inside it.
    [stall] = timeline["stalls"]
    assert (stall["from_ms"], stall["to_ms"], stall["seconds"], stall["pings"]) == (40.0, 30_050.0, "30.0", 2)
    assert stall["width"] > 99  # drawn to scale: nearly the whole axis
    first_byte = next(m for m in timeline["marks"] if m["name"] == "upstream_first_byte")
    assert first_byte["stall"] and first_byte["gap_ms"] == 30_010.0 and first_byte["width"] > 99
    assert not next(m for m in timeline["marks"] if m["name"] == "first_token")["stall"]
    assert [p["t_ms"] for p in timeline["pings"]] == [15_000.0, 30_000.0]
    assert len(timeline["chunks"]) == 3 and len(timeline["events"]) == 3  # pings are not counted as events


def test_a_fast_exchange_has_no_stall() -> None:
    exchange = Exchange(id="req_fast", timings={"upstream_headers": 20.0, "finished": 180.0}, duration_ms=180.0)
    timeline = exchange_timeline(exchange)
    assert timeline is not None and timeline["stalls"] == [] and timeline["total_ms"] == 180.0
    assert [m["left"] for m in timeline["marks"]] == [0.0, round(100 * 20 / 180, 3)]


def test_nothing_timed_means_no_timeline() -> None:
    assert exchange_timeline(Exchange(id="req_none")) is None
