"""JSON encoding for everything the gateway sends: orjson, exact for integers beyond 64 bits.

Clients may send (and backends return) tool inputs with integers orjson cannot encode; those
are rare, so the fast path stays orjson and only a failing document takes the stdlib path.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # "Integer exceeds 64-bit range"
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
