"""Fixtures for running the real Claude Code CLI against Dragoman (``make test-cli``).

``claude_code`` installs the pinned Claude Code (``make claude-code``: the version lives in the
Makefile only) and yields its binary. ``cli_gateway`` is a gateway of its own, not the e2e one,
because Claude Code sends model names of its choosing (haiku-class side requests, whatever
``--model`` says), so the config needs a ``*`` default route that would change what the other
e2e tests see for unknown models. ``claude`` runs one headless session and returns what it
printed and what the mock backend received meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.conftest import REPO, slow_suite_deselect, unavailable
from tests.e2e.conftest import E2E_KEY, Gateway, _database_url, _drop_database, daphne_serving, free_port
from tests.mockbackend import MockServerThread

CLAUDE_BIN = REPO / ".cache" / "claude-code" / "node_modules" / ".bin" / "claude"
MODEL = "claude-sonnet-4-5"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow_suite_deselect(config, items, folder=Path(__file__).parent, marker="cli")


def _unavailable(reason: str) -> None:
    unavailable("Claude Code CLI", reason)


@pytest.fixture(scope="session")
def claude_code() -> str:
    """The pinned Claude Code binary, installed by `make claude-code` when missing."""
    if explicit := os.environ.get("CLAUDE_CODE_BIN"):
        return explicit
    if shutil.which("make") is None:
        _unavailable("`make` is not installed, so `make claude-code` cannot install it")
    done = subprocess.run(["make", "-s", "claude-code"], cwd=REPO, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not CLAUDE_BIN.exists():
        _unavailable(f"`make claude-code` failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return str(CLAUDE_BIN)


CONFIG = """
backends:
  - name: mock-vllm
    base_url: {mock_url}
    preset: vllm
    read_timeout: 20
routes:
  - model: capped-*
    backend: mock-vllm
    capabilities: {{max_tokens_cap: 8192}}
    order: 10
  - model: "*"
    backend: mock-vllm
keys:
  - name: cli
    key: {key}
"""


@dataclass
class CliGateway(Gateway):
    log: Path = Path()

    def access_log(self) -> list[str]:
        """Daphne's access-log lines so far (`<client> - - [time] "METHOD /path" status size`)."""
        return [line for line in self.log.read_text(errors="replace").splitlines() if '] "' in line]


@pytest.fixture(scope="session")
def cli_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliGateway]:
    tmp = tmp_path_factory.mktemp("cli-gateway")
    db_url, pg_name = _database_url(tmp)
    config = tmp / "dragoman.yaml"
    mock = MockServerThread().start()
    config.write_text(CONFIG.format(mock_url=mock.url, key=E2E_KEY))
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "DRAGOMAN_SECRET_KEY": "cli-secret", "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "DRAGOMAN_CONFIG": str(config),
           "DJANGO_SETTINGS_MODULE": "gateway.settings", "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05"}
    log_path = tmp / "daphne.log"
    gw = CliGateway(url=f"http://127.0.0.1:{port}", key=E2E_KEY, mock=mock, env=env, log=log_path)
    try:
        gw.manage("migrate", "--noinput")
        with daphne_serving(url=gw.url, port=port, env=env, log_path=log_path):
            yield gw
    finally:
        mock.stop()
        if pg_name:
            _drop_database(db_url, pg_name)


class EgressTrap:
    """A proxy that lets nothing through: Claude Code gets it as HTTP(S)_PROXY, so any request
    to a host other than loopback (NO_PROXY) lands here, is recorded ("CONNECT host:443 …")
    and refused. The tests assert it stays empty: the gateway key must not leave the machine."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._serve, name="egress-trap", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1"))
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._server.close()


@pytest.fixture(scope="session")
def egress_trap() -> Iterator[EgressTrap]:
    trap = EgressTrap()
    yield trap
    trap.close()


@dataclass
class Session:
    """One `claude -p` run: its stream-json events, stderr, and the backend requests it caused."""

    returncode: int
    events: list[dict[str, Any]]
    stderr: str
    stdout: str
    backend: list[dict[str, Any]] = field(default_factory=list)
    gateway: list[str] = field(default_factory=list)  # access-log lines of this run
    egress: list[str] = field(default_factory=list)  # requests for any other host (refused)

    @property
    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e.get("type") == "result"]
        assert results, f"no result event; stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"
        return results[-1]

    @property
    def statuses(self) -> list[tuple[str, int]]:
        """("METHOD /path", status) for every request Claude Code made to the gateway."""
        found = [re.search(r'"([A-Z]+ [^"]*)" (\d{3})', line) for line in self.gateway]
        return [(m.group(1), int(m.group(2))) for m in found if m]

    def turns(self, marker: str) -> list[dict[str, Any]]:
        """The conversation's backend requests: those whose first user message holds `marker`
        (the directive in the prompt); side requests (titles, quota checks) do not."""
        return [r for r in self.backend if marker in _first_user_text(r.get("body"))]

    def describe(self) -> str:
        lines = [f"exit {self.returncode}", "events:"]
        lines += [json.dumps(e)[:400] for e in self.events]
        lines += ["backend requests:"]
        for r in self.backend:
            body: dict[str, Any] = r["body"] if isinstance(r.get("body"), dict) else {}
            lines.append(f"  {r.get('path')} scenario={r.get('scenario')} model={body.get('model')} "
                         f"stream={body.get('stream')} tools={len(body.get('tools') or [])} "
                         f"messages={len(body.get('messages') or [])} outcome={(r.get('stream') or {}).get('outcome')}")
        lines += ["gateway:", *self.gateway, "egress:", *self.egress, "stderr:", self.stderr[-4000:]]
        return "\n".join(lines)


def _first_user_text(body: Any) -> str:
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class Claude(Protocol):
    def __call__(self, prompt: str | None, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = 120) -> Session: ...


@pytest.fixture
def claude(claude_code: str, cli_gateway: CliGateway, egress_trap: EgressTrap, tmp_path: Path) -> Claude:
    """Run `claude -p …` headless against the gateway, in a scratch HOME and working folder.

    Only loopback is reachable: CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 stops telemetry,
    error reporting and update checks (which would carry the gateway key to Anthropic's hosts),
    and `egress_trap` records and refuses anything else that would leave the machine."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()

    def run(prompt: str | None, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> Session:
        environ = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(tmp_path),
            "LANG": "C.UTF-8",
            "ANTHROPIC_BASE_URL": cli_gateway.url,
            "ANTHROPIC_API_KEY": cli_gateway.key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "HTTPS_PROXY": egress_trap.url,
            "HTTP_PROXY": egress_trap.url,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        environ.update(env or {})
        before = len(cli_gateway.mock.requests)
        logged = len(cli_gateway.access_log())
        trapped = len(egress_trap.seen)
        done = subprocess.run(
            [claude_code, "-p", *([prompt] if prompt is not None else []), "--output-format", "stream-json",
             "--verbose", *args],
            cwd=work, env=environ, input=stdin if stdin is not None else "", capture_output=True, text=True,
            timeout=timeout,
        )
        events = []
        for line in done.stdout.splitlines():
            if line.strip().startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        backend = list(cli_gateway.mock.requests[before:])
        # Daphne logs a request when its response has ended, which can be a moment after
        # Claude Code has read it and exited.
        deadline = time.monotonic() + 3
        while True:
            gateway = cli_gateway.access_log()[logged:]
            if sum("/v1/messages" in line for line in gateway) >= len(backend) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return Session(done.returncode, events, done.stderr, done.stdout, backend, gateway,
                       egress_trap.seen[trapped:])

    return run
