"""Signatures of thinking blocks the gateway made itself.

A thinking block built from a backend's reasoning has no Anthropic signature, but clients replay
it and the gateway must recognise it later (for instance to strip it before a request reaches
real Claude, which rejects foreign signatures — README, Native Anthropic backends). Gateway signatures are
``"dgm1." + urlsafe-base64(compact JSON payload)`` (unpadded); the payload says where the block
came from, e.g. ``{"src": "chat"}`` for Chat Completions reasoning.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

SIGNATURE_PREFIX = "dgm1."


def signature_mint(payload: dict[str, Any]) -> str:
    encoded = base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode("ascii")
    return SIGNATURE_PREFIX + encoded


def signature_read(sig: str) -> dict[str, Any] | None:
    """The payload of a gateway signature; ``None`` for anything else (e.g. Anthropic's own)."""
    if not sig.startswith(SIGNATURE_PREFIX):
        return None
    encoded = sig[len(SIGNATURE_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None
