"""Operator escape hatches applied last to every upstream body: ``drop_fields`` and ``extra_body``.

They run after every other rewrite, so an operator can always fix a backend without code; the
fields a prefill strategy sets (``PROTECTED_BODY_FIELDS``) survive both.
"""

from __future__ import annotations

from typing import Any

from translation.capabilities import PROTECTED_BODY_FIELDS, Capabilities
from translation.notes import RewriteNote


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged = dict(current)
            _merge(merged, value)
            into[key] = merged
        else:
            into[key] = value


def body_extras_apply(body: dict[str, Any], caps: Capabilities, notes: list[RewriteNote]) -> None:
    protected = {k: body[k] for k in PROTECTED_BODY_FIELDS if k in body}
    dropped = [k for k in caps.drop_fields if k in body and k not in protected]
    for key in dropped:
        del body[key]
    if dropped:
        notes.append(RewriteNote("drop_fields", ",".join(dropped),
                                 f"Removed {', '.join(dropped)} (capability drop_fields)."))
    if caps.extra_body:
        _merge(body, caps.extra_body)
        notes.append(RewriteNote("extra_body", ",".join(sorted(caps.extra_body)),
                                 "Merged the backend's extra_body into the request."))
    body.update(protected)
