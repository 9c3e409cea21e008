"""End-to-end fixtures: the mock backend and the gateway under daphne, each on a real socket.

The gateway runs as a user runs it (``daphne gateway.asgi:application``) in a subprocess with
its own database: a temporary SQLite file, or a fresh PostgreSQL database when the suite itself
runs on PostgreSQL (DATABASE_URL), so the end-to-end path is tested on both.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.mockbackend import MockServerThread

E2E_KEY = "dgm_e2e_key_0123456789abcdefghij"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _database_url(tmp: Path) -> tuple[str, str | None]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{tmp / 'e2e.sqlite3'}", None
    import psycopg

    base, _, _ = url.rpartition("/")
    name = f"dragoman_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}", name


def _drop_database(url: str, name: str) -> None:
    import psycopg

    base, _, _ = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def daphne_serving(*, url: str, port: int, env: dict[str, str], log_path: Path,
                   backlog: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """daphne serving the gateway (as ``make run`` does) until the block ends; ready at /healthz.
    Yields the process (the load tests sample its memory). ``backlog``: the listen queue
    (daphne's default is Twisted's 50, which a burst of new connections overflows)."""
    bind = ["-b", "127.0.0.1", "-p", str(port)]
    if backlog is not None:
        bind = ["-e", f"tcp:port={port}:interface=127.0.0.1:backlog={backlog}"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "daphne", *bind, "gateway.asgi:application"], cwd=REPO,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Gateway:
    url: str
    key: str
    mock: MockServerThread
    env: dict[str, str]

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout


_EXCHANGE_COLUMNS = ("status", "stream", "stop_reason", "error_type", "error_message", "disconnected", "valid",
                     "output_tokens", "notes", "upstream_response", "client_response", "attempts", "backend_name")


def exchange_fetch(database_url: str, exchange_id: str) -> dict[str, Any] | None:
    """The inspector's stored Exchange (the columns the fault tests check, JSON decoded), read
    from a gateway's own database (SQLite or PostgreSQL) as an operator would; None if not stored."""
    from inspector.storage import skeleton_hashes, skeleton_read, skeleton_rebuild

    query = f"SELECT {', '.join(_EXCHANGE_COLUMNS)}, bodies FROM inspector_exchange WHERE id = %s"
    pieces_query = "SELECT hash, data FROM inspector_piece WHERE hash IN ({})"
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            row = conn.execute(query.replace("%s", "?"), (exchange_id,)).fetchone()
            skeleton = skeleton_read(row[-1]) if row is not None and row[-1] is not None else None
            hashes = sorted(skeleton_hashes(skeleton)) if skeleton else []
            pieces = dict(conn.execute(pieces_query.format(",".join("?" * len(hashes))), hashes).fetchall()
                          if hashes else [])
    else:
        import psycopg

        with psycopg.connect(database_url) as pg:
            row = pg.execute(query, (exchange_id,)).fetchone()  # type: ignore[arg-type]
            skeleton = skeleton_read(row[-1]) if row is not None and row[-1] is not None else None
            hashes = sorted(skeleton_hashes(skeleton)) if skeleton else []
            pieces = dict(pg.execute(pieces_query.format(",".join(["%s"] * len(hashes))),
                                     hashes).fetchall() if hashes else [])
    if row is None:
        return None
    found = dict(zip(_EXCHANGE_COLUMNS, row[:-1], strict=True))
    if skeleton is not None:  # bodies stored as pieces (inspector/storage.py)
        found.update({k: v for k, v in skeleton_rebuild(skeleton, pieces).items() if k in found})
    for name in ("notes", "upstream_response", "client_response", "attempts"):
        if isinstance(found[name], str):
            found[name] = json.loads(found[name])
    for name in ("stream", "disconnected"):
        found[name] = bool(found[name])
    if found["valid"] is not None:
        found["valid"] = bool(found["valid"])
    return found


@pytest.fixture(scope="session")
def mock_backend() -> Iterator[MockServerThread]:
    with MockServerThread() as mock:
        yield mock


@pytest.fixture(scope="session")
def gateway(mock_backend: MockServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    db_url, pg_name = _database_url(tmp)
    refused_port = free_port()  # nothing listens there: the mock-refused backend
    config = tmp / "dragoman.yaml"
    config.write_text(f"""
backends:
  - name: mock-anthropic
    kind: anthropic
    base_url: {mock_backend.url}
    preset: anthropic-no-prefill
    read_timeout: 20
  - name: mock-vllm
    base_url: {mock_backend.url}
    preset: vllm
    read_timeout: 20
  - name: mock-vllm-short-timeout
    base_url: {mock_backend.url}
    preset: vllm
    read_timeout: 0.5
  - name: mock-responses
    kind: openai_responses
    base_url: {mock_backend.url}
    preset: openai
    read_timeout: 20
  - name: mock-refused
    base_url: http://127.0.0.1:{refused_port}/v1
    preset: vllm
    connect_timeout: 2
routes:
  - model: claude-opus-4-6*
    backend: mock-anthropic
    upstream_model: mock-no-prefill
    order: 10
  - model: native-prefill-*
    backend: mock-anthropic
    upstream_model: mock-no-prefill
    capabilities: {{prefill: native}}
    order: 10
  - model: native-*
    backend: mock-anthropic
    order: 20
  - model: rewrite-*
    backend: mock-vllm
    upstream_model: mock-repeats_prefill
    capabilities: {{prefill: rewrite}}
  - model: claude-*
    backend: mock-vllm
    upstream_model: mock-model
  - model: mock-*
    backend: mock-vllm
  - model: short-timeout-*
    backend: mock-vllm-short-timeout
    upstream_model: mock-model
  - model: responses-*
    backend: mock-responses
  - model: refused-*
    backend: mock-refused
keys:
  - name: e2e
    key: {E2E_KEY}
""")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "DRAGOMAN_SECRET_KEY": "e2e-secret", "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "DRAGOMAN_CONFIG": str(config),
           "DJANGO_SETTINGS_MODULE": "gateway.settings", "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05"}
    # Pings after 0.4 s of backend silence, so a test can see them without long pauses (the SDK
    # and Claude Code ignore pings, so other tests are unaffected).
    env["DRAGOMAN_STREAM_PING_SECONDS"] = "0.4"
    gw = Gateway(url=f"http://127.0.0.1:{port}", key=E2E_KEY, mock=mock_backend, env=env)
    gw.manage("migrate", "--noinput")
    try:
        with daphne_serving(url=gw.url, port=port, env=env, log_path=tmp / "daphne.log"):
            yield gw
    finally:
        if pg_name:
            _drop_database(db_url, pg_name)


@pytest.fixture
def client(gateway: Gateway):  # type: ignore[no-untyped-def]
    """The real Anthropic SDK pointed at the gateway (no retries, so failures show)."""
    import anthropic

    return anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0, timeout=30)
