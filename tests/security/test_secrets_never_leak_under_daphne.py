"""The same promise as ``test_secrets_never_leak``, for the gateway as operators run it: daphne in
a subprocess, config from a file with ``${ENV}`` secrets, debug logging on. Neither secret may
appear in daphne's output, in ``applyconfig``'s report or in the stored exchanges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
from anthropic.types import MessageParam

from tests.conftest import REPO
from tests.e2e.conftest import _database_url, _drop_database, daphne_serving, free_port
from tests.mockbackend import MockServerThread
from tests.security.leaks import CLIENT_SECRET, UPSTREAM_SECRET, assert_no_secret, masked

CONFIG = """
backends:
  - name: leaky
    base_url: {mock}
    preset: vllm
    api_key: ${{LEAK_UPSTREAM_KEY}}
    read_timeout: 20
routes:
  - model: leak-*
    backend: leaky
    upstream_model: mock-model
keys:
  - name: leak-client
    key: ${{LEAK_CLIENT_KEY}}
"""


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def exchanges(env: dict[str, str], count: int) -> str:
    """The stored exchanges as JSON, once the writer has stored ``count`` of them (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        dumped = manage(env, "dumpdata", "inspector.exchange").stdout
        if len(json.loads(dumped)) >= count or time.monotonic() > deadline:
            return dumped
        time.sleep(0.2)


def test_daphne_logs_config_report_and_exchanges_hold_no_secret(tmp_path: Path) -> None:
    db_url, pg_name = _database_url(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "daphne.log"
    with MockServerThread() as mock:
        config = tmp_path / "dragoman.yaml"
        config.write_text(CONFIG.format(mock=mock.url))
        env = {**os.environ, "DATABASE_URL": db_url, "DRAGOMAN_SECRET_KEY": "leak-test-secret", "DEBUG": "0",
               "ALLOWED_HOSTS": "127.0.0.1", "DRAGOMAN_CONFIG": str(config), "DRAGOMAN_LOG_LEVEL": "DEBUG",
               "DJANGO_SETTINGS_MODULE": "gateway.settings", "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05",
               "LEAK_UPSTREAM_KEY": UPSTREAM_SECRET, "LEAK_CLIENT_KEY": CLIENT_SECRET}
        try:
            outputs = [manage(env, "migrate", "--noinput")]
            with daphne_serving(url=url, port=port, env=env, log_path=log_path):
                sdk = anthropic.Anthropic(base_url=url, api_key=CLIENT_SECRET, max_retries=0, timeout=30)
                ask: list[MessageParam] = [{"role": "user", "content": "Hello [[mock:text]]"}]
                assert sdk.messages.create(model="leak-test", max_tokens=50, messages=ask).content
                with sdk.messages.stream(model="leak-test", max_tokens=50, messages=ask) as stream:
                    assert stream.get_final_message().content
                bodies = []
                for scenario, stream_it in (("auth_echo_500", False), ("auth_echo_401", True)):
                    body = {"model": "leak-test", "max_tokens": 50, "stream": stream_it,
                            "messages": [{"role": "user", "content": f"Hi [[mock:{scenario}]]"}]}
                    response = httpx.post(f"{url}/v1/messages", json=body, timeout=30,
                                          headers={"authorization": f"Bearer {CLIENT_SECRET}"})
                    assert response.status_code == 500
                    bodies.append(response.text + json.dumps(dict(response.headers)))
                wrong = httpx.post(f"{url}/v1/messages", json=body, headers={"x-api-key": CLIENT_SECRET + "0"})
                assert wrong.status_code == 401
                assert masked(UPSTREAM_SECRET) in bodies[0]  # the backend did echo its key
                stored = exchanges(env, 5)
                outputs.append(manage(env, "applyconfig", str(config)))
        finally:
            if pg_name:
                _drop_database(db_url, pg_name)
    assert f"Bearer {UPSTREAM_SECRET}" in [r["headers"].get("authorization") for r in mock.requests]
    for text in bodies:
        assert_no_secret("an error response", text)
    assert len(json.loads(stored)) == 5
    assert_no_secret("stored exchanges", stored)
    log = log_path.read_text()
    assert "config: key leak-client: created" in log  # the log is the gateway's, at DEBUG
    assert_no_secret("daphne's output", log)
    assert_no_secret("manage.py output", "".join(done.stdout + done.stderr for done in outputs))
