from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def id_new(prefix: str) -> str:
    """``prefix`` + 24 base62 characters: the shape of Anthropic's ``req_…`` and ``msg_…`` ids.
    One read of the system's random source (143 bits are needed), not one per character."""
    n = int.from_bytes(secrets.token_bytes(18))
    chars = []
    for _ in range(24):
        n, digit = divmod(n, 62)
        chars.append(_ALPHABET[digit])
    return prefix + "".join(chars)
