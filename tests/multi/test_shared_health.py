"""Passive health shared by two instances (issue 16): instance A finds a replica failing and
ejects it; instance B, which never sent it a request, skips it too (through Redis), so B's
clients never wait on the dead replica."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPO
from tests.mockbackend import MockServerThread
from tests.multi.conftest import KEYS, Instances
from tests.operator import operator_headers

pytestmark = pytest.mark.multi

SETUP = """
from gateway.models import Backend, Route, RouteTarget
sick = Backend.objects.create(name="multi-sick", base_url={url!r}, preset="vllm", read_timeout=10)
route = Route.objects.create(model="multi-failover", backend=sick, upstream_model="replica", order=5)
RouteTarget.objects.create(route=route, backend=Backend.objects.get(name="multi-mock"), upstream_model="mock-text",
                           priority=1)
"""


@pytest.fixture
def sick(instances: Instances) -> Iterator[MockServerThread]:
    with MockServerThread(scenario="http_503") as mock:
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP.format(url=mock.url)], cwd=REPO,
                              env=instances.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        yield mock


def until(check: object, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def listed(origin: str) -> bool:
    r = httpx.get(f"{origin}/v1/models", headers={"x-api-key": KEYS["steady"]}, timeout=5)
    return any(m["id"] == "multi-failover" for m in r.json()["data"])


def ejected(origin: str) -> bool:
    report = httpx.get(f"{origin}/healthz?verbose=1", headers=operator_headers(), timeout=5).json()
    return report.get("backends", {}).get("multi-sick", {}).get("state") == "ejected"


def ask(origin: str) -> httpx.Response:
    body = {"model": "multi-failover", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(f"{origin}/v1/messages", json=body, headers={"x-api-key": KEYS["steady"]}, timeout=20)


def test_a_replica_ejected_on_one_instance_is_skipped_by_the_other(instances: Instances,
                                                                   sick: MockServerThread) -> None:
    until(lambda: listed(instances.a) and listed(instances.b))
    while not ejected(instances.a):
        r = ask(instances.a)
        assert r.status_code == 200, r.text  # the 503 fails over to the fallback
        assert len(sick.requests) <= 3  # DRAGOMAN_EJECT_FAILURES
    hits = len(sick.requests)
    assert hits == 3
    until(lambda: ejected(instances.b))  # within DRAGOMAN_HEALTH_SYNC_SECONDS (0.5 s)
    for _ in range(5):
        r = ask(instances.b)
        assert r.status_code == 200, r.text
    assert len(sick.requests) == hits  # B never asked the sick replica
    report = httpx.get(f"{instances.b}/healthz?verbose=1", headers=operator_headers(), timeout=5).json()["backends"]["multi-sick"]
    assert "503" in report["last_error"] and report["ejected_by"]
