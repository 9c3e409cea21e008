"""``/metrics`` with several daphne processes on one host (``PROMETHEUS_MULTIPROC_DIR``): two real
gateway processes share one directory, and a scrape of either shows both processes' traffic and
state, as Prometheus would see a host running several workers behind one port."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import E2E_KEY, Gateway, daphne_serving, free_port
from tests.gateway.test_metrics import Samples, parse, value
from tests.mockbackend import MockServerThread
from tests.operator import operator_headers

pytestmark = pytest.mark.e2e


Processes = tuple[str, str, Path, tuple[ExitStack, int]]


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", headers=operator_headers(), timeout=5)
    assert response.status_code == 200, response.text
    return parse(response.text)


@pytest.fixture
def two_processes(mock_backend: MockServerThread, tmp_path: Path) -> Iterator[Processes]:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    config = tmp_path / "dragoman.yaml"
    config.write_text(f"""
backends:
  - name: mock-vllm
    base_url: {mock_backend.url}
    preset: vllm
routes:
  - model: mock-*
    backend: mock-vllm
keys:
  - name: e2e
    key: {E2E_KEY}
""")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'gw.sqlite3'}", "DRAGOMAN_SECRET_KEY": "e2e-secret",
           "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost", "DRAGOMAN_CONFIG": str(config),
           "DJANGO_SETTINGS_MODULE": "gateway.settings", "PROMETHEUS_MULTIPROC_DIR": str(shared),
           "DRAGOMAN_METRICS_REFRESH_SECONDS": "0.2"}
    first = Gateway(url="", key=E2E_KEY, mock=mock_backend, env=env)
    first.manage("migrate", "--noinput")
    ports = [free_port(), free_port()]
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    with ExitStack() as stack_a, ExitStack() as stack_b:
        stack_a.enter_context(daphne_serving(url=a, port=ports[0], env=env, log_path=tmp_path / "a.log"))
        proc_b = stack_b.enter_context(daphne_serving(url=b, port=ports[1], env=env, log_path=tmp_path / "b.log"))
        yield a, b, shared, (stack_b, proc_b.pid)  # the test may stop the second process (stack_b.close())


def test_a_scrape_of_either_process_counts_both(two_processes: Processes) -> None:
    a, b, shared, _ = two_processes
    headers = {"x-api-key": E2E_KEY}
    for url, stream in ((a, False), (a, True), (a, False), (b, True), (b, False)):
        body = {"model": "mock-text", "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "Hi"}]}
        response = httpx.post(f"{url}/v1/messages", json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
    assert httpx.get(f"{b}/v1/nothing-here", headers=headers, timeout=5).status_code == 404

    for url in (a, b):
        samples = scrape(url)
        assert value(samples, "dragoman_requests_total", status="200", backend="mock-vllm") == 5
        assert value(samples, "dragoman_requests_total", status="404") == 1
        assert value(samples, "dragoman_time_to_first_token_seconds_count", stream="true") == 2
        assert value(samples, "dragoman_time_to_first_token_seconds_count", stream="false") == 3
        assert value(samples, "dragoman_tokens_total", type="output") > 0
    # Each process writes its own state; the scrape sums the live ones (its own inspector writes too).
    deadline = time.monotonic() + 20
    while value(scrape(a), "dragoman_inspector_exchanges_total", fate="persisted") < 6:
        assert time.monotonic() < deadline, scrape(a)
        time.sleep(0.1)
    assert {p.name.split("_")[0] for p in shared.iterdir()} >= {"counter", "histogram", "gauge"}


def test_a_stopped_process_keeps_its_counts_and_drops_its_live_gauges(
        two_processes: Processes) -> None:
    a, b, shared, (stop_b, pid_b) = two_processes
    body = {"model": "mock-text", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}
    assert httpx.post(f"{b}/v1/messages", json=body, headers={"x-api-key": E2E_KEY}, timeout=30).status_code == 200
    live_b = shared / f"gauge_livesum_{pid_b}.db"
    assert live_b.exists()
    stop_b.close()
    assert not live_b.exists()  # prometheus_client's mark_process_dead, at the process's exit
    assert value(scrape(a), "dragoman_requests_total", status="200") == 1
