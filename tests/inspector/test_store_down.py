"""The inspector's store locked or gone: requests still succeed fast, the lost records are
counted (``/healthz?verbose=1``, the admin's exchange list) and logged, and once the store is
back new exchanges persist again.

A real gateway under daphne with its own database (SQLite, or PostgreSQL when the suite runs on
it) and the mock backend; the store is taken away from outside, as an operator's mistake or an
outage would: on SQLite another connection holds the write lock (``BEGIN EXCLUSIVE``) or the
table is renamed away; on PostgreSQL another session holds ``LOCK TABLE … ACCESS EXCLUSIVE`` or
the database stops accepting connections and the gateway's sessions are terminated.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import _database_url, _drop_database, daphne_serving, free_port
from tests.mockbackend import MockServerThread
from tests.operator import operator_headers

pytestmark = pytest.mark.e2e

KEY = "dgm_store_down_key_0123456789abcd"
QUEUE_MAX = 3
ADMIN_PASSWORD = "store-down-admin-pw-1"


@dataclass
class Gateway:
    url: str
    db_url: str
    log: Path

    @property
    def postgres(self) -> bool:
        return not self.db_url.startswith("sqlite:///")

    def ask(self, text: str, *, stream: bool) -> httpx.Response:
        body = {"model": "mock-text", "max_tokens": 50, "stream": stream,
                "messages": [{"role": "user", "content": text}]}
        response = httpx.post(f"{self.url}/v1/messages", headers={"x-api-key": KEY}, json=body, timeout=10)
        assert response.status_code == 200, response.text
        if stream:
            assert response.text.rstrip().endswith('data: {"type":"message_stop"}'), response.text[-300:]
        return response

    def recorder(self) -> dict[str, Any]:
        counters: dict[str, Any] = httpx.get(f"{self.url}/healthz?verbose=1", headers=operator_headers(), timeout=5).json()["recorder"]
        return counters

    def stored(self, ids: list[str]) -> set[str]:
        query = "SELECT id FROM inspector_exchange WHERE id IN ({})"
        if self.postgres:
            import psycopg

            with psycopg.connect(self.db_url) as pg:
                rows = pg.execute(query.format(", ".join(["%s"] * len(ids))), ids).fetchall()  # type: ignore[arg-type]
        else:
            with contextlib.closing(sqlite3.connect(self.db_url.removeprefix("sqlite:///"))) as conn:
                rows = conn.execute(query.format(", ".join("?" * len(ids))), ids).fetchall()
        return {row[0] for row in rows}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    import subprocess
    import sys

    from tests.conftest import REPO

    tmp = tmp_path_factory.mktemp("store-down")
    db_url, pg_name = _database_url(tmp)
    with MockServerThread() as mock:
        config = tmp / "dragoman.yaml"
        config.write_text(f"""
backends:
  - {{name: mock, base_url: "{mock.url}", preset: vllm}}
routes:
  - {{model: "mock-*", backend: mock}}
keys:
  - {{name: store-down, key: {KEY}}}
""")
        port = free_port()
        env = {**os.environ, "DATABASE_URL": db_url, "DRAGOMAN_SECRET_KEY": "store-down-secret", "DEBUG": "0",
               "ALLOWED_HOSTS": "127.0.0.1,localhost", "DRAGOMAN_CONFIG": str(config),
               "DJANGO_SETTINGS_MODULE": "gateway.settings", "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05",
               "DRAGOMAN_INSPECTOR_QUEUE_MAX": str(QUEUE_MAX), "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD}
        for command in (["migrate", "--noinput"],
                        ["createsuperuser", "--noinput", "--username", "operator", "--email", "op@example.com"]):
            done = subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        gw = Gateway(url=f"http://127.0.0.1:{port}", db_url=db_url, log=tmp / "daphne.log")
        try:
            with daphne_serving(url=gw.url, port=port, env=env, log_path=gw.log):
                gw.ask("warm-up: the config snapshot loads on the first request", stream=False)
                yield gw
        finally:
            if pg_name:
                _drop_database(db_url, pg_name)


@contextlib.contextmanager
def store_locked(gw: Gateway) -> Iterator[None]:
    """Another session holds the inspector's table: the writer's insert waits for it."""
    if gw.postgres:
        import psycopg

        with psycopg.connect(gw.db_url) as pg:
            pg.execute("LOCK TABLE inspector_exchange IN ACCESS EXCLUSIVE MODE")
            yield
            pg.rollback()
        return
    # WAL mode: readers (the config snapshot) go on; writers wait for the busy timeout (20 s).
    conn = sqlite3.connect(gw.db_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@contextlib.contextmanager
def store_gone(gw: Gateway) -> Iterator[None]:
    """Writes fail at once: PostgreSQL refuses connections (and ends the gateway's sessions);
    on SQLite the table is renamed away."""
    if gw.postgres:
        import psycopg

        base, _, name = gw.db_url.rpartition("/")
        with psycopg.connect(f"{base}/postgres", autocommit=True) as pg:
            pg.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            pg.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            try:
                yield
            finally:
                pg.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        return
    with contextlib.closing(sqlite3.connect(gw.db_url.removeprefix("sqlite:///"), isolation_level=None)) as conn:
        conn.execute("ALTER TABLE inspector_exchange RENAME TO inspector_exchange_away")
        try:
            yield
        finally:
            conn.execute("ALTER TABLE inspector_exchange_away RENAME TO inspector_exchange")


def requests_while(gw: Gateway, count: int, marker: str) -> list[str]:
    """``count`` requests, streamed and not, each answered in full and fast."""
    ids = []
    for i in range(count):
        started = time.monotonic()
        response = gw.ask(f"{marker} {i}", stream=bool(i % 2))
        assert time.monotonic() - started < 1.0, "a request waited for the inspector's store"
        ids.append(response.headers["request-id"])
    return ids


def drained(gw: Gateway) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        counters = gw.recorder()
        if counters["queued"] == 0 and counters["persisted"] + counters["store_failed"] >= counters["submitted"]:
            return counters
        assert time.monotonic() < deadline, counters
        time.sleep(0.05)


def admin_exchange_list(gw: Gateway) -> str:
    with httpx.Client(base_url=gw.url, timeout=10) as browser:
        form = browser.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, form.text[:500]
        browser.post("/admin/login/?next=/admin/", data={"csrfmiddlewaretoken": token.group(1),
                                                        "username": "operator", "password": ADMIN_PASSWORD})
        page = browser.get("/admin/inspector/exchange/")
        assert page.status_code == 200 and 'id="recorder-stats"' in page.text, page.text[:500]
        return page.text


def recorder_line(page: str) -> str:
    found = re.search(r'<p class="recorder-stats[^"]*" id="recorder-stats">(.*?)</p>', page, re.S)
    assert found, page
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(0)).split())


def test_a_locked_store_never_slows_requests_and_what_overflows_is_counted_shown_and_logged(
    gateway: Gateway,
) -> None:
    before = drained(gateway)
    with store_locked(gateway):
        ids = requests_while(gateway, 10, "locked")
        during = gateway.recorder()
        # The writer waits on its first batch; the queue holds QUEUE_MAX more; the rest is dropped.
        dropped = during["dropped"] - before["dropped"]
        assert dropped >= 10 - QUEUE_MAX - 4, during
        assert during["lost"] - before["lost"] == dropped
    after = drained(gateway)  # the lock is gone: the waiting batch and the queue go in
    assert after["store_failed"] == before["store_failed"]
    assert len(gateway.stored(ids)) == 10 - dropped  # everything not dropped, nothing twice
    log = gateway.log.read_text()
    assert re.search(r"inspector: writer queue full \(3\), \d+ exchanges dropped so far", log), log[-2000:]

    page = admin_exchange_list(gateway)
    assert 'class="recorder-stats errornote"' in page
    assert f"dropped {after['dropped']}" in recorder_line(page)

    [again] = requests_while(gateway, 1, "after the lock")
    drained(gateway)
    assert gateway.stored([again]) == {again}


def test_a_store_that_fails_costs_only_the_records_in_flight_and_new_ones_persist_once_it_is_back(
    gateway: Gateway,
) -> None:
    before = drained(gateway)
    with store_gone(gateway):
        ids = requests_while(gateway, 4, "gone")
        during = drained(gateway)
    assert during["store_failed"] - before["store_failed"] == 4
    assert during["lost"] - before["lost"] == 4
    assert during["persisted"] == before["persisted"]
    assert gateway.stored(ids) == set()
    assert "inspector: could not store" in gateway.log.read_text()

    page = admin_exchange_list(gateway)
    line = recorder_line(page)
    assert f"store_failed {during['store_failed']}" in line and f"lost {during['lost']}" in line

    back = requests_while(gateway, 2, "back")
    after = drained(gateway)
    assert gateway.stored(back) == set(back)
    assert after["store_failed"] == during["store_failed"]


def test_the_config_refresh_recovers_once_the_database_is_back(gateway: Gateway) -> None:
    with store_gone(gateway):
        time.sleep(1.1)  # past DRAGOMAN_CONFIG_REFRESH_SECONDS: the config watcher has tried (and failed)
        requests_while(gateway, 1, "config check while the database is gone")
        time.sleep(0.2)
    restored_at = len(gateway.log.read_text())
    for _ in range(2):
        time.sleep(1.1)
        requests_while(gateway, 1, "config check after")
    time.sleep(0.2)
    assert "config watch failed" not in gateway.log.read_text()[restored_at:]
