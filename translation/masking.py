"""Masking credentials in what the inspector stores: header values by name, and any secret a
client or backend echoes inside a body (some proxies put the Authorization header in their error
bodies). Pure functions: the gateway and the inspector both call them."""

from __future__ import annotations

import functools
from typing import Any

import orjson

# Header names that carry credentials: the usual ones, and any operator-added header (backend
# capability extra_headers) whose name says it is a key, token, secret or credential.
_SECRET_HEADER_WORDS = ("key", "auth", "token", "secret", "cookie", "password", "credential", "signature")

# Shorter strings could be ordinary words; every real key is longer.
SECRET_MIN_LEN = 8


@functools.lru_cache(maxsize=4096)  # header names repeat: every request pays one dict lookup each
def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)


def secret_mask(value: str) -> str:
    return "***" + value[-4:] if len(value) > 8 else "***"


def key_hint(value: str) -> str:
    """How a presented API key is shown: its first 12 characters (what the admin lists as a key's
    prefix) and last four when it is long enough for that to leave most of it hidden, else the
    last four only."""
    value = value.strip()
    return f"{value[:12]}…{value[-4:]}" if len(value) >= 32 else secret_mask(value)


def headers_mask(headers: Any) -> dict[str, str]:
    """``headers`` (a mapping) with every credential's value masked. Django's ``request.headers``
    (a ``CaseInsensitiveMapping``) looks every key up again through ``items()``; its ``_store``
    holds the ``(name, value)`` pairs, so those are read directly when present."""
    store = None if type(headers) is dict else getattr(headers, "_store", None)
    pairs = store.values() if isinstance(store, dict) else headers.items()
    return {k: (secret_mask(v) if _is_secret_header(k) else v) for k, v in pairs}


def secrets_redact(value: Any, secrets: tuple[str, ...] | list[str]) -> Any:
    """``value`` with every occurrence of each secret replaced by its masked form: for what a
    backend echoes back (some proxies put the Authorization header in their error bodies)."""
    wanted = [s for s in dict.fromkeys(secrets) if len(s) >= SECRET_MIN_LEN]
    if not wanted:
        return value
    try:
        blob = orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits: walk it anyway
        blob = None
    if blob is not None:
        wanted = [s for s in wanted if orjson.dumps(s)[1:-1] in blob]
        if not wanted:
            return value
    return _redact(value, wanted)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, secret_mask(secret))
        return value
    if isinstance(value, dict):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, secrets) for v in value]
    return value
