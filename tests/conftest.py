"""Shared fixtures.

``gateway_setup`` creates one backend, routes and a key in the test database, because almost
every API test needs a routable model and a valid key. ``upstream`` puts an
``httpx.MockTransport`` under every backend client so API tests see exactly what the gateway
sent upstream and can script what comes back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "claude-code"
KEY = "dgm_test_key_0123456789abcdef"


def slow_suite_deselect(config: pytest.Config, items: list[pytest.Item], *, folder: Path, marker: str) -> None:
    """Leave a slow suite's tests out of a plain `pytest` run, as `make test` does (-m "not …"),
    unless the run names their folder or passes -m (their make target)."""
    if config.option.markexpr or any(
        Path(arg.split("::")[0]).resolve().is_relative_to(folder) for arg in config.args
    ):
        return
    slow = [item for item in items if item.get_closest_marker(marker)]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker(marker)]


def _ci() -> bool:
    import os

    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    """The suite never writes a golden file: regenerating is `make golden`, reviewed by a person.
    DRAGOMAN_GOLDEN_UPDATE (which once made the suite rewrite them) stops the run, in CI loudest."""
    import os

    if os.environ.get("DRAGOMAN_GOLDEN_UPDATE"):
        where = "in CI, where golden files are only ever compared" if _ci() else "here"
        raise pytest.UsageError(
            f"DRAGOMAN_GOLDEN_UPDATE is set {where}: the tests never regenerate golden files. "
            "Unset it; regenerate with `make golden` (python -m tests.translation.golden_update) "
            "and review the diff.")


def unavailable(what: str, reason: str) -> None:
    """Skip, except in CI: there a missing part must fail the build, never pass it silently."""
    if _ci():
        pytest.fail(f"{what} unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"{what} unavailable: {reason}")


def claude_code_fixture(name: str) -> dict[str, Any]:
    """A request captured from Claude Code (tests/fixtures/claude-code)."""
    matches = sorted(FIXTURES.glob(f"{name}*.json"))
    assert matches, f"no fixture {name} in {FIXTURES}"
    data: dict[str, Any] = json.loads(matches[0].read_text())
    return data


@dataclass
class Upstream:
    """A scripted backend behind httpx.MockTransport: records requests, answers via ``handler``."""

    requests: list[httpx.Request] = field(default_factory=list)
    handler: Callable[[httpx.Request], httpx.Response] | None = None

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.handler is not None, "test did not script the upstream"
        return self.handler(request)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    from gateway import upstream as upstream_module

    fake = Upstream()
    with upstream_module.pools.transport_swapped(lambda backend: httpx.MockTransport(fake)):
        yield fake


@pytest.fixture(scope="session", autouse=True)
def runtime(django_db_setup: None) -> Iterator[Any]:
    """The process's runtime (gateway.runtime), started as the server starts it: the inspector's
    writer and the config watcher run for the whole session; at its end the writer drains. It
    stops before the test database is dropped (hence ``django_db_setup``): PostgreSQL refuses to
    drop a database the writer's session still holds."""
    from gateway.runtime import runtime_get

    built = runtime_get()
    built.start()
    yield built
    built.stop()


@pytest.fixture(autouse=True)
def _health_forgotten() -> Iterator[None]:
    # Backends' passive health is the process's: an ejection in one test must not route the next.
    yield
    from gateway.health import health

    health.reset()


@pytest.fixture(autouse=True)
def _snapshot_dropped() -> Iterator[None]:
    # No snapshot outlives its test: the watcher then has nothing to check (and queries nothing)
    # while a test without database access runs.
    yield
    from gateway import snapshot

    snapshot.snapshot_invalidate()


@pytest.fixture
def gateway_setup(transactional_db: None) -> Iterator[str]:
    from gateway import snapshot
    from gateway.models import Backend, Route
    from gateway.services import apikey_create

    backend = Backend.objects.create(name="vllm-test", base_url="http://upstream.test/v1", preset="vllm")
    Route.objects.create(model="test-model", backend=backend, upstream_model="Qwen/Qwen3-8B", order=10)
    Route.objects.create(model="claude-*", backend=backend, upstream_model="Qwen/Qwen3-8B", order=20)
    apikey_create(name="tester", secret=KEY)
    snapshot.snapshot_invalidate()
    yield KEY
    snapshot.snapshot_invalidate()
    # Let the inspector finish writing this test's exchanges before the tables are flushed.
    from inspector.recorder import recorder

    recorder.flush(10)


@pytest.fixture
def recorded() -> Callable[[], Awaitable[list[Any]]]:
    """Flush the inspector's writer and return every stored Exchange, oldest first."""
    from inspector.models import Exchange
    from inspector.recorder import recorder

    def read_sync() -> list[Any]:
        assert recorder.flush(10), "inspector writer did not drain"
        return list(Exchange.objects.order_by("created_at"))

    async def read() -> list[Any]:
        return await sync_to_async(read_sync)()

    return read
