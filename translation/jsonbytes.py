"""JSON for everything the gateway sends and stores: orjson, exact for integers beyond 64 bits.

Clients may send (and backends return) tool inputs with integers orjson cannot encode or read
exactly; those are rare, so the fast path stays orjson and only such a document takes the
stdlib path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson


def json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # "Integer exceeds 64-bit range"
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# 19 digits in a row: maybe an integer beyond 64 bits, which orjson rejects or (just past the
# negative limit) silently reads as a float; the stdlib parser keeps such numbers exact.
_LONG_INTEGER_TEXT = re.compile(r"\d{19}")
# For bytes, the same test without the regex: every digit becomes "0", then one substring search.
# ``re`` tries the pattern at every offset (2 ms for a 160 KB Claude Code request, holding the
# GIL); translate and ``in`` run at memory speed (0.09 ms).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_INTEGER_ZEROS = b"0" * 19


def json_loads_exact(raw: bytes | str) -> Any:
    """``orjson.loads``, or ``json.loads`` when ``raw`` may hold an integer beyond 64 bits.
    Raises ``ValueError`` (``orjson.JSONDecodeError`` is one) or, very deep, ``RecursionError``."""
    if isinstance(raw, bytes):
        long = _LONG_INTEGER_ZEROS in raw.translate(_DIGITS_AS_ZERO)
    else:
        long = _LONG_INTEGER_TEXT.search(raw) is not None
    if long:
        return json.loads(raw)
    return orjson.loads(raw)
