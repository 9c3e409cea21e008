"""A route of three replicas and a fallback of another kind, under daphne, on real sockets.

Three mock vLLM replicas (each its own server) and an Anthropic-native fallback behind one model:
every turn of a session lands on one replica; a replica killed mid-run costs no client an HTTP
error (only streams it was serving see ``event: error``), its sessions move and come back after
the cool-down; a replica answering 429 with ``retry-after`` is skipped that long; with every
replica down the fallback answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.conftest import E2E_KEY, _database_url, _drop_database, daphne_serving, free_port
from tests.mockbackend import MockServerThread

EJECT_SECONDS = 2.0
REPLICAS = ("rep-a", "rep-b", "rep-c")

SETUP = """
from gateway.models import Backend, Route, RouteTarget
from gateway.services import apikey_create
urls = {urls!r}
made = {{name: Backend.objects.create(name=name, base_url=url, preset="vllm", connect_timeout=1, read_timeout=10)
        for name, url in urls.items() if name != "cloud"}}
made["cloud"] = Backend.objects.create(name="cloud", kind="anthropic", base_url=urls["cloud"], preset="anthropic",
                                       read_timeout=10)
team = Route.objects.create(model="team-model", backend=made["rep-a"], upstream_model="replica", max_attempts=4)
RouteTarget.objects.create(route=team, backend=made["rep-b"], upstream_model="replica")
RouteTarget.objects.create(route=team, backend=made["rep-c"], upstream_model="replica")
RouteTarget.objects.create(route=team, backend=made["cloud"], upstream_model="claude-fallback", priority=1)
busy = Route.objects.create(model="busy-model", backend=made["rep-busy"], upstream_model="replica")
RouteTarget.objects.create(route=busy, backend=made["rep-c"], upstream_model="replica")
apikey_create(name="e2e", secret={key!r})
"""


@dataclass
class Team:
    url: str
    replicas: dict[str, MockServerThread]
    ports: dict[str, int]
    busy: MockServerThread
    cloud: MockServerThread
    mocks_started: list[MockServerThread] = field(default_factory=list)

    def replica_start(self, name: str) -> None:
        mock = MockServerThread(port=self.ports[name], scenario="bench", events=20, delay_ms=20).start()
        self.replicas[name] = mock
        self.mocks_started.append(mock)

    def replica_stop(self, name: str) -> None:
        self.replicas[name].stop()

    def served_by(self, marker: str) -> list[str]:
        """The replicas whose logs hold a request carrying ``marker``."""
        found = []
        for name, mock in self.replicas.items():
            for entry in list(mock.requests):
                if marker in json.dumps(entry.get("body")):
                    found.append(name)
        return found


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    tmp = tmp_path_factory.mktemp("routing")
    replicas = {name: MockServerThread(scenario="bench", events=20, delay_ms=20).start() for name in REPLICAS}
    busy = MockServerThread(scenario="http_429").start()
    cloud = MockServerThread().start()
    ports = {name: mock.port for name, mock in replicas.items()}
    db_url, pg_name = _database_url(tmp)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "DRAGOMAN_SECRET_KEY": "e2e-secret", "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SETTINGS_MODULE": "gateway.settings",
           "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05", "DRAGOMAN_EJECT_FAILURES": "2",
           "DRAGOMAN_EJECT_WINDOW_SECONDS": "10", "DRAGOMAN_EJECT_SECONDS": str(EJECT_SECONDS)}
    env.pop("DRAGOMAN_CONFIG", None)
    urls = {**{name: mock.url for name, mock in replicas.items()}, "rep-busy": busy.url, "cloud": cloud.url}
    for args in (["migrate", "--noinput"], ["shell", "-c", SETUP.format(urls=urls, key=E2E_KEY)]):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    found = Team(url=f"http://127.0.0.1:{port}", replicas=replicas, ports=ports, busy=busy, cloud=cloud)
    try:
        with daphne_serving(url=found.url, port=port, env=env, log_path=Path(tmp) / "daphne.log"):
            yield found
    finally:
        for mock in [*found.replicas.values(), *found.mocks_started, busy, cloud]:
            mock.stop()
        if pg_name:
            _drop_database(db_url, pg_name)


def body(model: str, text: str, *, stream: bool) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": text}]}


def headers(session: str = "") -> dict[str, str]:
    out = {"x-api-key": E2E_KEY}
    if session:
        out["x-claude-code-session-id"] = session
    return out


@dataclass
class Turn:
    session: int
    marker: str
    started: float
    status: int = 0
    stream_error: bool = False
    finished: bool = False


def stream_turn(client: httpx.Client, url: str, session: int, session_id: str, n: int) -> Turn:
    marker = f"s{session}-t{n}-{uuid.uuid4().hex[:6]}"
    turn = Turn(session, marker, time.monotonic())
    with client.stream("POST", f"{url}/v1/messages", json=body("team-model", f"{marker} hello", stream=True),
                       headers=headers(session_id)) as response:
        turn.status = response.status_code
        if response.status_code != 200:
            response.read()
            return turn
        for line in response.iter_lines():
            if line.startswith("event: error"):
                turn.stream_error = True
            if line.startswith("event: message_stop"):
                turn.finished = True
    return turn


def until(check: Callable[[], bool], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def test_every_turn_of_a_session_lands_on_one_replica(team: Team) -> None:
    placements: dict[int, list[str]] = {}
    with httpx.Client(timeout=20) as client:
        for s in range(24):
            session_id = f"affinity-{s}-{uuid.uuid4()}"
            for n in range(6):
                marker = f"aff{s}-t{n}-{uuid.uuid4().hex[:6]}"
                r = client.post(f"{team.url}/v1/messages", json=body("team-model", marker, stream=False),
                                headers=headers(session_id))
                assert r.status_code == 200, r.text
                placements.setdefault(s, []).extend(team.served_by(marker))
    turns = sum(len(p) for p in placements.values())
    on_home = sum(Counter(p).most_common(1)[0][1] for p in placements.values())
    assert turns == 24 * 6
    assert on_home / turns >= 0.99, placements
    assert len({Counter(p).most_common(1)[0][0] for p in placements.values()}) == 3  # sessions spread


def test_a_replica_killed_mid_run_costs_no_client_error_and_its_sessions_come_back(team: Team) -> None:
    sessions = 12
    ids = {s: f"kill-{s}-{uuid.uuid4()}" for s in range(sessions)}
    turns: list[Turn] = []
    phase = {"stop": False}
    lock = threading.Lock()

    def run(s: int) -> None:
        with httpx.Client(timeout=20) as client:
            n = 0
            while not phase["stop"]:
                turn = stream_turn(client, team.url, s, ids[s], n)
                with lock:
                    turns.append(turn)
                n += 1

    threads = [threading.Thread(target=run, args=(s,), daemon=True) for s in range(sessions)]
    for t in threads:
        t.start()
    until(lambda: len(turns) >= sessions * 2)
    with lock:
        home = {t.session: team.served_by(t.marker) for t in turns}
    on_b = {s for s, where in home.items() if where == ["rep-b"]}
    assert on_b, f"no session landed on rep-b: {home}"
    killed_at = time.monotonic()
    team.replica_stop("rep-b")
    until(lambda: sum(1 for t in turns if t.started > killed_at + 0.5) >= sessions * 2)
    team.replica_start("rep-b")  # same port, after its sessions moved
    restarted_at = time.monotonic()
    until(lambda: sum(1 for t in turns if t.started > restarted_at + EJECT_SECONDS + 0.5) >= sessions * 3)
    phase["stop"] = True
    for t in threads:
        t.join(30)

    assert all(t.status == 200 for t in turns), Counter(t.status for t in turns)
    broken = [t for t in turns if t.stream_error]
    assert all(t.started < killed_at and t.session in on_b for t in broken), broken
    assert all(t.finished for t in turns if not t.stream_error)
    moved = [t for t in turns if t.session in on_b and killed_at + 0.5 < t.started < restarted_at]
    assert moved and all(team.served_by(t.marker) in (["rep-a"], ["rep-c"]) for t in moved)
    back = [t for t in turns if t.session in on_b and t.started > restarted_at + EJECT_SECONDS + 1.0]
    assert back and all(team.served_by(t.marker) == ["rep-b"] for t in back), [
        (t.marker, team.served_by(t.marker)) for t in back]


def test_a_replica_answering_429_with_retry_after_is_skipped_that_long(team: Team) -> None:
    with httpx.Client(timeout=20) as client:
        def ask() -> httpx.Response:
            r = client.post(f"{team.url}/v1/messages", json=body("busy-model", "hi", stream=False), headers=headers())
            assert r.status_code == 200, r.text  # the 429 fails over to rep-c
            return r

        until(lambda: (ask(), len(team.busy.requests))[1] >= 1)
        refused_at = time.monotonic()
        seen = len(team.busy.requests)
        while time.monotonic() < refused_at + 1.5:  # retry-after: 2
            ask()
        assert len(team.busy.requests) == seen
        until(lambda: (ask(), len(team.busy.requests))[1] > seen, limit=10)
        assert time.monotonic() - refused_at >= 1.9


def test_with_every_replica_down_the_fallback_of_another_kind_answers(team: Team) -> None:
    for name in REPLICAS:
        team.replica_stop(name)
    try:
        with httpx.Client(timeout=20) as client:
            for n in range(4):
                r = client.post(f"{team.url}/v1/messages", json=body("team-model", f"down {n}", stream=n % 2 == 1),
                                headers=headers(f"down-{n}"))
                assert r.status_code == 200, r.text
            assert len(team.cloud.requests) >= 4
            sent = team.cloud.requests[-1]
            assert sent["path"] == "/v1/messages" and sent["body"]["model"] == "claude-fallback"
    finally:
        for name in REPLICAS:
            team.replica_start(name)
