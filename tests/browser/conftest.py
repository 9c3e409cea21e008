"""Browser fixtures: the system's headless Chromium (Debian's ``chromium``) driven by Playwright
against the gateway under daphne (the e2e fixtures), logged into the admin as a superuser.

No browser is downloaded: ``make test`` installs Debian's chromium when it is missing. Without
it the browser tests are skipped with a message, except under CI, where they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.conftest import Gateway, gateway, mock_backend  # noqa: F401 (fixtures reused)

CHROMIUM = os.environ.get("DRAGOMAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "docs" / "screenshots"
ADMIN_USER, ADMIN_PASSWORD = "operator", "browser-test-password"

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.path):
            item.add_marker(pytest.mark.browser)


def _missing() -> str:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (make test installs Debian's chromium when run as root)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    return ""


# Module scope: Playwright's sync API runs an event loop in the main thread while it is open,
# and tests collected after these (async tests, asyncio.run) need that thread loop-free.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"browser tests cannot run under CI: {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def admin_gateway(gateway: Gateway) -> Gateway:  # noqa: F811
    """The e2e gateway with a superuser to log in as."""
    env = {**gateway.env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD}
    done = subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", ADMIN_USER,
                           "--email", "operator@example.com"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 or "already taken" in done.stderr, done.stderr
    return gateway


@pytest.fixture
def page(browser: Any, admin_gateway: Gateway) -> Iterator[Any]:
    """A logged-in admin page."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, base_url=admin_gateway.url)
    # The admin's navigation sidebar closed: the inspector's tables get the width.
    context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/admin/login/")
    page.fill("#id_username", ADMIN_USER)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    yield page
    context.close()


def exchange_stored(gw: Gateway, request_id: str, page: Any) -> None:
    """Open the exchange page once the recorder has written it (it writes in batches)."""
    from django.contrib.admin.utils import quote

    deadline = time.monotonic() + 10
    while True:
        response = page.goto(f"/admin/inspector/exchange/{quote(request_id)}/change/")
        if response.status == 200 or time.monotonic() > deadline:
            assert response.status == 200, f"exchange {request_id} never appeared"
            return
        time.sleep(0.1)


def messages_post(gw: Gateway, body: dict[str, Any]) -> str:
    """One request through the gateway (streamed when the body says so); returns its request id."""
    headers = {"x-api-key": gw.key, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{gw.url}/v1/messages", json=body, headers=headers, timeout=30) as response:
        response.read()
        assert response.status_code == 200, response.text
        return response.headers["request-id"]
