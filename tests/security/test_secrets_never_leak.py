"""Client keys and upstream secrets never appear in logs, in the inspector or in admin pages,
through success and error paths, even when the backend echoes its credentials back.

Real traffic: the Django ASGI handler in-process (so ``caplog`` sees every log record of the
gateway), the project's mock backend on a real socket, the admin through Django's test client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.test import AsyncClient, Client

from gateway import snapshot, upstream
from gateway.models import ApiKey, Backend, Route
from gateway.services import apikey_create
from inspector.models import Exchange
from inspector.recorder import recorder
from tests.mockbackend import MockServerThread
from tests.security.leaks import CLIENT_SECRET, UPSTREAM_SECRET, assert_no_secret, masked

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def leaky_setup(transactional_db: None) -> Iterator[MockServerThread]:
    """A backend whose key is UPSTREAM_SECRET (the mock echoes it on request) and a client key
    CLIENT_SECRET, both unique strings that nothing else contains."""
    with MockServerThread() as mock:
        backend = Backend.objects.create(name="leaky", base_url=mock.url, preset="vllm", api_key=UPSTREAM_SECRET,
                                         read_timeout=20)
        Route.objects.create(model="leak-*", backend=backend, upstream_model="mock-model")
        apikey_create(name="leak-client", secret=CLIENT_SECRET)
        snapshot.snapshot_invalidate()
        yield mock
        snapshot.snapshot_invalidate()
        recorder.flush(10)


def ask(scenario: str, *, stream: bool = False) -> dict[str, Any]:
    return {"model": "leak-test", "max_tokens": 50, "stream": stream,
            "messages": [{"role": "user", "content": f"Hello [[mock:{scenario}]]"}]}


async def traffic() -> list[tuple[int, bytes, dict[str, str]]]:
    """Every path a secret could take: success and upstream failures, streamed and not, both
    ways of sending the key, a wrong key that contains the right one, bad input."""
    client = AsyncClient()
    by_header = {"x-api-key": CLIENT_SECRET}
    by_bearer = {"authorization": f"Bearer {CLIENT_SECRET}"}
    calls: list[tuple[str, Any, dict[str, str]]] = [
        ("/v1/messages", ask("text"), by_header),
        ("/v1/messages", ask("text", stream=True), by_bearer),
        ("/v1/messages", ask("auth_echo_500"), by_header),
        ("/v1/messages", ask("auth_echo_500", stream=True), by_header),
        ("/v1/messages", ask("auth_echo_401"), by_bearer),
        ("/v1/messages", ask("auth_echo_401", stream=True), by_header),
        ("/v1/messages", ask("error_chunk", stream=True), by_header),
        ("/v1/messages", ask("auth_echo_stream", stream=True), by_header),
        ("/v1/messages/count_tokens", {"model": "leak-test", "messages": [{"role": "user", "content": "hi"}]},
         by_header),
        ("/v1/messages", "{not json", by_header),
        ("/v1/messages", ask("text"), {"x-api-key": CLIENT_SECRET + "-typo"}),
        ("/v1/messages", ask("text"), {"authorization": f"Bearer {CLIENT_SECRET}x", "x-api-key": "nope-nope"}),
    ]
    # Failures the middleware answers (wrong method, unknown path with the key in its query).
    calls += [("GET /v1/messages", None, by_header), (f"/v1/nope?api_key={CLIENT_SECRET}", {}, by_bearer)]
    out = []
    for path, body, headers in calls:
        if path.startswith("GET "):
            response = await client.get(path[4:], headers=headers)
        else:
            data = body if isinstance(body, str) else json.dumps(body)
            response = await client.post(path, data=data, content_type="application/json", headers=headers)
        if response.streaming:
            content = b"".join([part async for part in response.streaming_content])  # type: ignore[attr-defined]
        else:
            content = response.content
        out.append((response.status_code, content, dict(response.items())))
    return out


def admin_pages(staff: Client) -> dict[str, str]:
    """Every admin page where a key or an exchange shows up, by URL."""
    urls = ["/admin/", "/admin/inspector/exchange/", "/admin/inspector/exchange/?q=leak",
            "/admin/inspector/exchange/live/", "/admin/gateway/backend/", "/admin/gateway/apikey/",
            "/admin/gateway/route/", "/admin/gateway/apikey/add/", "/admin/gateway/backend/add/"]
    for exchange_id in Exchange.objects.values_list("id", flat=True):
        base = f"/admin/inspector/exchange/{quote(exchange_id)}/"
        urls += [base, base + "change/", base + "json/", base + "fixture/"]
    for backend in Backend.objects.all():
        urls += [f"/admin/gateway/backend/{backend.pk}/change/", f"/admin/gateway/backend/{backend.pk}/history/"]
    for key in ApiKey.objects.all():
        urls += [f"/admin/gateway/apikey/{key.pk}/change/", f"/admin/gateway/apikey/{key.pk}/history/"]
    pages = {}
    for url in urls:
        response = staff.get(url, follow=True)
        assert response.status_code == 200, (url, response.status_code)
        pages[url] = response.content.decode()
    return pages


def test_no_secret_reaches_clients_logs_exchanges_or_admin_pages(
        leaky_setup: MockServerThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses = async_to_sync(traffic)()
    statuses = [status for status, _, _ in responses]
    assert statuses == [200, 200, 500, 500, 500, 500, 200, 200, 200, 400, 401, 401, 405, 404], statuses

    # The backend really got its key and echoed it; the client saw only the masked form.
    sent = [r["headers"].get("authorization", "") for r in leaky_setup.requests]
    assert f"Bearer {UPSTREAM_SECRET}" in sent
    echoed = json.loads(responses[2][1])["error"]["message"]
    assert masked(UPSTREAM_SECRET) in echoed, echoed
    # The client's key never went upstream.
    assert_no_secret("requests the backend received", json.dumps(leaky_setup.requests), client_key_only=True)
    for status, body, headers in responses:
        assert_no_secret(f"response {status}", body.decode("utf-8", "replace") + json.dumps(headers))

    assert recorder.flush(10)
    rows = list(Exchange.objects.values())
    assert len(rows) == len(responses)
    stored = json.dumps(rows, default=str)
    assert_no_secret("exchange rows", stored)
    assert masked(CLIENT_SECRET) in stored  # headers were stored, masked

    user = User.objects.create_superuser("root", "root@example.com", "pw")
    staff = Client()
    staff.force_login(user)
    # A staff replay of the echoing request takes the other path to the backend (on a new event
    # loop here, so without the pools of the one that sent the traffic).
    upstream.pools.reset()
    echo_id = responses[2][2]["request-id"]
    replay = staff.post(f"/admin/inspector/exchange/{quote(echo_id)}/replay/", {"target": ""})
    assert replay.status_code == 302
    assert recorder.flush(10)
    replayed = Exchange.objects.exclude(id__in=[r["id"] for r in rows]).get()
    assert replayed.status == 500 and masked(UPSTREAM_SECRET) in replayed.error_message

    for url, page in admin_pages(staff).items():
        assert_no_secret(f"admin page {url}", page)
    assert_no_secret("logs", caplog.text + "".join(str(r.args) for r in caplog.records))
