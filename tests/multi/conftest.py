"""Two gateway instances on one PostgreSQL and one Redis, as the README's production layout runs them.

``instances`` starts a throwaway PostgreSQL and Redis (``tests/multi/services.py``), migrates,
applies one ``dragoman.yaml`` (the mock backend, routes, keys), creates a staff user, and
starts two daphne processes with the same DATABASE_URL and REDIS_URL and the default config
refresh interval, one with a connection pool (DRAGOMAN_DB_POOL_SIZE) and one without. ``AdminSession`` is a staff member's browser without the browser: real login
with CSRF, real change-form posts of everything the page shows, like a person saving a form.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import REPO
from tests.e2e.conftest import daphne_serving, free_port
from tests.mockbackend import MockServerThread
from tests.multi.services import ServiceMissing, postgres_server, redis_server

ADMIN_USER, ADMIN_PASSWORD = "operator", "multi-admin-password"
KEYS = {name: f"dgm_multi_{name}_0123456789abcdefghij" for name in ("steady", "disabled", "deleted")}
CONFIG = """
backends:
  - name: multi-mock
    base_url: {mock_url}
    preset: vllm
    read_timeout: 20
routes:
  - model: multi-route
    backend: multi-mock
    upstream_model: mock-text
keys:
""" + "".join(f"  - {{{{name: {name}, key: {key}}}}}\n" for name, key in KEYS.items())
# A key with a rate limit the instances share through Redis (test_shared_limits.py).
LIMITED_PER_MINUTE = 4
KEYS["limited"] = "dgm_multi_limited_0123456789abcdefghij"
CONFIG += f"  - {{{{name: limited, key: {KEYS['limited']}, rate_limit_per_minute: {LIMITED_PER_MINUTE}}}}}\n"


@dataclass
class Instances:
    a: str  # the gateway instances' origins
    b: str
    db_url: str
    redis_url: str
    mock: MockServerThread
    env: dict[str, str]

    def row_id(self, table: str, column: str, value: str) -> int:
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute(f"SELECT id FROM {table} WHERE {column} = %s", (value,)).fetchone()
        assert row is not None, f"no {table} row with {column}={value!r}"
        return int(row[0])


@pytest.fixture(scope="session")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instances]:
    tmp = tmp_path_factory.mktemp("multi")
    with ExitStack() as stack:
        try:
            db_url = stack.enter_context(postgres_server())
            redis_url = stack.enter_context(redis_server())
        except ServiceMissing as missing:
            if os.environ.get("CI"):
                raise
            pytest.skip(str(missing))
        mock = stack.enter_context(MockServerThread())
        config = tmp / "dragoman.yaml"
        config.write_text(CONFIG.format(mock_url=mock.url))
        env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "DRAGOMAN_SECRET_KEY": "multi-secret",
               "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SETTINGS_MODULE": "gateway.settings",
               "DRAGOMAN_CONFIG": str(config), "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05",
               "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD}
        env.pop("DRAGOMAN_CONFIG_REFRESH_SECONDS", None)  # the production default (1 s)
        for args in (["migrate", "--noinput"], ["applyconfig", str(config)],
                     ["createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "op@example.com"]):
            done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, done.stderr
        origins = []
        # A (where the admin is used) pools its PostgreSQL connections, B opens them as needed.
        for name, pool in (("a", "4"), ("b", "0")):
            port = free_port()
            origins.append(f"http://127.0.0.1:{port}")
            stack.enter_context(daphne_serving(url=origins[-1], port=port, env={**env, "DRAGOMAN_DB_POOL_SIZE": pool},
                                               log_path=tmp / f"daphne-{name}.log"))
        yield Instances(a=origins[0], b=origins[1], db_url=db_url, redis_url=redis_url, mock=mock, env=env)


class FormValues(HTMLParser):
    """What a browser submits for a page's form, unchanged (checked boxes, selected options)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and name:
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.values[name] = a.get("value") or "on"
            elif a.get("type") not in ("submit", "button"):
                self.values[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.values[self._textarea] = self.values[self._textarea].removeprefix("\n")  # as browsers do
            self._textarea = None


class AdminSession:
    """A logged-in staff member on one instance's admin."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.http = httpx.Client(base_url=origin, timeout=10)
        page = self.http.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        done = self.http.post("/admin/login/?next=/admin/", data={
            "csrfmiddlewaretoken": token.group(1), "username": ADMIN_USER, "password": ADMIN_PASSWORD})
        assert done.status_code == 302 and "sessionid" in self.http.cookies, done.text[:500]

    @property
    def session_cookie(self) -> str:
        return f"sessionid={self.http.cookies['sessionid']}"

    def form(self, path: str) -> dict[str, str]:
        page = self.http.get(path)
        assert page.status_code == 200, page.text[:500]
        parser = FormValues()
        parser.feed(page.text)
        return parser.values

    def save(self, path: str, changes: dict[str, str | None]) -> None:
        """Post the form at ``path`` as the page shows it, with ``changes`` (None unchecks a box)."""
        data: dict[str, Any] = self.form(path)
        for name, value in changes.items():
            if value is None:
                data.pop(name, None)
            else:
                data[name] = value
        data["_save"] = "Save"
        done = self.http.post(path, data=data)
        assert done.status_code == 302, f"the admin refused the form: {errors(done.text)}"

    def delete(self, path: str) -> None:
        token = self.form(path)["csrfmiddlewaretoken"]
        done = self.http.post(path, data={"csrfmiddlewaretoken": token, "post": "yes"})
        assert done.status_code == 302, done.text[:500]

    def close(self) -> None:
        self.http.close()


def errors(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", m) for m in re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>',
                                                                     page, re.S)) or page[:500]


@pytest.fixture
def admin_a(instances: Instances) -> Iterator[AdminSession]:
    session = AdminSession(instances.a)
    yield session
    session.close()
