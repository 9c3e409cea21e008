"""The two marker secrets of the leak tests and the check that neither appears in a text."""

from __future__ import annotations

from gateway.snapshot import KEY_PREFIX_LEN
from translation.masking import secret_mask

# Unique strings: any occurrence of their hidden middle means a leak.
UPSTREAM_SECRET = "sk-upstream-LEAKMARKER-7f3a9c1e5b2d4f60a8"
CLIENT_SECRET = "dgm_client_LEAKMARKER-0b1c2d3e4f5a6b7c8d"


def masked(secret: str) -> str:
    return secret_mask(secret)


def _hidden(secret: str, *, prefix: int) -> str:
    # What neither the key's public prefix nor the masked form (*** + last 4) reveals.
    return secret[prefix:-4]


def assert_no_secret(where: str, text: str, *, client_key_only: bool = False) -> None:
    """Neither secret (nor any part beyond the client key's prefix and the last 4) in ``text``."""
    checks = [("client key", CLIENT_SECRET, KEY_PREFIX_LEN)]
    if not client_key_only:
        checks.append(("upstream secret", UPSTREAM_SECRET, 0))
    for name, secret, prefix in checks:
        assert _hidden(secret, prefix=prefix) not in text, f"{name} leaked into {where}"
