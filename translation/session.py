"""Which Claude Code session a request belongs to: the ``x-claude-code-session-id`` header, else
the session ``metadata.user_id`` names. Pure: the gateway routes on it (a session's turns go to
the replica holding its prefix cache, ``gateway.routing``), adapters send it as a cache key
(``prompt_cache_key``) and the inspector groups turns by it (``inspector.facts``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

SESSION_HEADER = "x-claude-code-session-id"

# Claude Code's older metadata.user_id: ``user_<hash>_account_<uuid>_session_<uuid>``.
_USER_ID_SESSION = re.compile(r"_session_([0-9a-fA-F-]{8,64})")


def header(headers: Mapping[str, Any] | None, name: str) -> str:
    """A header's value whatever case it was stored in ('' when absent)."""
    if not headers:
        return ""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), "")
    return str(value or "")


def session_from_user_id(user_id: str) -> str:
    """The session a ``metadata.user_id`` names: Claude Code's ``…_session_<uuid>`` form, or a
    JSON object with a ``session_id``; '' when it names none (a plain user id is no session)."""
    if not user_id:
        return ""
    if user_id.startswith("{"):
        try:
            decoded = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return ""
        value = decoded.get("session_id") if isinstance(decoded, dict) else None
        return value if isinstance(value, str) else ""
    match = _USER_ID_SESSION.search(user_id)
    return match.group(1) if match else ""


def session_of(headers: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None) -> str:
    """The request's session: the header, else ``metadata.user_id``'s; '' when it has none."""
    found = header(headers, SESSION_HEADER)
    if found:
        return found
    user_id = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    return session_from_user_id(user_id) if isinstance(user_id, str) else ""
