"""Usage as backends report it, and the gateway's share of an exchange's time: pure functions
the request path, the inspector's recorder and its pages all use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def usage_merge(usage: dict[str, Any], chunk: Any) -> None:
    """Fold the usage a backend reports in one stream chunk (or a whole body) into ``usage``:
    top-level ``usage`` (Chat Completions' final chunk, Anthropic ``message_delta``) or nested in
    ``message`` (Anthropic ``message_start``) or ``response`` (Responses ``response.completed``)."""
    if not isinstance(chunk, dict):
        return
    found = chunk.get("usage")
    if found is None:
        nested = chunk.get("message") or chunk.get("response")
        found = nested.get("usage") if isinstance(nested, dict) else None
    if isinstance(found, dict):
        usage.update(found)


def overhead_ms(timings: Mapping[str, float], stream: bool) -> float | None:
    """Time the gateway added before the client's first token, from an exchange's timing marks
    (ms since the request arrived): before the upstream request went out, plus (streams) the wait
    between the upstream chunk that produced the first token and its event, or (non-streaming)
    between the upstream body and the reply. Without an upstream call all of it is the gateway's."""
    t = timings
    if "upstream_connected" not in t:
        return t.get("finished")
    before = t["upstream_connected"]
    if stream:
        if "first_token" in t and "first_token_chunk" in t:
            return round(before + max(0.0, t["first_token"] - t["first_token_chunk"]), 3)
        return before
    if "upstream_done" in t and "finished" in t:
        return round(before + t["finished"] - t["upstream_done"], 3)
    return before
