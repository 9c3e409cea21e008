from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def id_new(prefix: str) -> str:
    """``prefix`` + 24 base62 characters: the shape of Anthropic's ``req_…`` and ``msg_…`` ids."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))
