"""Anthropic stream events every translator builds the same way."""

from __future__ import annotations

from typing import Any, Protocol

from translation.errors import ApiError
from translation.notes import RewriteNote

Event = dict[str, Any]


class StreamTranslator(Protocol):
    """What every backend kind's stream translator offers: the relay and the output cap use it."""

    notes: list[RewriteNote]

    def start(self) -> list[Event]: ...
    def feed(self, chunk: dict[str, Any]) -> list[Event]: ...
    def finish(self) -> list[Event]: ...
    def fail(self, error: ApiError) -> list[Event]: ...
    @property
    def upstream_finished(self) -> bool: ...
    @property
    def message(self) -> dict[str, Any]: ...


def message_start(*, message_id: str, model: str, input_tokens: int) -> dict[str, Any]:
    """``message_start`` with an empty message and the best input-token count known yet.

    ``output_tokens`` starts at 1 as Anthropic's own streams do; the final ``message_delta``
    carries the real cumulative usage.
    """
    return {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1},
    }}


def message_end(*, stop_reason: str | None, stop_sequence: str | None, usage: dict[str, Any]) -> list[dict[str, Any]]:
    """The final ``message_delta`` (stop reason and cumulative usage) and ``message_stop``."""
    return [{"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
             "usage": usage},
            {"type": "message_stop"}]
