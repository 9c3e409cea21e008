"""A native Anthropic ``Message`` -> the Message the client sees (anthropic-sdk-python types/message.py).

The backend's message passes through with the gateway's id and the client's model name; with
``prefill=rewrite`` a prefix the model repeated is removed, so the reply continues the prefill
as Anthropic semantics promise (Anthropic docs, prefill).
"""

from __future__ import annotations

import copy
from typing import Any

from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.notes import RewriteNote
from translation.prefill import PrefixStrip, prefill_echo_prefix
from translation.schemas import MessagesRequest


def translate_response(body: dict[str, Any], caps: Capabilities, *, request: MessagesRequest,
                       message_id: str) -> tuple[dict[str, Any], list[RewriteNote]]:
    if body.get("type") != "message" or not isinstance(body.get("content"), list):
        raise ApiError(500, "the backend's answer is not an Anthropic message (no type \"message\" with a "
                            "content list)", source="backend")
    message = copy.deepcopy(body)
    message["id"] = message_id
    message["model"] = request.model
    notes: list[RewriteNote] = []
    strip = PrefixStrip(prefill_echo_prefix(request, caps, "anthropic"))
    content: list[Any] = message["content"]
    first_text = next((k for k, b in enumerate(content) if isinstance(b, dict) and b.get("type") == "text"), None)
    text = content[first_text].get("text", "") if first_text is not None else None
    if strip.active and first_text is not None and isinstance(text, str):
        rest = strip.strip(text)
        note = strip.note()
        if note is not None:
            if rest:
                content[first_text]["text"] = rest
            else:
                del content[first_text]
            notes.append(note)
    return message, notes
