"""Backends' passive health is visible: a column of the backend list and a line on the backend's
page (this process's state and the ejections every instance shares), and ``/healthz?verbose=1``
with the same, while plain ``/healthz`` still needs no database."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape

import pytest
from django.test import Client

from gateway.admin import backend_health_text
from gateway.health import INSTANCE, Ejection, health
from gateway.models import Backend, BackendHealth
from tests.operator import operator_headers


@pytest.fixture
def clean_health() -> Iterator[None]:
    """The admin and /healthz read the process's one ``Health``: start and leave it empty, with
    the default thresholds (3 failures eject)."""
    saved = (health.failures, health.window, health.cooldown)
    health.reset()
    health.configure(failures=3, window=30.0, cooldown=30.0)
    yield
    health.reset()
    health.configure(failures=saved[0], window=saved[1], cooldown=saved[2])


def clock(unix: float) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%H:%M:%S")  # the test settings' TIME_ZONE is UTC


def cell(page: str, backend: str) -> str:
    row = page.split(f">{backend}</a>", 1)[1].split("</tr>", 1)[0]
    return unescape(row.split('<td class="field-health_column">', 1)[1].split("</td>", 1)[0])


def test_the_backend_list_shows_each_backends_health(staff: Client, clean_health: None) -> None:
    for name in ("vllm-a", "vllm-b", "vllm-c", "cloud"):
        Backend.objects.create(name=name, base_url=f"http://{name}/v1")
    health.failed("vllm-a", "backend vllm-a is unreachable", retry_after=60)
    until = health.report()["vllm-a"]["ejected_until"]
    health.failed("vllm-b", "backend vllm-b answered 502")
    health.failed("vllm-b", "backend vllm-b answered 503")
    health.attempt_started("cloud")
    shared_until = time.time() + 45
    BackendHealth.objects.create(backend_name="vllm-c", ejected_until=shared_until, instance="other-host:42",
                                 last_error="backend vllm-c timed out before answering")
    page = staff.get("/admin/gateway/backend/").content.decode()
    assert cell(page, "vllm-a") == f"ejected until {clock(until)} (by {INSTANCE}): backend vllm-a is unreachable"
    assert cell(page, "vllm-b") == "failing (2 recent): backend vllm-b answered 503"
    assert cell(page, "vllm-c") == (f"ejected until {clock(shared_until)} (by other-host:42): "
                                    "backend vllm-c timed out before answering")
    assert cell(page, "cloud") == "healthy · 1 in flight here"


def test_the_backend_page_shows_its_health(staff: Client, clean_health: None) -> None:
    backend = Backend.objects.create(name="vllm-b", base_url="http://vllm-b/v1")
    for _ in range(3):
        health.failed("vllm-b", "backend vllm-b is unreachable")
    until = health.report()["vllm-b"]["ejected_until"]
    page = unescape(staff.get(f"/admin/gateway/backend/{backend.pk}/change/").content.decode())
    shown = page.split('<div class="form-row field-health_state">', 1)[1].split('<div class="readonly">', 1)[1]
    assert shown.split("</div>", 1)[0] == f"ejected until {clock(until)} (by {INSTANCE}): backend vllm-b is unreachable"
    assert 'name="health_state"' not in page  # read-only


def test_a_later_shared_ejection_wins_and_an_unreadable_store_is_said() -> None:
    now = 1_000_000.0
    report = {"b": {"state": "ejected", "inflight": 0, "recent_failures": 0, "last_error": "mine",
                    "ejected_until": now + 10, "ejected_by": "me:1"}}
    later = {"b": Ejection("b", now + 20, "theirs", now, "them:2")}
    assert backend_health_text("b", (report, later), now=now) == f"ejected until {clock(now + 20)} (by them:2): theirs"
    assert backend_health_text("b", (report, None), now=now) == (
        f"ejected until {clock(now + 10)} (by me:1): mine (other instances' ejections unavailable)")
    probing = {"b": {**report["b"], "state": "probing", "ejected_until": now - 1}}
    assert backend_health_text("b", (probing, {}), now=now) == (
        "probing: cool-down over, one request let through (last error: mine)")


def test_healthz_without_verbose_needs_no_database(clean_health: None) -> None:
    # No django_db mark: a database query here would fail the test.
    response = Client().get("/healthz")
    assert json.loads(response.content) == {"status": "ok"}


def test_healthz_verbose_lists_this_processs_view_of_backends_without_a_query(clean_health: None) -> None:
    # No django_db mark: verbose answers while the database (or Redis) is down, from memory.
    health.failed("vllm-b", "backend vllm-b answered 529", retry_after=5)
    health.ejections_apply([Ejection("vllm-c", time.time() + 60, "refused", 1.0, "other-host:42")])
    body = json.loads(Client().get("/healthz?verbose=1", headers=operator_headers()).content)
    assert body["status"] == "ok" and "in_flight" in body and "upstream" in body
    assert body["backends"]["vllm-b"]["state"] == "ejected"
    assert body["backends"]["vllm-b"]["last_error"] == "backend vllm-b answered 529"
    assert body["backends"]["vllm-c"]["state"] == "ejected"
    assert body["backends"]["vllm-c"]["ejected_by"] == "other-host:42"
    assert set(body["health_sync"]) == {"running", "failing"}
