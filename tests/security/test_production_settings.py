"""Production settings refuse to start without a secret key or allowed hosts, DEBUG is off unless
asked for (only ``make run`` asks), and the https toggles an operator behind a proxy needs work."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.conftest import REPO

PRINT = ("import json, django; from django.conf import settings as s; django.setup(); print(json.dumps({"
         "'DEBUG': s.DEBUG, 'proxy': s.SECURE_PROXY_SSL_HEADER, 'session': s.SESSION_COOKIE_SECURE, "
         "'csrf': s.CSRF_COOKIE_SECURE, 'csrf_mw': 'django.middleware.csrf.CsrfViewMiddleware' in "
         "s.ADMIN_MIDDLEWARE}))")
PRODUCTION = {"DRAGOMAN_SECRET_KEY": "a-real-secret", "ALLOWED_HOSTS": "gateway.example.com"}


def settings_load(**env: str) -> subprocess.CompletedProcess[str]:
    """Import gateway.settings in a fresh interpreter with only these variables set (and PATH)."""
    clean = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "gateway.settings",
             "DRAGOMAN_VAR_DIR": os.environ.get("TMPDIR", "/tmp") + "/dragoman-settings-test", **env}
    return subprocess.run([sys.executable, "-c", PRINT], cwd=REPO, env=clean, capture_output=True, text=True,
                          timeout=60)


def loaded(**env: str) -> dict[str, object]:
    done = settings_load(**env)
    assert done.returncode == 0, done.stderr
    values: dict[str, object] = json.loads(done.stdout)
    return values


def test_without_a_secret_key_production_settings_refuse_to_start() -> None:
    done = settings_load(ALLOWED_HOSTS="gateway.example.com")
    assert done.returncode != 0
    assert "ImproperlyConfigured: DRAGOMAN_SECRET_KEY must be set when DEBUG is off" in done.stderr


def test_without_allowed_hosts_production_settings_refuse_to_start() -> None:
    done = settings_load(DRAGOMAN_SECRET_KEY="a-real-secret")
    assert done.returncode != 0
    assert "ImproperlyConfigured: ALLOWED_HOSTS must be set when DEBUG is off" in done.stderr


def test_debug_is_off_unless_asked_for_and_csrf_is_on() -> None:
    assert loaded(**PRODUCTION) == {"DEBUG": False, "proxy": None, "session": False, "csrf": False,
                                    "csrf_mw": True}
    assert loaded(**PRODUCTION, DEBUG="0")["DEBUG"] is False
    assert loaded(DEBUG="1")["DEBUG"] is True  # local use needs neither a key nor hosts
    done = settings_load(**PRODUCTION, DEBUG="maybe")
    assert done.returncode != 0 and "DEBUG must be true or false" in done.stderr


def test_make_run_is_the_only_place_that_turns_debug_on() -> None:
    makefile = (REPO / "Makefile").read_text()
    lines = [line for line in makefile.splitlines() if re.search(r"\bDEBUG=1\b", line)]
    assert lines == ["LOCAL_MANAGE := DEBUG=1 $(PY) manage.py"]
    # Only the local-use targets (make run and its companions, on the same var/ database) use it.
    users = re.findall(r"^([\w-]+):[^\n]*\n(?:\t[^\n]*\n)*?\t[^\n]*\$\(LOCAL_MANAGE\)", makefile, re.M)
    assert set(users) == {"run", "applyconfig", "newkey", "changepassword"}
    assert makefile.count("$(LOCAL_MANAGE)") == 5
    for path in [REPO / ".ci" / "run", REPO / "manage.py", REPO / "gateway" / "asgi.py"]:
        if path.exists():
            assert not re.search(r"DEBUG[\"']?\s*[,=:]\s*[\"']?(1|true|True)", path.read_text()), path


def test_behind_an_https_proxy_the_proxy_header_is_trusted_and_cookies_are_secure() -> None:
    behind = loaded(**PRODUCTION, DRAGOMAN_TRUST_X_FORWARDED_PROTO="1")
    assert behind["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert behind["session"] is True and behind["csrf"] is True
    cookies_only = loaded(**PRODUCTION, DRAGOMAN_SECURE_COOKIES="true")
    assert cookies_only["proxy"] is None and cookies_only["session"] is True
    plain_http = loaded(**PRODUCTION, DRAGOMAN_TRUST_X_FORWARDED_PROTO="1", DRAGOMAN_SECURE_COOKIES="0")
    assert plain_http["session"] is False
