"""The commands a user runs in a local checkout (``make run`` and its companions ``make
applyconfig``, ``make newkey``, ``make changepassword``) explain themselves: a mistake is one line
on stderr with a way forward, never a traceback; the banner of every ``make run`` says how to get
a new key and reset the admin password; and the demo keeps answering after a real backend is added,
for as long as its route exists (and disappears from the banner once the route is deleted).

Each test drives the real commands in subprocesses, as a user does, on a throwaway SQLite
database (DRAGOMAN_VAR_DIR)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO

REAL_BACKEND = """\
backends:
  - {name: real, base_url: "http://127.0.0.1:9/v1", preset: vllm}
routes:
  - {model: real-model, backend: real}
"""
SECRET = re.compile(r"API key created: (dgm_\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def local_env(tmp_path: Path) -> dict[str, str]:
    """A local checkout's environment (what the make targets give manage.py) on a fresh database."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "DRAGOMAN_CONFIG", "DRAGOMAN_SECRET_KEY", "DEBUG",
                         "ALLOWED_HOSTS")}
    return {**env, "DEBUG": "1", "DRAGOMAN_VAR_DIR": str(tmp_path / "var")}


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, input=stdin)


def make(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A make target with this interpreter; -o: the venv counts as installed (no pip here)."""
    return subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed-runtime", f"PY={sys.executable}",
                           *args], cwd=REPO, env={k: v for k, v in env.items() if k != "DEBUG"},
                          capture_output=True, text=True, timeout=60)


def assert_one_clear_line(done: subprocess.CompletedProcess[str], *hints: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("make: ***")]
    assert len(lines) <= 2, done.stderr  # CommandError adds "Nothing was changed." on its own line
    for hint in hints:
        assert hint in done.stderr, done.stderr


def test_applyconfig_without_a_secret_key_says_in_one_line_how_to_run_it_locally(
        local_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "dragoman.yaml").write_text(REAL_BACKEND)
    production_like = {k: v for k, v in local_env.items() if k != "DEBUG"}
    done = manage(production_like, "applyconfig", str(tmp_path / "dragoman.yaml"))
    assert_one_clear_line(done, "DRAGOMAN_SECRET_KEY must be set when DEBUG is off", "make applyconfig FILE=")
    assert len(done.stderr.strip().splitlines()) == 1


def test_make_applyconfig_migrates_and_applies_the_file(local_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "dragoman.yaml").write_text(REAL_BACKEND)
    done = make(local_env, "applyconfig", f"FILE={tmp_path / 'dragoman.yaml'}")
    assert done.returncode == 0, done.stderr
    assert "backend real: created" in done.stdout and "2 changes" in done.stdout
    assert_one_clear_line(make(local_env, "applyconfig"), "make applyconfig FILE=dragoman.yaml")


def test_applyconfig_on_a_database_nobody_migrated_says_to_migrate(local_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    (tmp_path / "dragoman.yaml").write_text(REAL_BACKEND)
    assert_one_clear_line(manage(local_env, "applyconfig", str(tmp_path / "dragoman.yaml")), "migrate")


def test_make_run_on_a_busy_port_says_so_and_how_to_pick_another(local_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = manage({**local_env, "PORT": str(port)}, "quickstart")
    assert_one_clear_line(done, f"port {port} on 127.0.0.1 is busy", f"make run PORT={port + 10}")


def test_a_second_make_run_says_how_to_make_a_key_and_reset_the_admin_password(local_env: dict[str, str]) -> None:
    first = manage(local_env, "quickstart", "--no-serve")
    assert first.returncode == 0, first.stderr
    assert "Admin user created: admin / " in first.stdout and SECRET.search(first.stdout)
    assert "make newkey" not in first.stdout  # the key it made is right there

    second = manage(local_env, "quickstart", "--no-serve")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and "<your key>" in second.stdout
    assert "make newkey NAME=laptop" in second.stdout
    assert "login: admin (forgot the password? make changepassword)" in second.stdout

    # What the banner points at works: a new key, shown once, and a new admin password.
    made = make(local_env, "newkey", "NAME=laptop")
    assert made.returncode == 0, made.stderr
    [secret] = re.findall(r"API key laptop created: (dgm_\S+)", made.stdout)
    assert_one_clear_line(make(local_env, "newkey", "NAME=laptop"), "a key named 'laptop' exists")
    changed = manage(local_env, "changepassword", "admin", stdin="a-new-Passw0rd-9\na-new-Passw0rd-9\n")
    assert changed.returncode == 0, changed.stderr
    check = manage(local_env, "shell", "-c", (
        "from django.contrib.auth import authenticate; from gateway.models import ApiKey; "
        f"from gateway.snapshot import key_hash; print(authenticate(username='admin', password='a-new-Passw0rd-9') "
        f"is not None, ApiKey.objects.filter(name='laptop', key_hash=key_hash('{secret}')).exists())"))
    assert check.stdout.splitlines()[-1:] == ["True True"], check.stdout + check.stderr


def test_after_a_real_backend_is_added_make_run_still_serves_the_demo_it_prints(
        local_env: dict[str, str], tmp_path: Path) -> None:
    first = manage(local_env, "quickstart", "--no-serve")
    match = SECRET.search(first.stdout)
    assert match, first.stdout + first.stderr
    (tmp_path / "dragoman.yaml").write_text(REAL_BACKEND)
    assert manage(local_env, "applyconfig", str(tmp_path / "dragoman.yaml")).returncode == 0

    port, mock_port = free_port(), free_port()
    env = {**local_env, "PORT": str(port), "MOCK_PORT": str(mock_port)}
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen([sys.executable, "manage.py", "quickstart"], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # ready when /healthz answers, as the e2e suite waits for daphne
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        reply = httpx.post(f"{base}/v1/messages", timeout=30, json={
            "model": "dragoman-demo", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello!"}]},
            headers={"x-api-key": match.group(1), "anthropic-version": "2023-06-01"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["content"][0]["text"]
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=20)
    banner = log_path.read_text()
    assert "still serves model dragoman-demo; delete its route in the admin to switch the demo off" in banner
    assert "claude --model dragoman-demo" in banner


def test_with_the_demo_route_deleted_the_demo_is_off_and_the_banner_names_a_real_model(
        local_env: dict[str, str], tmp_path: Path) -> None:
    assert manage(local_env, "quickstart", "--no-serve").returncode == 0
    (tmp_path / "dragoman.yaml").write_text(REAL_BACKEND)
    assert manage(local_env, "applyconfig", str(tmp_path / "dragoman.yaml")).returncode == 0
    deleted = manage(local_env, "shell", "-c",
                     "from gateway.models import Route; print(Route.objects.filter(model='dragoman-demo').delete()[0])")
    assert deleted.stdout.splitlines()[-1:] == ["1"], deleted.stdout + deleted.stderr

    again = manage(local_env, "quickstart", "--no-serve")
    assert again.returncode == 0, again.stderr
    assert "dragoman-demo" not in again.stdout and "Demo backend" not in again.stdout
    assert "claude --model real-model" in again.stdout
