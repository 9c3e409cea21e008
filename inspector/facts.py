"""The columns the inspector derives from what an exchange recorded, in the writer thread: who
sent it (Claude Code's attribution headers, ``metadata.user_id``, the user agent), what it was
(method, path, the model its body named), what came of it (the message id, cache tokens, whether
it called tools) and the words search looks in.

Pure functions of the decoded bodies: nothing here runs on the request path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from translation.jsonbytes import json_loads_exact
from translation.session import SESSION_HEADER, header, session_from_user_id

AGENT_HEADER = "x-claude-code-agent-id"
PARENT_AGENT_HEADER = "x-claude-code-parent-agent-id"

# The search text holds the turn's own words; a turn's history is in the turns before it.
SEARCH_TEXT_MAX = 8000
_PART_MAX = 3000



def body_decoded(part: Mapping[str, Any]) -> Any:
    """The body a stored part holds: decoded already, or the raw bytes still to decode."""
    if "body" in part:
        return part["body"]
    raw = part.get("body_raw")
    if isinstance(raw, bytes | bytearray):
        try:
            return json_loads_exact(bytes(raw))
        except (orjson.JSONDecodeError, ValueError, RecursionError):
            return None
    return None


def user_id_of(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    return user_id if isinstance(user_id, str) else ""


def _text_of(content: Any, limit: int = _PART_MAX) -> str:
    """The words in a message's content: text blocks, tool results' text, tool calls' names."""
    if isinstance(content, str):
        return content[:limit]
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    size = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            text = block["text"]
        elif kind == "tool_result":
            text = _text_of(block.get("content"), limit)
        elif kind == "tool_use":
            text = f"{block.get('name', '')} {orjson.dumps(block.get('input'), default=str).decode()[:500]}"
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            text = block["thinking"]
        else:
            continue
        parts.append(text[: limit - size])
        size += len(parts[-1])
        if size >= limit:
            break
    return "\n".join(parts)


def last_user_text(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return ""
    for message in reversed(body["messages"]):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def response_message(client_response: Mapping[str, Any]) -> dict[str, Any] | None:
    """The message the client received: a stream's fold, or the body (not an error envelope)."""
    message = client_response.get("message")
    if not isinstance(message, dict):
        message = body_decoded(client_response)
    if isinstance(message, dict) and message.get("type") == "message":
        return message
    return None


def exchange_facts(*, client_request: Mapping[str, Any], client_response: Mapping[str, Any],
                   usage: Mapping[str, Any], error_message: str, client_model: str,
                   backends_tried: Sequence[str] = ()) -> dict[str, Any]:
    """The derived columns of one exchange, from its parts as recorded (raw or decoded);
    ``backends_tried``: the backends of an exchange that failed over, which search finds it by."""
    headers = client_request.get("headers") or {}
    body = body_decoded(client_request)
    user_id = user_id_of(body)
    session_id = header(headers, SESSION_HEADER) or session_from_user_id(user_id)
    message = response_message(client_response)
    content = message.get("content") if message else None
    model = client_model
    if not model and isinstance(body, dict) and isinstance(body.get("model"), str):
        model = body["model"]
    # The backends first: the cap cuts the end, and a long turn must not hide them.
    words = [" ".join(backends_tried)[:_PART_MAX], last_user_text(body), _text_of(content), error_message[:_PART_MAX]]
    return {
        "method": str(client_request.get("method") or "")[:10],
        "path": str(client_request.get("path") or "")[:300],
        "session_id": session_id[:100],
        "agent_id": header(headers, AGENT_HEADER)[:100],
        "parent_agent_id": header(headers, PARENT_AGENT_HEADER)[:100],
        "user_id": user_id[:300],
        "client_agent": header(headers, "user-agent")[:200],
        "client_model": model[:200],
        "message_id": str((message or {}).get("id") or "")[:100],
        "cache_read_tokens": usage.get("cache_read_input_tokens"),
        "cache_creation_tokens": usage.get("cache_creation_input_tokens"),
        "has_tool_calls": isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_use" for b in content),
        "search_text": "\n".join(w for w in words if w)[:SEARCH_TEXT_MAX],
    }
