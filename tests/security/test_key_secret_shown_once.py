"""A new or rotated key's secret is shown exactly once, on the page that answers the request that
made it: never cached, never in a cookie or session, never on a later page; only its hash is kept.
``applyconfig`` stores keys the same way and never prints them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from gateway import snapshot
from gateway.config import ConfigError, config_apply, config_parse
from gateway.models import ApiKey
from gateway.snapshot import key_hash

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_ON_PAGE = re.compile(r'<code class="api-key">(dgm_[^<]+)</code>')


def secrets_on(page: str) -> list[str]:
    return SECRET_ON_PAGE.findall(page)


def assert_shown_nowhere_else(staff: Client, secret: str, response: object) -> None:
    cookies = "".join(morsel.OutputString() for morsel in response.cookies.values())  # type: ignore[attr-defined]
    assert secret not in cookies
    assert "no-store" in response["cache-control"]  # type: ignore[index]
    assert not any(secret in str(s.get_decoded()) for s in Session.objects.all())
    for key in ApiKey.objects.all():
        for url in ("/admin/gateway/apikey/", f"/admin/gateway/apikey/{key.pk}/change/",
                    f"/admin/gateway/apikey/{key.pk}/history/", "/admin/"):
            assert secret not in staff.get(url).content.decode(), url


def test_a_new_key_is_shown_once_and_only_its_hash_is_kept(staff: Client) -> None:
    response = staff.post("/admin/gateway/apikey/add/", {"name": "laptop", "enabled": "on", "allowed_models": ""})
    assert response.status_code == 200
    [secret] = secrets_on(response.content.decode())
    key = ApiKey.objects.get(name="laptop")
    assert key.key_hash == key_hash(secret) and secret.startswith(key.prefix)
    assert_shown_nowhere_else(staff, secret, response)
    snapshot.snapshot_invalidate()


def test_rotating_keys_shows_each_new_secret_once_and_retires_the_old(staff: Client) -> None:
    from gateway.services import apikey_create

    keys = [apikey_create(name=name) for name in ("a", "b")]
    response = staff.post("/admin/gateway/apikey/", {
        "action": "rotate", "_selected_action": [k.pk for k, _ in keys]})
    assert response.status_code == 200
    fresh = secrets_on(response.content.decode())
    assert len(fresh) == 2 and not {old for _, old in keys} & set(fresh)
    for key, old in keys:
        key.refresh_from_db()
        assert key.key_hash != key_hash(old)
        assert key.key_hash in {key_hash(s) for s in fresh}
    for secret in fresh:
        assert_shown_nowhere_else(staff, secret, response)


def test_applyconfig_stores_the_hash_and_reports_without_the_key() -> None:
    secret = "dgm_from_config_" + "q" * 24
    report = config_apply(config_parse(f"keys:\n  - name: ci\n    key: {secret}\n"))
    key = ApiKey.objects.get(name="ci")
    assert key.key_hash == key_hash(secret)
    assert not any(secret in str(v) for v in ApiKey.objects.filter(pk=key.pk).values().get().values())
    assert report == ["key ci: created"]
    assert config_apply(config_parse(f"keys:\n  - name: ci\n    key: {secret}\n")) == []  # idempotent
    rotated = config_apply(config_parse(f"keys:\n  - name: ci\n    key: {secret}x\n"))
    assert rotated == ["key ci: updated key"] and secret not in "".join(rotated)


def test_a_config_file_error_never_quotes_the_line_with_the_key(tmp_path: Path) -> None:
    for text in ("keys:\n  - name: ci\n    key: dgm_SECRETVALUE0123456789: oops\n",
                 'backends:\n  - name: b\n    api_key: "sk-SECRETVALUE0123456789\n'):
        with pytest.raises(ConfigError) as error:
            config_parse(text)
        assert "SECRETVALUE" not in str(error.value)
        assert "line 3" in str(error.value)
