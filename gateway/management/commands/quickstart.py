"""``make run``: migrate, apply config, make sure there is something to talk to, then serve.

On a fresh machine this leaves a working gateway: a demo backend (the project's mock server,
``python -m tests.mockbackend``) with a route ``dragoman-demo`` when no backend exists, an admin
user and a first API key (each secret printed once), and daphne on 127.0.0.1:PORT. The mock is
started for as long as a route points at the demo backend, so the demo keeps answering after real
backends are added; deleting that route (or the backend) switches it off.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.models import ApiKey, Backend, Route
from gateway.services import apikey_create

DEMO_BACKEND = "demo-mock"
DEMO_MODEL = "dragoman-demo"


def _port_free(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):  # IPv4 or IPv6, as HOST says
            return False
    except OSError:
        return True


def _wait_port(host: str, port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _port_free(host, port):
            return True
        time.sleep(0.1)
    return False


class Command(BaseCommand):
    help = "Prepare and serve Dragoman for local use (what `make run` calls)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--mock-port", type=int, default=int(os.environ.get("MOCK_PORT", "8001")))
        parser.add_argument("--no-serve", action="store_true", help="Prepare only; do not start servers.")

    def handle(self, *args: Any, **options: Any) -> None:
        host, port, mock_port = options["host"], options["port"], options["mock_port"]
        if not options["no_serve"] and not _port_free(host, port):
            raise CommandError(f"port {port} on {host} is busy (is Dragoman already running?); "
                               f"stop it, or pick another port: make run PORT={port + 10}")
        call_command("migrate", interactive=False, verbosity=0)
        if settings.DRAGOMAN_CONFIG:
            call_command("applyconfig", settings.DRAGOMAN_CONFIG)
        demo = self._demo_setup(mock_port)
        admin, password = self._admin_setup()
        key = self._key_setup()
        self._banner(host, port, demo=demo, key=key, admin=admin, password=password)
        if options["no_serve"]:
            return
        self._serve(host, port, mock_port if demo else None)

    def _demo_setup(self, mock_port: int) -> str | None:
        """The model the demo serves, or None when the demo is off."""
        others = Backend.objects.exclude(name=DEMO_BACKEND).exists()
        demo_routes = Route.objects.filter(backend__name=DEMO_BACKEND).exclude(model__contains="*")
        if others and not demo_routes.exists():
            return None
        backend, _ = Backend.objects.update_or_create(
            name=DEMO_BACKEND,
            defaults={"base_url": f"http://127.0.0.1:{mock_port}/v1", "preset": "vllm", "kind": "openai_chat"},
        )
        if not others:
            Route.objects.get_or_create(model=DEMO_MODEL, backend=backend, defaults={"order": 10})
        model = demo_routes.order_by("order", "pk").values_list("model", flat=True).first() or DEMO_MODEL
        if others:
            self.stdout.write(f"Demo backend {DEMO_BACKEND} (the built-in mock, port {mock_port}) still serves "
                              f"model {model}; delete its route in the admin to switch the demo off.")
        else:
            self.stdout.write(f"Demo backend {DEMO_BACKEND} (the built-in mock) serves model {model}.")
        return model

    def _admin_setup(self) -> tuple[str, str | None]:
        """The admin's user name, and its password when it was created just now."""
        User = get_user_model()
        existing = User.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            return existing.get_username(), None
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(self.style.WARNING(f"Admin user created: admin / {password}  (shown once)"))
        return "admin", password

    def _key_setup(self) -> str | None:
        if ApiKey.objects.exists():
            return None
        _, secret = apikey_create(name="first-key")
        self.stdout.write(self.style.WARNING(f"API key created: {secret}  (shown once)"))
        return secret

    def _banner(self, host: str, port: int, *, demo: str | None, key: str | None, admin: str,
                password: str | None) -> None:
        base = f"http://{host}:{port}"
        shown_key = key or "<your key>"
        model = demo or (Route.objects.exclude(model__contains="*").values_list("model", flat=True).first()
                         or "<model>")
        reset = "make changepassword" + ("" if admin == "admin" else f" ADMIN={admin}")
        login = f"{admin} / {password}" if password else f"{admin} (forgot the password? {reset})"
        keys = ("" if key else "\nYour keys were shown once, when made. A new one: make newkey NAME=laptop "
                f"(or {base}/admin/gateway/apikey/add/)\n")
        self.stdout.write(f"""
Dragoman on {base}   admin: {base}/admin/   login: {login}
{keys}
Try it:
  curl -s {base}/v1/messages -H 'x-api-key: {shown_key}' -H 'anthropic-version: 2023-06-01' \\
       -H 'content-type: application/json' \\
       -d '{{"model": "{model}", "max_tokens": 256, "messages": [{{"role": "user", "content": "Hello!"}}]}}'

Claude Code:
  export ANTHROPIC_BASE_URL={base}
  export ANTHROPIC_API_KEY={shown_key}
  export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
  claude --model {model}
""")

    def _serve(self, host: str, port: int, mock_port: int | None) -> None:
        children: list[subprocess.Popen[bytes]] = []
        if mock_port is not None:
            if _port_free("127.0.0.1", mock_port):
                # The demo backend is the test suite's mock (tests/mockbackend: asyncio and orjson,
                # no dev extras), run from the checkout that holds manage.py.
                children.append(subprocess.Popen([sys.executable, "-m", "tests.mockbackend", "--port", str(mock_port)],
                                                 cwd=settings.BASE_DIR))
                if not _wait_port("127.0.0.1", mock_port):
                    self.stderr.write(f"the mock backend did not start on port {mock_port}")
            else:
                self.stdout.write(f"Port {mock_port} is busy; assuming the mock backend already runs there.")
        # backlog=1024: daphne's default listen queue (50) overflows when many clients connect at once.
        interface = host.replace(":", r"\:")
        server = subprocess.Popen([sys.executable, "-m", "daphne", "-e",
                                   f"tcp:port={port}:interface={interface}:backlog=1024",
                                   "gateway.asgi:application"])
        children.append(server)

        def stop(*_: Any) -> None:
            for child in children:
                if child.poll() is None:
                    child.terminate()

        signal.signal(signal.SIGTERM, stop)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop()
            for child in children:
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()
