"""Writes to the gateway's tables. The admin, the config file and the commands all come here."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.utils import timezone

from gateway.models import ApiKey
from gateway.snapshot import KEY_PREFIX_LEN, key_hash


def apikey_generate() -> str:
    return "dgm_" + secrets.token_urlsafe(32)


def apikey_set_secret(*, key: ApiKey, secret: str) -> None:
    key.prefix = secret[:KEY_PREFIX_LEN]
    key.key_hash = key_hash(secret)


def apikey_create(*, name: str, secret: str | None = None, allowed_models: str = "") -> tuple[ApiKey, str]:
    """Create a key; returns it with its secret, which is shown once and never stored."""
    secret = secret or apikey_generate()
    key = ApiKey(name=name, allowed_models=allowed_models)
    apikey_set_secret(key=key, secret=secret)
    key.save()
    return key, secret


def apikeys_touch(*, key_ids: Iterable[int]) -> None:
    """Mark keys as used now (batched by the inspector writer, never per request)."""
    ids = list(key_ids)
    if ids:
        ApiKey.objects.filter(pk__in=ids).update(last_used_at=timezone.now())
