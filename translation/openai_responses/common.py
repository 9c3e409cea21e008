"""Rules shared by the non-streaming and the streaming Responses translators.

Both must build the same Anthropic message from the same response (a property test checks it),
so every decision that could differ lives here once: the reasoning signature, tool ids, usage,
the stop reason, error mapping, and the two text filters (repeated-prefill strip and the
emulated stop sequences) that run on output text in both paths.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from translation.errors import ApiError
from translation.openai_chat.common import tool_id_make, usage_from_openai
from translation.signature import signature_mint, signature_read

RESPONSES_SRC = "responses"

# A backend call_id with characters Anthropic rejects in tool ids (``^[a-zA-Z0-9_-]+$``) travels
# as this prefix + its unpadded urlsafe base64 (whose alphabet is exactly [A-Za-z0-9_-]), so the
# next turn's function_call / function_call_output carry the backend's original call_id.
CALL_ID_ENVELOPE = "toolu_dgmb64_"
_ID_VALID = re.compile(r"^[a-zA-Z0-9_-]+$")

# Responses error codes (OAI ``response_error.py``) -> HTTP status of the Anthropic error.
_ERROR_STATUS = {"server_error": 500, "rate_limit_exceeded": 429, "vector_store_timeout": 504,
                 "insufficient_quota": 429, "overloaded": 529}


# -- reasoning signatures ---------------------------------------------------------------------


def reasoning_signature(*, item_id: Any, encrypted: Any, raw: bool, summary_lengths: list[int]) -> str:
    """The gateway signature of a thinking block made from one reasoning item.

    It carries what replaying the item needs: its ``id``, ``encrypted_content``, whether the
    text came as raw ``reasoning_text`` content (vLLM) rather than a summary, and the lengths of
    the summary parts when there were several (they are joined with a blank line).
    """
    payload: dict[str, Any] = {"src": RESPONSES_SRC}
    if isinstance(item_id, str) and item_id:
        payload["id"] = item_id
    if isinstance(encrypted, str) and encrypted:
        payload["enc"] = encrypted
    if raw:
        payload["raw"] = True
    if len(summary_lengths) > 1:
        payload["sl"] = summary_lengths
    return signature_mint(payload)


def reasoning_payload(signature: str) -> dict[str, Any] | None:
    """The payload of a signature this module minted; ``None`` for any other signature."""
    payload = signature_read(signature)
    if payload is None or payload.get("src") != RESPONSES_SRC:
        return None
    return payload


def summary_split(text: str, lengths: Any) -> list[str]:
    """The summary parts of a thinking text (one part unless the recorded lengths fit exactly)."""
    if isinstance(lengths, list) and all(isinstance(n, int) and n >= 0 for n in lengths) and lengths:
        parts, pos = [], 0
        for k, n in enumerate(lengths):
            if k:
                if text[pos:pos + 2] != "\n\n":
                    return [text]
                pos += 2
            parts.append(text[pos:pos + n])
            pos += n
        if pos == len(text):
            return parts
    return [text]


def summary_join(parts: list[str]) -> tuple[str, list[int]]:
    kept = [p for p in parts if p]
    return "\n\n".join(kept), [len(p) for p in kept]


# -- tool ids ---------------------------------------------------------------------------------


def tool_id_from_call_id(call_id: Any, *, message_id: str, ordinal: int, used: set[str]) -> str:
    """The Anthropic tool_use id for a backend ``call_id``: the same id when it is valid, a
    reversible envelope when it is not, a derived id when it is missing."""
    raw = call_id
    if isinstance(call_id, str) and call_id and not _ID_VALID.match(call_id):
        raw = CALL_ID_ENVELOPE + base64.urlsafe_b64encode(call_id.encode()).rstrip(b"=").decode("ascii")
    return tool_id_make(raw, message_id=message_id, ordinal=ordinal, used=used)


def call_id_from_tool_id(tool_id: str) -> str:
    """The backend ``call_id`` behind a tool_use id (the inverse of ``tool_id_from_call_id``)."""
    if tool_id.startswith(CALL_ID_ENVELOPE):
        encoded = tool_id[len(CALL_ID_ENVELOPE):]
        try:
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, ValueError):
            return tool_id
    return tool_id


# -- usage, stop reason, errors ---------------------------------------------------------------


def usage_from_responses(usage: Any, *, input_tokens_estimate: int = 0) -> dict[str, int]:
    """Anthropic usage from Responses usage (README, What is translated): the same arithmetic as Chat
    Completions, where ``input_tokens`` includes ``input_tokens_details.cached_tokens``."""
    if not isinstance(usage, dict):
        return usage_from_openai(None, input_tokens_estimate=input_tokens_estimate)
    return usage_from_openai({"prompt_tokens": usage.get("input_tokens"),
                              "completion_tokens": usage.get("output_tokens"),
                              "prompt_tokens_details": usage.get("input_tokens_details")},
                             input_tokens_estimate=input_tokens_estimate)


def stop_reason_decide(*, refused: bool, matched_stop: str | None, incomplete_reason: Any,
                       tool_calls: bool) -> tuple[str, str | None]:
    """Anthropic ``(stop_reason, stop_sequence)``. Precedence:

    1. refusal (a ``refusal`` part, or ``incomplete`` for ``content_filter``);
    2. ``stop_sequence`` when the gateway cut the output at one (nothing after it was kept);
    3. ``max_tokens`` for ``incomplete`` / ``max_output_tokens`` — even with tool calls, whose
       arguments may be cut;
    4. ``tool_use`` iff a function call was received;
    5. ``end_turn``.
    """
    if refused or incomplete_reason == "content_filter":
        return "refusal", None
    if matched_stop is not None:
        return "stop_sequence", matched_stop
    if incomplete_reason is not None:
        return "max_tokens", None
    if tool_calls:
        return "tool_use", None
    return "end_turn", None


def error_from_responses(error: Any, *, what: str = "backend error") -> ApiError:
    """An ApiError from a Responses ``error`` object / event (``{code, message, param}``)."""
    if isinstance(error, dict):
        message = error.get("message") or error.get("code") or "unknown error"
        code = error.get("code")
    else:
        message, code = str(error), None
    status = 502
    if isinstance(code, str):
        if code.isdigit():
            status = int(code)
        elif code in _ERROR_STATUS:
            status = _ERROR_STATUS[code]
        elif code.startswith(("invalid_", "image_", "unsupported_", "empty_", "failed_to_")):
            status = 400
    elif isinstance(code, int) and not isinstance(code, bool):
        status = code
    if not 400 <= status <= 599:
        status = 502
    source = "transient" if status in (429, 500, 503, 504, 529) else "backend"
    return ApiError(status, f"{what}: {message}", source=source)


def response_error(body: dict[str, Any]) -> ApiError | None:
    """The error a Responses body (or ``response.failed`` response) stands for, if any."""
    status = body.get("status")
    error = body.get("error")
    if error:
        return error_from_responses(error)
    if status == "failed":
        return ApiError(502, "backend error: the response failed without an error message", source="backend")
    if status == "cancelled":
        return ApiError(502, "backend error: the backend cancelled the response", source="backend")
    return None
