"""The admin is usable and never shows secrets back (browser tests come with the inspector)."""

from __future__ import annotations

import pytest
from django.test import Client

from gateway.models import ApiKey, Backend, Route

pytestmark = pytest.mark.django_db


def test_admin_requires_login() -> None:
    response = Client().get("/admin/gateway/backend/")
    assert response.status_code == 302
    assert "/admin/login/" in response["location"]


def test_backend_form_never_renders_the_upstream_key(staff: Client) -> None:
    backend = Backend.objects.create(name="b", base_url="http://x/v1", api_key="sk-very-secret-upstream")
    page = staff.get(f"/admin/gateway/backend/{backend.pk}/change/").content.decode()
    assert "sk-very-secret-upstream" not in page
    assert "Capabilities" in page and "cap_prefill" in page


def test_saving_a_backend_without_retyping_the_key_keeps_it(staff: Client) -> None:
    backend = Backend.objects.create(name="b", base_url="http://x/v1", api_key="sk-keep-me")
    response = staff.post(f"/admin/gateway/backend/{backend.pk}/change/", {
        "name": "b", "kind": "openai_chat", "base_url": "http://y/v1", "api_key": "", "preset": "sglang",
        "connect_timeout": "10", "read_timeout": "600", "enabled": "on",
        "cap_stream_usage": "unknown", "cap_top_k": "unknown", "cap_strip_billing_header": "unknown",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    backend.refresh_from_db()
    assert backend.api_key == "sk-keep-me"
    assert backend.base_url == "http://y/v1"
    assert backend.preset == "sglang"


def test_creating_a_key_shows_the_secret_once_and_stores_a_hash(staff: Client) -> None:
    response = staff.post("/admin/gateway/apikey/add/", {"name": "laptop", "enabled": "on", "allowed_models": ""},
                          follow=True)
    page = response.content.decode()
    key = ApiKey.objects.get(name="laptop")
    assert "dgm_" in page
    secret = page.split("dgm_", 1)[1].split()[0].split("<")[0]
    assert len(secret) > 20
    assert key.key_hash != "dgm_" + secret and len(key.key_hash) == 64
    later = staff.get(f"/admin/gateway/apikey/{key.pk}/change/").content.decode()
    assert secret not in later


def test_route_and_exchange_lists_render(staff: Client) -> None:
    backend = Backend.objects.create(name="b", base_url="http://x/v1")
    Route.objects.create(model="claude-*", backend=backend)
    assert staff.get("/admin/gateway/route/").status_code == 200
    assert staff.get("/admin/inspector/exchange/").status_code == 200
    assert staff.get("/admin/gateway/backend/?preset__exact=vllm").status_code == 200
