"""The message a client builds from Anthropic stream events, like the SDK's ``accumulate_event``.

One fold for everyone who needs "what the client has seen": the native stream relay (its
``message``) and the inspector (the message view of a stream). Anthropic docs, streaming
messages: ``message_start`` carries the message with empty content, ``content_block_start``
appends a block, deltas grow it (``text_delta``, ``thinking_delta``, ``signature_delta``,
``citations_delta``; ``input_json_delta`` fragments are parsed at ``content_block_stop``), and
``message_delta`` updates the top-level fields and the cumulative usage.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from translation.jsonbytes import json_loads_exact

# delta type -> the block field it extends (and the delta's key holding the text: the same name)
_TEXT_DELTAS = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}


class MessageFold:
    """Incremental: ``feed(event)`` for each event, ``message`` for the message so far.

    Text fragments are kept as lists and joined only when ``message`` is read, so a long stream
    folds in linear time. ``keep_unparsed``: a tool input whose JSON does not parse is kept as
    ``input_unparsed`` (for a person reading it); otherwise the input stays ``{}``.
    """

    def __init__(self, *, keep_unparsed: bool = True) -> None:
        self.keep_unparsed = keep_unparsed
        self._message: dict[str, Any] = {}
        self._blocks: list[dict[str, Any]] = []
        self._parts: list[dict[str, list[str]]] = []  # per block: field -> fragments
        self._partial: dict[int, list[str]] = {}  # block index -> input_json fragments not parsed yet

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "content_block_delta":  # first: nearly every event is one
            delta = event.get("delta")
            self._delta(event.get("index", 0), delta if isinstance(delta, dict) else {})
        elif kind == "message_start":
            message = event.get("message")
            self._message = {**copy.deepcopy(message if isinstance(message, dict) else {}), "content": []}
            self._blocks, self._parts = [], []
        elif kind == "content_block_start":
            self._blocks.append(copy.deepcopy(event.get("content_block", {})))
            self._parts.append({})
        elif kind == "content_block_stop":
            self._stop(event.get("index", 0))
        elif kind == "message_delta":
            delta, usage = event.get("delta"), event.get("usage")
            self._message.update(delta if isinstance(delta, dict) else {})
            # usage counts are cumulative: the latest wins (Anthropic docs, streaming messages)
            self._message["usage"] = {**self._message.get("usage", {}), **(usage if isinstance(usage, dict) else {})}

    def _delta(self, index: Any, delta: dict[str, Any]) -> None:
        if not isinstance(index, int) or not 0 <= index < len(self._blocks):
            return
        dtype = delta.get("type", "")
        text_field = _TEXT_DELTAS.get(dtype)
        if text_field is not None:
            self._parts[index].setdefault(text_field, []).append(delta.get(text_field, ""))
        elif dtype == "input_json_delta":
            self._partial.setdefault(index, []).append(delta.get("partial_json", ""))
        elif dtype == "citations_delta" and "citation" in delta:
            self._blocks[index].setdefault("citations", []).append(delta["citation"])

    def _stop(self, index: Any) -> None:
        if index not in self._partial or not 0 <= index < len(self._blocks):
            return
        raw = "".join(self._partial.pop(index))
        try:
            # Exact: an integer beyond 64 bits stays the integer the client's SDK parses.
            self._blocks[index]["input"] = json_loads_exact(raw or "{}")
        except (ValueError, RecursionError):
            if self.keep_unparsed:
                self._blocks[index]["input_unparsed"] = raw
            else:
                self._blocks[index]["input"] = {}

    @property
    def started(self) -> bool:
        return bool(self._message)

    def field(self, name: str, default: Any = None) -> Any:
        """A top-level field of the message (stop_reason, usage, ...), without building it."""
        return self._message.get(name, default)

    def open_input(self, index: int) -> str | None:
        """The input JSON received so far for a tool block not stopped yet."""
        parts = self._partial.get(index)
        return "".join(parts) if parts else None

    @property
    def message(self) -> dict[str, Any]:
        if not self._message and not self._blocks:
            return {}
        content = []
        for block, parts in zip(self._blocks, self._parts, strict=True):
            block = dict(block)
            for field, fragments in parts.items():
                block[field] = block.get(field, "") + "".join(fragments)
            content.append(block)
        message = dict(self._message)
        message["content"] = content
        return message


def message_fold(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The message a client builds from ``events`` (a whole stream or a prefix of one)."""
    fold = MessageFold()
    for event in events:
        fold.feed(event)
    return fold.message
