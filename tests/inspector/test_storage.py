"""Exchanges stored as shared pieces (inspector/storage.py) come back exactly: a replayed Claude
Code session sent through the gateway exports the same JSON bytes (and the same test fixture) as
the rows the writer made before splitting them, each system prompt, tool and re-sent message is
stored once, and retention by age and by size deletes only the pieces no kept exchange holds."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client

from inspector.models import Exchange, Piece
from inspector.recorder import ExchangeRecord, recorder
from inspector.retention import exchanges_prune, stored_bytes
from inspector.storage import BODY_COLUMNS, exchanges_load, skeleton_hashes, skeleton_read
from inspector.views import exchange_export, exchange_fixture
from tests.claude_code_session import Turn, claude_code_session
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import sse_chunks, sse_response
from translation.jsonbytes import json_bytes

pytestmark = pytest.mark.django_db(transaction=True)


async def _drain(parts: Any) -> bytes:
    return b"".join([part async for part in parts])


def turn_send(turn: Turn) -> str:
    headers = {k: v for k, v in turn.headers.items() if k.lower() != "content-type"}
    response = Client().post("/v1/messages", turn.raw(), content_type="application/json",
                             headers={**headers, "x-api-key": KEY})
    async_to_sync(_drain)(response.streaming_content)  # type: ignore[attr-defined]
    assert response.status_code == 200
    return str(response["request-id"])


@pytest.fixture(autouse=True)
def no_background_pruning(settings: Any) -> None:
    settings.INSPECTOR_PRUNE_SECONDS = 0


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> dict[str, ExchangeRecord]:
    """Every record the gateway hands the writer, by id: what the row is made from."""
    seen: dict[str, ExchangeRecord] = {}
    submit = recorder.submit

    def keep(record: ExchangeRecord) -> None:
        seen[record.id] = record
        submit(record)

    monkeypatch.setattr(recorder, "submit", keep)
    return seen


@pytest.fixture
def session_send(gateway_setup: str, upstream: Upstream) -> Callable[..., list[Turn]]:
    """Send a replayed Claude Code session through the gateway (streams from a scripted
    Chat Completions backend); returns its turns once they are written."""
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "On it."}, {"content": " Done."}]))

    def send(turns: int, **options: Any) -> list[Turn]:
        session = claude_code_session(turns, **options)
        for turn in session:
            turn_send(turn)
        assert recorder.flush(10)
        return session

    return send


def whole(record: ExchangeRecord) -> Exchange:
    """The row the writer makes from ``record`` before splitting it into pieces."""
    return Exchange(**record.as_model_kwargs())


def stored(ids: Any) -> list[Exchange]:
    return list(Exchange.objects.filter(pk__in=list(ids)).order_by("created_at"))


def referenced(exchanges: list[Exchange]) -> set[str]:
    """The pieces the skeletons of ``exchanges`` point at."""
    out: set[str] = set()
    for blob in Exchange.objects.filter(pk__in=[x.pk for x in exchanges]).values_list("bodies", flat=True):
        assert blob is not None
        out |= skeleton_hashes(skeleton_read(blob))
    return out


def assert_exact(exchanges: list[Exchange], submitted: dict[str, ExchangeRecord]) -> None:
    """The bodies byte for byte, key order included; the other JSON columns (notes, timings,
    usage) are jsonb on PostgreSQL, whose key order is its own, as before pieces."""
    for exchange in exchanges:
        expected = whole(submitted[exchange.id])
        got, want = exchange_export(exchange), exchange_export(expected)
        for column in BODY_COLUMNS:
            assert json_bytes(got[column]) == json_bytes(want[column]), (exchange.id, column)
        assert got == want
        fixture, fixture_expected = exchange_fixture(exchange), exchange_fixture(expected)
        assert json_bytes({**fixture, "notes": []}) == json_bytes({**fixture_expected, "notes": []})
        assert fixture == fixture_expected


def test_a_replayed_session_rebuilds_byte_for_byte_and_stores_each_piece_once(
        session_send: Callable[..., list[Turn]], submitted: dict[str, ExchangeRecord]) -> None:
    turns = session_send(8, subagent_at=3, edit_at=6)
    exchanges = stored(submitted)
    assert len(exchanges) == len(turns) == 11
    assert all(bodies and request == {} for bodies, request in Exchange.objects.values_list("bodies", "client_request"))
    assert_exact(exchanges, submitted)
    for exchange, turn in zip(exchanges, turns, strict=True):  # the client's own bytes, too
        assert json_bytes(exchange.client_request["body"]) == turn.raw()
    # Shared, not copied: the pieces hold less than one turn's body per two turns sent.
    pieces = Piece.objects.aggregate(size=Sum("size"), stored=Sum("stored"))
    sent = sum(len(t.raw()) for t in turns)
    assert pieces["size"] < sent / 2 and pieces["stored"] < pieces["size"]
    tool_names = [t["name"] for t in turns[0].body["tools"]]
    system = turns[0].body["system"][2]
    hits = [p for p in Piece.objects.all() if zlib.decompress(bytes(p.data)) == json_bytes(system)]
    assert len(hits) == 1 and len(tool_names) > 10


def test_rows_stored_whole_and_as_pieces_read_back_the_same(
        session_send: Callable[..., list[Turn]], submitted: dict[str, ExchangeRecord], settings: Any) -> None:
    session_send(3)
    split = {e.id: e for e in stored(submitted)}
    settings.INSPECTOR_STORE_PIECES = False
    for record in list(submitted.values()):
        recorder.submit(dataclasses.replace(record, id=record.id + "-whole"))
    assert recorder.flush(10)
    for exchange_id, exchange in split.items():
        [legacy] = stored([exchange_id + "-whole"])
        assert legacy.bodies is None and legacy.client_request
        got, want = exchange_export(exchange), exchange_export(legacy)
        assert {**got, "id": ""} == {**want, "id": ""}


def test_queries_for_a_page_of_exchanges_fetch_all_their_pieces_at_once(
        session_send: Callable[..., list[Turn]], django_assert_num_queries: Any) -> None:
    session_send(4)
    with django_assert_num_queries(2):  # the rows, then every piece they hold
        exchanges = list(Exchange.objects.order_by("created_at"))
    assert all(e.upstream_response.get("chunks") for e in exchanges)
    with django_assert_num_queries(0):  # loaded already
        exchanges_load(exchanges)
    iterated = list(Exchange.objects.order_by("created_at").iterator(chunk_size=3))
    assert [e.client_request for e in iterated] == [e.client_request for e in exchanges]
    assert [e.client_response for e in iterated] == [e.client_response for e in exchanges]
    with django_assert_num_queries(1):  # list columns only: no piece
        listed = list(Exchange.objects.only("id", "status"))
    with django_assert_num_queries(2):  # then its skeletons and pieces
        exchanges_load(listed)
    assert [e.client_request for e in listed] == [e.client_request for e in reversed(exchanges)]


def test_values_beyond_64_bits_nul_floats_and_unicode_come_back_exactly(db: None) -> None:
    tool_input = {"big": 2**70, "neg": -(2**65), "f": 1.5e-300, "nul": "a\x00b", "emoji": "🦊é"}
    body = {"model": "m", "system": "s" * 300, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": tool_input}]},
        {"role": "user", "content": "x" * 200}], "tools": [{"name": "tiny"}]}
    record = ExchangeRecord(id="req_exact", stream=True, status=200)
    record.client_request = {"method": "POST", "path": "/v1/messages", "headers": {}, "body_raw": json_bytes(body)}
    record.upstream_request = {"url": "http://up/v1", "headers": {}, "body": body}
    record.upstream_response = {"status": 200, "chunks": [[1.0, "data: {\"a\": 1}\n\n"], [2.5, "\x00junk"]]}
    record.client_response = {"events": [[1.0, 0, {"type": "message_start", "n": 2**80}]], "message": {"id": "m"}}
    recorder.submit(record)
    assert recorder.flush(10)
    [exchange] = stored(["req_exact"])
    assert exchange.bodies is not None
    got, want = exchange_export(exchange), exchange_export(whole(record))
    assert [json_bytes(got[c]) for c in BODY_COLUMNS] == [json_bytes(want[c]) for c in BODY_COLUMNS]
    assert exchange.client_request["body"]["messages"][0]["content"][0]["input"]["big"] == 2**70


def test_rows_written_before_pieces_are_read_as_they_were(db: None) -> None:
    request = {"method": "POST", "headers": {"b": "1", "a": "2"}, "body": {"model": "m", "messages": []}}
    Exchange.objects.create(id="req_legacy", created_at=recorder.started_at, client_request=request)
    [exchange] = stored(["req_legacy"])
    assert exchange.bodies is None and exchange.client_request == request


@pytest.fixture
def aged(monkeypatch: pytest.MonkeyPatch, submitted: dict[str, ExchangeRecord]) -> Iterator[Callable[[float], None]]:
    """Records submitted from now on are dated this many days back (as if sent then)."""
    days = [0.0]
    submit = recorder.submit

    def aging(record: ExchangeRecord) -> None:
        record.created_at -= timedelta(days=days[0])
        submit(record)

    monkeypatch.setattr(recorder, "submit", aging)

    def set_days(value: float) -> None:
        days[0] = value

    yield set_days


def test_pruning_by_age_keeps_every_piece_a_kept_exchange_holds_and_drops_the_rest(
        session_send: Callable[..., list[Turn]], submitted: dict[str, ExchangeRecord],
        aged: Callable[[float], None]) -> None:
    aged(10)
    session_send(5, session_id="old-session", seed=1)
    old = set(submitted)
    aged(0)
    session_send(4, session_id="new-session", seed=2)
    new = set(submitted) - old
    pieces_before = set(Piece.objects.values_list("hash", flat=True))
    assert exchanges_prune(days=5, max_count=0) == len(old)
    kept = stored(new)
    assert len(kept) == len(new) and not Exchange.objects.filter(pk__in=old).exists()
    left = set(Piece.objects.values_list("hash", flat=True))
    assert left == referenced(kept) and left < pieces_before  # the old session's own pieces are gone
    assert_exact(kept, submitted)


def test_pruning_by_size_deletes_the_oldest_until_rows_and_pieces_fit(
        session_send: Callable[..., list[Turn]], submitted: dict[str, ExchangeRecord],
        aged: Callable[[float], None]) -> None:
    for days, session in ((3, "s3"), (2, "s2"), (1, "s1")):
        aged(days)
        session_send(3, session_id=session, seed=days)
    aged(0)
    session_send(3, session_id="s0", seed=0)
    total = stored_bytes()
    by_age = sorted(submitted, key=lambda i: submitted[i].created_at)
    # A byte over: the oldest exchange goes, and the pieces the rest of its session holds stay.
    assert exchanges_prune(days=0, max_count=0, max_bytes=total - 1) == 1
    assert not Exchange.objects.filter(pk=by_age[0]).exists() and stored_bytes() <= total - 1
    kept = stored(submitted)
    assert referenced(kept) <= set(Piece.objects.values_list("hash", flat=True))
    assert_exact(kept, submitted)
    newest = by_age[-3:]
    deleted = 1 + exchanges_prune(days=0, max_count=0, max_bytes=total // 2)
    assert deleted >= 3 and stored_bytes() <= total // 2
    kept = stored(submitted)
    assert [e.id for e in kept][-3:] == newest and len(kept) == len(submitted) - deleted
    assert min(e.created_at for e in kept) > min(r.created_at for r in submitted.values())
    assert referenced(kept) <= set(Piece.objects.values_list("hash", flat=True))
    assert_exact(kept, submitted)



def test_pieces_deleted_behind_the_writers_back_are_stored_again_by_the_next_exchange_holding_them(
        session_send: Callable[..., list[Turn]], submitted: dict[str, ExchangeRecord]) -> None:
    session_send(2, session_id="first")
    Piece.objects.all().delete()  # the writer still remembers having stored them
    session_send(2, session_id="second")  # the same system prompt, tools and first message
    second = [e for e in stored(submitted) if e.session_id == "second"]
    assert len(second) == 2
    assert referenced(second) <= set(Piece.objects.values_list("hash", flat=True))
    assert_exact(second, submitted)


def test_a_piece_used_again_soon_is_neither_bumped_nor_written_again(
        session_send: Callable[..., list[Turn]]) -> None:
    session_send(2)
    before = dict(Piece.objects.values_list("hash", "last_used"))
    session_send(2)  # the same requests again: their pieces exist and were used moments ago
    after = dict(Piece.objects.values_list("hash", "last_used"))
    assert {h: after[h] for h in before} == before
    assert len(after) > len(before)  # the new streams (other timings, other message ids) are new pieces


def test_rows_written_whole_are_compacted_into_pieces_and_read_back_as_before(
        session_send: Callable[..., list[Turn]], submitted: dict[str, ExchangeRecord], settings: Any) -> None:
    settings.INSPECTOR_STORE_PIECES = False
    session_send(4)
    before = {e.id: exchange_export(e) for e in stored(submitted)}
    assert all(e["client_request"] for e in before.values()) and not Piece.objects.exists()
    out = StringIO()
    call_command("compactexchanges", "--batch", "3", stdout=out)
    assert out.getvalue().strip() == "Compacted 4 exchanges."
    after = stored(submitted)
    assert all(blob and request == {} for blob, request in Exchange.objects.values_list("bodies", "client_request"))
    for exchange in after:
        got = exchange_export(exchange)
        assert [json_bytes(got[c]) for c in BODY_COLUMNS] == [json_bytes(before[exchange.id][c]) for c in BODY_COLUMNS]
        assert got == before[exchange.id]
    assert referenced(after) == set(Piece.objects.values_list("hash", flat=True))
    call_command("compactexchanges", stdout=out)  # nothing left to do
    assert out.getvalue().strip().endswith("Compacted 0 exchanges.")


def test_the_writers_piece_memory_stays_bounded_under_a_busy_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """More new pieces within the slack than the bound (a writer above ~100 pieces a second):
    the least recently used are forgotten, the newest kept (it grew ~0.4 KB per exchange)."""
    from datetime import UTC, datetime, timedelta

    from inspector import storage

    monkeypatch.setattr(storage, "_CACHE_MAX", 1000)
    cache = storage.PieceCache()
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for batch in range(100):  # 100 batches of 30 pieces within one second: all within the slack
        at = start + timedelta(milliseconds=10 * batch)
        cache.remember(storage.Stored(inserted=[f"{batch}-{n}" for n in range(30)]), at)
        assert len(cache) <= 1000 + 30
    newest = start + timedelta(milliseconds=990)
    assert cache.stale(["99-0", "99-29"], newest) == []  # the newest are remembered
    assert cache.stale(["0-0"], newest) == ["0-0"]  # the oldest were forgotten: bumped again if used
