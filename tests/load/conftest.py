"""Load-test fixtures: three processes on real sockets, so none shares a GIL with another.

- the mock backend (``python -m tests.mockbackend``) in its own process;
- the gateway under daphne (``daphne_serving``, as in production), with its own database;
- the load generator (``tests/load/loadgen.py``), started by the test itself.

The test process only samples the gateway's memory (``/proc/<pid>/status``) and reads the store.
``DRAGOMAN_LOAD_SECONDS`` (default 60) sets how long the clients keep starting requests, so the
tests can be smoke-run in a few seconds while developing.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.conftest import _database_url, _drop_database, daphne_serving, free_port

LOAD_KEY = "dgm_load_key_0123456789abcdefghij"
LOAD_SECONDS = float(os.environ.get("DRAGOMAN_LOAD_SECONDS", "60"))
LOAD_CLIENTS = int(os.environ.get("DRAGOMAN_LOAD_CLIENTS", "200"))

CONFIG = """
backends:
  - name: load-mock
    base_url: {mock_url}
    preset: vllm
    read_timeout: 30
routes:
  - model: load-*
    backend: load-mock
    upstream_model: mock-model
keys:
  - name: load
    key: {key}
"""


@contextmanager
def mock_backend_process(*, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """``python -m tests.mockbackend`` on a free port in its own process; yields its origin. It keeps
    every chat request (bounded) so a test can ask it how each upstream stream ended."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mockbackend", "--port", "0", "--scenario", "bench",
             "--max-records", "1000000"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log,
        )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline().decode() if ready else ""
        if "listening on" not in line:
            raise RuntimeError(f"mock backend did not start: {line!r}\n{log_path.read_text()[-2000:]}")
        yield line.rsplit(" ", 1)[1].strip().removesuffix("/v1")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class RssSampler:
    """The gateway's resident memory every ``interval`` seconds, in a thread, while a block runs."""

    pid: int
    interval: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def running(self) -> Iterator[RssSampler]:
        start = time.monotonic()

        def sample() -> None:
            while not self._stop.wait(self.interval):
                self.samples.append((time.monotonic() - start, rss_bytes(self.pid)))

        thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(5)


@dataclass
class LoadGateway:
    url: str
    key: str
    mock_origin: str
    env: dict[str, str]
    pid: int
    tmp: Path

    def manage(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def loadgen(self, *args: str) -> dict[str, Any]:
        """Run the load generator in its own process until it is done; its JSON result."""
        out = self.tmp / f"loadgen-{time.monotonic_ns()}.json"
        cmd = [sys.executable, "-m", "tests.load.loadgen", "--url", self.url, "--key", self.key,
               "--clients", str(LOAD_CLIENTS), "--duration", str(LOAD_SECONDS), "--out", str(out), *args]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=LOAD_SECONDS + 180)
        assert done.returncode == 0, done.stderr[-3000:]
        sys.stderr.write(done.stderr)
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    def exchanges(self) -> list[dict[str, Any]]:
        """A summary of every stored Exchange, read through the ORM in a separate process."""
        out = self.manage("shell", "--no-imports", "-c", STORE_SUMMARY)
        rows: list[dict[str, Any]] = json.loads(out)
        return rows

    def exchanges_drained(self, *, expected: int, timeout: float = 120) -> list[dict[str, Any]]:
        """The stored exchanges once the inspector's writer has caught up (``expected`` rows, or
        no new rows for 10 s)."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while True:
            count = int(self.manage("shell", "--no-imports", "-c", STORE_COUNT).strip())
            if count != last:
                last, last_change = count, time.monotonic()
            if count >= expected or time.monotonic() - last_change > 10 or time.monotonic() > deadline:
                return self.exchanges()
            time.sleep(1)

    def mock_requests(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.mock_origin}/_mock/requests", timeout=60)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries


STORE_COUNT = "from inspector.models import Exchange; print(Exchange.objects.count())"

# Per row: what the assertions need, with the client's event log reduced to its event types.
STORE_SUMMARY = """
import json
from inspector.models import Exchange
rows = []
ids = list(Exchange.objects.order_by("pk").values_list("pk", flat=True))
for start in range(0, len(ids), 500):  # whole rows: their bodies come back from their pieces
    for e in Exchange.objects.filter(pk__in=ids[start:start + 500]).order_by("pk"):
        events = (e.client_response or {}).get("events") or []
        rows.append({"id": e.id, "status": e.status, "stop_reason": e.stop_reason, "disconnected": e.disconnected,
                     "valid": e.valid, "validation_error": e.validation_error, "error_type": e.error_type,
                     "client_model": e.client_model, "event_types": [ev[2]["type"] for ev in events]})
print(json.dumps(rows))
"""


@pytest.fixture
def load_gateway(tmp_path: Path) -> Iterator[LoadGateway]:
    """A fresh gateway (and database) per test, so the store holds exactly that test's traffic."""
    db_url, pg_name = _database_url(tmp_path)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "DRAGOMAN_SECRET_KEY": "load-secret", "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SETTINGS_MODULE": "gateway.settings",
           "DRAGOMAN_LOG_LEVEL": "WARNING"}
    try:
        with mock_backend_process(env=env, log_path=tmp_path / "mock.log") as mock_origin:
            config = tmp_path / "dragoman.yaml"
            config.write_text(CONFIG.format(mock_url=f"{mock_origin}/v1", key=LOAD_KEY))
            env["DRAGOMAN_CONFIG"] = str(config)
            gw = LoadGateway(url=f"http://127.0.0.1:{port}", key=LOAD_KEY, mock_origin=mock_origin, env=env,
                             pid=0, tmp=tmp_path)
            gw.manage("migrate", "--noinput")
            # A listen queue longer than daphne's default 50: 200 clients connect at once (the
            # Production layout in the README says the same).
            with daphne_serving(url=gw.url, port=port, env=env, log_path=tmp_path / "daphne.log",
                                backlog=1024) as proc:
                gw.pid = proc.pid
                yield gw
    finally:
        if pg_name:
            _drop_database(db_url, pg_name)
