"""Many instances (issue 9): two gateway processes on one PostgreSQL and one Redis.

What an operator changes in the admin of instance A is served by instance B within about a
second (the config refresh interval, 1 s by default): routes, backend capabilities, key
revocation (also on B's first request after being idle, so a revoked key never gets through on
a quiet instance). The live tail on A shows traffic that B serves, through Redis. Instances
started together with the same ``DRAGOMAN_CONFIG`` all come up.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.conftest import REPO
from tests.e2e.conftest import free_port
from tests.mockbackend.scenarios import TEXT_REPLY
from tests.multi.conftest import KEYS, AdminSession, Instances

pytestmark = pytest.mark.multi

REFRESH_SECONDS = 1.0  # DRAGOMAN_CONFIG_REFRESH_SECONDS, the default
APPLIED_WITHIN = 2.0  # what the tests allow: the interval, plus a request and a database round trip


def ask(origin: str, text: str, *, key: str = KEYS["steady"], **extra: Any) -> httpx.Response:
    body = {"model": "multi-route", "max_tokens": 500, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{origin}/v1/messages", json=body, headers={"x-api-key": key}, timeout=10)


def reply_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return "".join(block.get("text", "") for block in response.json()["content"])


def seconds_until(check: Callable[[], bool], *, limit: float = 10.0, every: float = 0.05) -> float:
    """How long until ``check()`` holds, polling; fails after ``limit`` seconds."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit, f"not applied after {limit} s"
        time.sleep(every)
    return time.monotonic() - start


def mock_body(instances: Instances, marker: str) -> dict[str, Any]:
    for entry in reversed(instances.mock.requests):
        body = entry.get("body")
        if isinstance(body, dict) and marker in json.dumps(body.get("messages")):
            return body
    raise AssertionError(f"the backend never got {marker!r}")


def test_a_route_changed_in_the_admin_of_one_instance_is_served_by_the_other_within_a_second(
    instances: Instances, admin_a: AdminSession,
) -> None:
    assert reply_text(ask(instances.b, "before")) == TEXT_REPLY
    path = f"/admin/gateway/route/{instances.row_id('gateway_route', 'model', 'multi-route')}/change/"
    try:
        admin_a.save(path, {"upstream_model": "mock-demo"})  # the mock's scenario is the upstream model
        saved = time.monotonic()
        assert reply_text(ask(instances.a, "on a")).startswith("Hello from the Dragoman mock backend!")
        seconds_until(lambda: reply_text(ask(instances.b, "on b")).startswith("Hello from the Dragoman"))
        delay = time.monotonic() - saved
        print(f"route change applied by the other instance after {delay:.2f} s")
        assert delay <= APPLIED_WITHIN
    finally:
        admin_a.save(path, {"upstream_model": "mock-text"})


def test_a_backend_capability_changed_on_one_instance_is_applied_by_the_other_within_a_second(
    instances: Instances, admin_a: AdminSession,
) -> None:
    counter = iter(range(10_000))

    def b_sends_max_tokens() -> int:
        marker = f"cap-{next(counter)}"
        reply_text(ask(instances.b, marker))
        return int(mock_body(instances, marker)["max_tokens"])

    assert b_sends_max_tokens() == 500
    path = f"/admin/gateway/backend/{instances.row_id('gateway_backend', 'name', 'multi-mock')}/change/"
    try:
        admin_a.save(path, {"cap_max_tokens_cap": "77"})
        saved = time.monotonic()
        seconds_until(lambda: b_sends_max_tokens() == 77)
        delay = time.monotonic() - saved
        print(f"capability change applied by the other instance after {delay:.2f} s")
        assert delay <= APPLIED_WITHIN
    finally:
        admin_a.save(path, {"cap_max_tokens_cap": ""})


def test_a_key_disabled_on_one_instance_is_refused_by_the_other_even_on_its_first_request_after_idling(
    instances: Instances, admin_a: AdminSession,
) -> None:
    key = KEYS["disabled"]
    assert ask(instances.b, "still allowed", key=key).status_code == 200
    path = f"/admin/gateway/apikey/{instances.row_id('gateway_apikey', 'name', 'disabled')}/change/"
    admin_a.save(path, {"enabled": None})
    # No traffic on B meanwhile: its first request after the interval must already see the change.
    time.sleep(REFRESH_SECONDS + 0.2)
    refused = ask(instances.b, "revoked", key=key)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["type"] == "authentication_error"
    assert ask(instances.a, "revoked", key=key).status_code == 401
    assert ask(instances.b, "others unaffected").status_code == 200


def test_a_key_deleted_on_one_instance_is_refused_by_the_other_within_a_second(
    instances: Instances, admin_a: AdminSession,
) -> None:
    key = KEYS["deleted"]
    assert ask(instances.b, "still allowed", key=key).status_code == 200
    admin_a.delete(f"/admin/gateway/apikey/{instances.row_id('gateway_apikey', 'name', 'deleted')}/delete/")
    deleted = time.monotonic()
    seconds_until(lambda: ask(instances.b, "deleted?", key=key).status_code == 401)
    delay = time.monotonic() - deleted
    print(f"key deletion applied by the other instance after {delay:.2f} s")
    assert delay <= APPLIED_WITHIN


def test_the_live_tail_of_one_instance_shows_traffic_served_by_the_other(
    instances: Instances, admin_a: AdminSession,
) -> None:
    ws_url = instances.a.replace("http://", "ws://") + "/admin/inspector/exchange/live/ws"
    with connect(ws_url, origin=Origin(instances.a), additional_headers={"Cookie": admin_a.session_cookie},
                 open_timeout=5) as tail:
        time.sleep(0.2)  # the subscription reaches Redis before the traffic does
        with httpx.stream("POST", f"{instances.b}/v1/messages", headers={"x-api-key": KEYS["steady"]}, timeout=10,
                          json={"model": "multi-route", "max_tokens": 100, "stream": True,
                                "messages": [{"role": "user", "content": "live"}]}) as response:
            assert response.status_code == 200
            request_id = response.headers["request-id"]
            response.read()
        states: list[str] = []
        deadline = time.monotonic() + 5
        while "done" not in states and time.monotonic() < deadline:
            summary = json.loads(tail.recv(timeout=max(0.01, deadline - time.monotonic())))
            if summary["id"] == request_id:
                states.append(summary["state"])
                assert summary["client_model"] == "multi-route" and summary["stream"] is True
    assert states == ["in-flight", "done"]
    # ...and the exchange B recorded is in the inspector that A serves (one shared store).
    seconds_until(lambda: admin_a.http.get(f"/admin/inspector/exchange/{request_id}/change/").status_code == 200,
                  limit=5)


ROWS = 150  # a config long enough that the instances' start-up transactions overlap


def test_instances_started_together_with_one_config_file_all_come_up_and_create_each_row_once(
    instances: Instances, tmp_path: Path,
) -> None:
    base, _, _ = instances.db_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE dragoman_together")
    config = tmp_path / "dragoman.yaml"
    config.write_text("backends:\n" + "".join(
        f"  - {{name: b{i}, base_url: {instances.mock.url}, preset: vllm}}\n" for i in range(ROWS)
    ) + "routes:\n" + "".join(f"  - {{model: m{i}, backend: b{i}}}\n" for i in range(ROWS))
      + f"keys:\n  - {{name: together, key: {KEYS['steady']}}}\n")
    env = {**instances.env, "DATABASE_URL": f"{base}/dragoman_together", "DRAGOMAN_CONFIG": str(config)}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=120)
    ports = [free_port() for _ in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "gateway.asgi:application"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for port in ports]
    try:
        up: set[int] = set()
        deadline = time.monotonic() + 30
        while len(up) < len(ports) and time.monotonic() < deadline and all(p.poll() is None for p in procs):
            for port in set(ports) - up:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        up.add(port)
            time.sleep(0.1)
        assert [p.poll() for p in procs] == [None] * len(procs), "an instance died at start-up"
        assert up == set(ports)
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            counts = [conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                      for table in ("gateway_backend", "gateway_route", "gateway_apikey")]
        assert counts == [(ROWS,), (ROWS,), (1,)]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
