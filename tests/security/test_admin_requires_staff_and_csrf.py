"""The admin and the inspector need a staff login (and the model permission), every admin POST
needs a CSRF token, and the live tail's WebSocket needs a staff session from an allowed origin."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import URLPattern, URLResolver
from django.utils import timezone

from gateway.asgi import application
from gateway.models import ApiKey, Backend, Route
from inspector.models import Exchange

pytestmark = pytest.mark.django_db(transaction=True)

LIVE_WS = "/admin/inspector/exchange/live/ws"


def admin_urls() -> list[str]:
    """Every URL the admin site serves, found by walking its URLconf (so new inspector views are
    covered without editing this test); path arguments become the id of a row that exists."""
    backend = Backend.objects.create(name="b", base_url="http://127.0.0.1:9/v1", api_key="sk-x")
    ids = {"gateway/backend/": backend.pk,
           "gateway/route/": Route.objects.create(model="m", backend=backend).pk,
           "gateway/apikey/": ApiKey.objects.create(name="k", prefix="p", key_hash="h" * 64).pk,
           "inspector/exchange/": Exchange.objects.create(id="req_admin_probe", status=200,
                                                          created_at=timezone.now()).pk,
           "auth/group/": Group.objects.create(name="g").pk,
           "auth/user/": User.objects.create_user("someone").pk}
    urls = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for p in patterns:
            route = getattr(p.pattern, "_route", None)
            if route is None:  # regex patterns: the app index and the catch-all
                continue
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + route)
                continue
            assert isinstance(p, URLPattern)
            if p.name in ("login", "logout"):
                continue  # the login page is public; logging out without a session is harmless
            arg = ids.get(prefix, 1)
            urls.append("/admin/" + prefix + re.sub(r"<(?:\w+:)?\w+>", str(arg), route))

    walk(admin.site.get_urls(), "")
    urls += ["/admin/gateway/", "/admin/inspector/"]
    assert "/admin/inspector/exchange/req_admin_probe/json/" in urls and "/admin/gateway/backend/1/probe/" in {
        u.replace(str(backend.pk), "1") for u in urls}
    return urls


def test_anonymous_users_are_sent_to_the_login_page_from_every_admin_url() -> None:
    client = Client()
    for url in admin_urls():
        for response in (client.get(url), client.post(url)):
            assert response.status_code == 302, (url, response.status_code)
            assert response["location"].startswith("/admin/login/"), url


def test_a_logged_in_user_without_staff_status_is_refused() -> None:
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.set(Permission.objects.all())  # even with every permission
    client = Client()
    client.force_login(user)
    for url in admin_urls():
        response = client.get(url)
        assert response.status_code == 302 and response["location"].startswith("/admin/login/"), url
    assert client.post("/admin/login/", {"username": "alice", "password": "pw"}).status_code == 200  # refused


def test_staff_without_permissions_cannot_read_keys_backends_or_exchanges() -> None:
    user = User.objects.create_user("bob", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    urls = admin_urls()
    for url in urls:
        if url.rstrip("/") in ("/admin", "/admin/password_change", "/admin/password_change/done",
                               "/admin/jsi18n", "/admin/autocomplete"):
            continue
        if url.startswith("/admin/r/"):
            continue  # view-on-site redirects: none of our models has one
        status = client.get(url, follow=True).status_code  # <id>/ redirects to <id>/change/
        assert status in (403, 404), (url, status)


def test_admin_posts_need_a_csrf_token() -> None:
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    form = {"name": "csrf", "enabled": "on", "allowed_models": ""}
    assert client.post("/admin/gateway/apikey/add/", form).status_code == 403
    assert not ApiKey.objects.filter(name="csrf").exists()
    page = client.get("/admin/gateway/apikey/add/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token is not None
    created = client.post("/admin/gateway/apikey/add/", {**form, "csrfmiddlewaretoken": token.group(1)})
    assert created.status_code == 200 and ApiKey.objects.filter(name="csrf").exists()
    # The login form too: no token, no session.
    assert Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "root", "password": "pw"}
                                                 ).status_code == 403


async def _live_tail(cookie: str | None, origin: str = "http://testserver") -> tuple[bool, Any]:
    headers = [(b"host", b"testserver"), (b"origin", origin.encode())]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, LIVE_WS, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return connected, code


def _session_of(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def test_the_live_tail_needs_a_staff_session_from_an_allowed_origin() -> None:
    root = await sync_to_async(User.objects.create_superuser)("root", "root@example.com", "pw")
    alice = await sync_to_async(User.objects.create_user)("alice", password="pw")
    staff_cookie = await sync_to_async(_session_of)(root)
    user_cookie = await sync_to_async(_session_of)(alice)

    assert (await _live_tail(staff_cookie))[0]
    assert await _live_tail(None) == (False, 4403)
    assert await _live_tail("not-a-session") == (False, 4403)
    assert await _live_tail(user_cookie) == (False, 4403)
    connected, _ = await _live_tail(staff_cookie, origin="https://evil.example")
    assert not connected  # another site cannot ride a staff member's cookies
