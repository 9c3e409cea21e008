"""The batching writer: requests never wait for it, a failing store costs only the records in
flight (counted, logged, shown by ``recorder_stats()``), and it recovers on its own."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from inspector.models import Exchange
from inspector.recorder import ExchangeRecord, recorder, recorder_stats
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, parse_sse, sse_chunks, sse_response, user_request

pytestmark = pytest.mark.django_db(transaction=True)


async def post(body: dict[str, Any]) -> Any:
    response = await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                        headers={"x-api-key": KEY})
    if body.get("stream"):
        response.events = parse_sse(b"".join([c async for c in response.streaming_content]))
    return response


@pytest.fixture
def replies(upstream: Upstream) -> Upstream:
    upstream.handler = lambda request: (sse_response(sse_chunks([{"content": "Hi"}]))
                                        if json.loads(request.content).get("stream")
                                        else httpx.Response(200, json=chat_completion("Hi")))
    return upstream


async def test_requests_succeed_while_the_store_fails_and_the_loss_is_counted_and_logged(
    gateway_setup: str, replies: Upstream, recorded: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    def store_down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database is down")

    before = recorder_stats()
    monkeypatch.setattr(Exchange.objects, "bulk_create", store_down)
    with caplog.at_level(logging.ERROR, logger="inspector.recorder"):
        plain = await post(user_request())
        streamed = await post(user_request(stream=True))
        assert plain.status_code == 200 and streamed.events[-1][0] == "message_stop"
        assert await recorded() == []
    during = recorder_stats()
    assert during["lost"] == before["lost"] + 2 and during["store_failed"] == before["store_failed"] + 2
    assert during["last_error"] == "ConnectionError: database is down"
    assert during["last_error_at"] is not None
    assert any("could not store" in r.getMessage() and "database is down" in r.getMessage()
               for r in caplog.records)
    # The store is back: the next exchanges persist again.
    monkeypatch.undo()
    again = await post(user_request())
    [x] = await recorded()
    assert x.id == again["request-id"]
    after = recorder_stats()
    assert after["lost"] == during["lost"] and after["persisted"] == during["persisted"] + 1


async def test_a_full_queue_drops_new_records_without_blocking_and_counts_them(
    gateway_setup: str, replies: Upstream, recorded: Any, settings: Any
) -> None:
    settings.INSPECTOR_QUEUE_MAX = 1
    # Hold the writer back with a slow flush so the queue stays full.
    settings.INSPECTOR_FLUSH_SECONDS = 0.5
    before = recorder_stats()
    responses = [await post(user_request()) for _ in range(5)]
    assert all(r.status_code == 200 for r in responses)
    stored = await recorded()
    after = recorder_stats()
    assert after["dropped"] - before["dropped"] == 5 - len(stored)
    assert after["dropped"] > before["dropped"]
    assert after["lost"] - before["lost"] == after["dropped"] - before["dropped"]


def test_a_record_the_writer_cannot_convert_is_lost_alone(transactional_db: None) -> None:
    class Unstorable(ExchangeRecord):
        def as_model_kwargs(self) -> dict[str, Any]:
            raise ValueError("cannot convert")

    before = recorder_stats()
    recorder.submit(Unstorable(id="req_bad"))
    recorder.submit(ExchangeRecord(id="req_good"))
    assert recorder.flush(5)
    assert list(Exchange.objects.values_list("id", flat=True)) == ["req_good"]
    after = recorder_stats()
    assert after["lost"] == before["lost"] + 1 and after["persisted"] == before["persisted"] + 1


def test_records_submitted_together_are_written_in_one_batch(transactional_db: None, settings: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []
    real = Exchange.objects.bulk_create

    def counting(objs: list[Exchange], **kwargs: Any) -> Any:
        batches.append(len(objs))
        return real(objs, **kwargs)

    monkeypatch.setattr(Exchange.objects, "bulk_create", counting)
    settings.INSPECTOR_FLUSH_SECONDS = 0.3
    for i in range(50):
        recorder.submit(ExchangeRecord(id=f"req_{i}"))
    assert recorder.flush(5)
    assert sum(batches) == 50 and len(batches) <= 2
    assert Exchange.objects.count() == 50


def test_submit_returns_at_once_whatever_the_store_does(transactional_db: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_store(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)
        raise TimeoutError("database is slow")

    monkeypatch.setattr(Exchange.objects, "bulk_create", slow_store)
    started = time.perf_counter()
    for i in range(100):
        recorder.submit(ExchangeRecord(id=f"req_{i}"))
    assert time.perf_counter() - started < 0.1
    assert recorder.flush(5)


async def test_stats_reports_every_counter(gateway_setup: str) -> None:
    stats = await sync_to_async(recorder_stats)()
    assert set(stats) >= {"started_at", "submitted", "persisted", "lost", "dropped", "skipped", "queued",
                          "pruned", "last_error", "last_error_at"}


def test_a_record_the_store_refuses_costs_nobody_else_and_nul_characters_are_kept_visible() -> None:
    """PostgreSQL refuses NUL in text and jsonb; a batch holding one such record used to be lost
    whole. Here the batch persists: each NUL becomes U+2400 where the store cannot hold it."""
    deep = b"[" * 5000 + b"1234567890123456789" + b"]" * 5000  # json.loads path, too deep: kept as text
    records = [ExchangeRecord(id=f"req_nul_{n}", endpoint="messages") for n in range(3)]
    records[0].client_request = {"headers": {}, "body_raw": b'{"messages": [{"content": "a\\u0000b"}]}'}
    records[0].error_message = "junk \x00 from the backend"
    records[1].client_request = {"headers": {}, "body_raw": deep}
    records[2].client_request = {"headers": {}, "body_raw": b'{"ok": true}'}
    before = recorder_stats()
    for record in records:
        record.status = 200
        recorder.submit(record)
    assert recorder.flush(timeout=10)
    after = recorder_stats()
    assert after["lost"] == before["lost"]
    rows = {x.id: x for x in Exchange.objects.filter(id__startswith="req_nul_")}
    assert set(rows) == {"req_nul_0", "req_nul_1", "req_nul_2"}
    nul_text = rows["req_nul_0"].client_request["body"]["messages"][0]["content"]
    assert nul_text in ("a\x00b", "a\u2400b")  # SQLite keeps NUL; PostgreSQL shows it as U+2400
    assert rows["req_nul_0"].error_message in ("junk \x00 from the backend", "junk \u2400 from the backend")
    assert rows["req_nul_1"].client_request["body_text"].startswith("[[[")
    assert rows["req_nul_2"].client_request["body"] == {"ok": True}


def test_stop_writes_what_was_submitted_and_ends_the_writer(transactional_db: None, settings: Any) -> None:
    from inspector.recorder import Recorder

    settings.INSPECTOR_FLUSH_SECONDS = 30  # stop does not wait for the batch window
    own = Recorder()
    own.start()
    for i in range(3):
        own.submit(ExchangeRecord(id=f"req_stop_{i}"))
    assert own.stop(timeout=10)
    assert not own.running
    assert own.stats()["persisted"] == 3 and own.stats()["queued"] == 0
    assert Exchange.objects.filter(id__startswith="req_stop_").count() == 3
