"""Retention by age and by count: ``manage.py pruneexchanges`` and the writer thread's
background pass delete the oldest exchanges in batches."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from inspector.models import Exchange
from inspector.recorder import ExchangeRecord, recorder
from inspector.retention import exchanges_prune

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def exchanges_aged(days: list[float]) -> None:
    Exchange.objects.bulk_create([Exchange(id=f"req_{i:04d}", created_at=NOW - timedelta(days=d))
                                  for i, d in enumerate(days)])


def remaining() -> list[str]:
    return sorted(Exchange.objects.values_list("id", flat=True))


@pytest.fixture(autouse=True)
def no_background_pruning(settings: Any) -> None:
    # The writer thread is shared by the whole test run: keep it from pruning under these tests.
    settings.INSPECTOR_PRUNE_SECONDS = 0


def test_exchanges_older_than_the_limit_are_deleted(db: None) -> None:
    exchanges_aged([0, 1, 29, 31, 400])
    assert exchanges_prune(days=30, max_count=0, now=NOW) == 2
    assert remaining() == ["req_0000", "req_0001", "req_0002"]


def test_only_the_newest_max_count_are_kept_in_batches(db: None) -> None:
    exchanges_aged([i / 10 for i in range(25)])
    assert exchanges_prune(days=0, max_count=7, batch=3, now=NOW) == 18
    assert remaining() == [f"req_{i:04d}" for i in range(7)]


def test_exchanges_sharing_the_boundary_timestamp_leave_exactly_max_count(db: None) -> None:
    exchanges_aged([0, 1, 1, 1, 1, 2])
    assert exchanges_prune(days=0, max_count=3, now=NOW) == 3
    assert len(remaining()) == 3 and "req_0000" in remaining()


def test_zero_means_no_limit(db: None) -> None:
    exchanges_aged([0, 1000])
    assert exchanges_prune(days=0, max_count=0, now=NOW) == 0
    assert len(remaining()) == 2


def test_the_command_takes_days_and_max_count(db: None) -> None:
    now = datetime.now(UTC)
    Exchange.objects.bulk_create([Exchange(id=f"req_{d}", created_at=now - timedelta(days=d, hours=1))
                                  for d in (0, 2, 5, 40)])
    out = StringIO()
    call_command("pruneexchanges", "--days", "3", "--max-count", "1", stdout=out)
    assert out.getvalue().strip() == "Deleted 3 exchanges."
    assert remaining() == ["req_0"]


def test_the_command_keeps_the_newest_within_max_bytes_and_refuses_negative_limits(db: None) -> None:
    now = datetime.now(UTC)
    Exchange.objects.bulk_create([Exchange(id=f"req_{d}", created_at=now - timedelta(days=d, hours=3),
                                           stored_bytes=1000) for d in range(5)])
    out = StringIO()
    call_command("pruneexchanges", "--days", "0", "--max-count", "0", "--max-bytes", "2500", stdout=out)
    assert out.getvalue().strip() == "Deleted 3 exchanges."
    assert remaining() == ["req_0", "req_1"]
    with pytest.raises(SystemExit):
        call_command("pruneexchanges", "--max-bytes", "-1", stdout=out, stderr=StringIO())
    assert remaining() == ["req_0", "req_1"]


def test_the_command_defaults_come_from_settings(db: None, settings: Any) -> None:
    settings.INSPECTOR_RETENTION_DAYS = 1
    settings.INSPECTOR_RETENTION_MAX_COUNT = 1_000_000
    now = datetime.now(UTC)
    Exchange.objects.bulk_create([Exchange(id=f"req_{d}", created_at=now - timedelta(days=d, hours=1))
                                  for d in (0, 2)])
    out = StringIO()
    # Defaults are read when the parser is built, as `manage.py pruneexchanges` does it.
    call_command("pruneexchanges", stdout=out)
    assert remaining() == ["req_0"]


@pytest.mark.django_db(transaction=True)
def test_the_writer_thread_prunes_in_the_background(settings: Any) -> None:
    now = datetime.now(UTC)
    Exchange.objects.bulk_create([Exchange(id="req_old", created_at=now - timedelta(days=90)),
                                  Exchange(id="req_new", created_at=now)])
    settings.INSPECTOR_RETENTION_DAYS = 30
    settings.INSPECTOR_RETENTION_MAX_COUNT = 0
    pruned_before = recorder.stats()["pruned"]
    settings.INSPECTOR_PRUNE_SECONDS = 0.2
    recorder.submit(ExchangeRecord(id="req_submitted"))  # makes sure the writer runs
    # Wait for the count: the writer adds to it once the whole prune (rows, then pieces) is done,
    # so the old row being gone is not yet the end of it.
    deadline = time.monotonic() + 10
    while recorder.stats()["pruned"] < pruned_before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    settings.INSPECTOR_PRUNE_SECONDS = 0
    assert recorder.flush(5)
    assert remaining() == ["req_new", "req_submitted"]
    assert recorder.stats()["pruned"] >= pruned_before + 1
