"""Hold a reply to the client's ``max_tokens`` when the backend ignores it.

``max_tokens`` is a hard limit in the Messages API: a reply that reaches it ends with
``stop_reason: "max_tokens"`` (anthropic-sdk-python types/message.py). A backend that ignores the field it was sent (a
server that does not implement it, the wrong field name, a proxy in between) would make the
gateway relay unbounded output to a client that budgeted for N tokens. The gateway cannot count
the backend's tokens (tokenizers differ, and a stream reports usage only at its end, when it is
too late to stop it), so it counts the characters of output it relays — text, thinking and
tool-input JSON — and ends the message with ``stop_reason: "max_tokens"`` once they are clearly
more than N tokens can be:

    characters > CHARS_PER_TOKEN_MAX * max_tokens + GRACE_CHARS        (6 per token, plus 1,024)

Tokenizers average about 4 characters per token on English, 3 to 3.5 on code and JSON, 1 to 2 on
CJK (where characters, not bytes, are counted); 6 is more than real text averages, so a backend
that keeps to its limit is never cut, and one that ignores it is cut at about 1.5 times (large
budgets) to a few times (small budgets) what was asked. The backend's own usage is not a trigger:
using it only where it arrives in time (non-streamed replies) would make a streamed and a
non-streamed answer to the same request end differently.

Streams are cut between upstream chunks (the events of one chunk are relayed whole), then closed
the way the translator closes a finished message — open blocks stopped, a tool call's JSON made
whole — with the final ``message_delta`` saying ``max_tokens``. Non-streamed replies are cut at
exactly the limit: text and thinking mid-block, a tool call that does not fit dropped. Either way
``usage.output_tokens`` is the larger of the backend's count and an estimate of what was relayed
(``translation.tokens``: one token per 3 characters), and a ``max_tokens.enforce`` note says what
happened.
"""

from __future__ import annotations

import math
from typing import Any

from translation.errors import ApiError
from translation.events import Event, StreamTranslator
from translation.jsonbytes import json_bytes
from translation.notes import RewriteNote
from translation.tokens import CHARS_PER_TOKEN

CHARS_PER_TOKEN_MAX = 6
GRACE_CHARS = 1024


def output_chars_limit(max_tokens: int) -> int:
    """The most output characters a reply may carry before it is cut."""
    return CHARS_PER_TOKEN_MAX * max(0, max_tokens) + GRACE_CHARS


def _note(max_tokens: int) -> RewriteNote:
    return RewriteNote(
        "max_tokens.enforce", "content",
        f"The backend ignored max_tokens={max_tokens}: its reply passed {output_chars_limit(max_tokens)} "
        f"characters ({CHARS_PER_TOKEN_MAX} per token plus {GRACE_CHARS}), so it was cut there and ended "
        "with stop_reason max_tokens.")


def _usage_capped(usage: Any, chars: int) -> dict[str, Any]:
    usage = dict(usage) if isinstance(usage, dict) else {}
    reported = usage.get("output_tokens")
    estimate = math.ceil(chars / CHARS_PER_TOKEN)
    usage["output_tokens"] = max(reported, estimate) if isinstance(reported, int) else estimate
    return usage


class CappedStream:
    """A stream translator whose output ends at the limit: wraps any translator (``feed`` /
    ``finish`` / ``fail``, ``message``, ``notes``, ``upstream_finished``) and counts the
    characters of the deltas it emits — one addition per delta, nothing re-joined."""

    __slots__ = ("_inner", "chars", "limit", "max_tokens", "notes", "tripped")

    def __init__(self, inner: StreamTranslator, *, max_tokens: int) -> None:
        self._inner = inner
        self.notes = inner.notes  # the same list
        self.max_tokens = max_tokens
        self.limit = output_chars_limit(max_tokens)
        self.chars = 0
        self.tripped = False

    @property
    def upstream_finished(self) -> bool:
        return self._inner.upstream_finished

    @property
    def message(self) -> dict[str, Any]:
        message = self._inner.message
        if not self.tripped:
            return message
        return {**message, "stop_reason": "max_tokens", "stop_sequence": None,
                "usage": _usage_capped(message.get("usage"), self.chars)}

    def start(self) -> list[Event]:
        return self._inner.start()

    def finish(self) -> list[Event]:
        return self._inner.finish()

    def fail(self, error: ApiError) -> list[Event]:
        return self._inner.fail(error)

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self.tripped:
            return []
        events = self._inner.feed(chunk)
        chars = self.chars
        for event in events:
            if event["type"] == "content_block_delta":
                delta = event["delta"]
                chars += len(delta.get("text") or delta.get("thinking") or delta.get("partial_json") or "")
        self.chars = chars
        if chars <= self.limit:
            return events
        ending = self._inner.finish()  # [] when this chunk already ended the message
        for event in ending:
            if event["type"] == "message_delta":
                self.tripped = True
                event["delta"] = {**event.get("delta", {}), "stop_reason": "max_tokens", "stop_sequence": None}
                event["usage"] = _usage_capped(event.get("usage"), chars)
        if self.tripped:
            self.notes.append(_note(self.max_tokens))
        return events + ending


def _block_chars(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return len(block.get("text") or "")
    if kind == "thinking":
        return len(block.get("thinking") or "")
    if kind == "tool_use":
        return len(json_bytes(block.get("input", {})))
    return 0


def message_capped(message: dict[str, Any], notes: list[RewriteNote], *,
                   max_tokens: int) -> tuple[dict[str, Any], list[RewriteNote]]:
    """A non-streamed reply cut to the limit (unchanged when it fits), with its notes."""
    content = message.get("content")
    if not isinstance(content, list):
        return message, notes
    limit = output_chars_limit(max_tokens)
    sizes = [_block_chars(b) if isinstance(b, dict) else 0 for b in content]
    total = sum(sizes)
    if total <= limit:
        return message, notes
    kept: list[Any] = []
    room = limit
    for block, size in zip(content, sizes, strict=True):
        if size <= room:
            kept.append(block)
            room -= size
            continue
        kind = block.get("type")
        if kind in ("text", "thinking") and room > 0:
            kept.append({**block, kind: block[kind][:room]})
            room = 0
        break
    capped = {**message, "content": kept, "stop_reason": "max_tokens", "stop_sequence": None,
              "usage": _usage_capped(message.get("usage"), limit - room)}
    return capped, [*notes, _note(max_tokens)]
