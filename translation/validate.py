"""Check an Anthropic event stream against the grammar clients depend on.

Anthropic docs, streaming messages (grammar) and §3.2 (what the SDK accumulators crash on or silently drop)::

    stream := message_start block* message_delta+ message_stop   (ping anywhere; error ends it)
    block  := content_block_start(i) content_block_delta(i)* content_block_stop(i)

Used by tests and by the gateway to flag a translated stream in the inspector.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_DELTA_FOR_BLOCK = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
    "server_tool_use": {"input_json_delta"},
    "redacted_thinking": set(),
}
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


class StreamValidator:
    """Incremental: ``feed(event)`` returns the first violation (then keeps returning it)."""

    def __init__(self) -> None:
        self.violation: str | None = None
        self._n = 0  # events seen
        self._phase = "start"  # start -> blocks -> delta -> stopped | errored
        self._next_index = 0
        self._open: dict[str, Any] | None = None  # {"index", "type", "json": [..], "signature"}

    def feed(self, event: dict[str, Any]) -> str | None:
        if self.violation is None:
            problem = self._check(event)
            if problem is not None:
                self.violation = f"event {self._n} ({event.get('type')!r}): {problem}"
        self._n += 1
        return self.violation

    def finish(self) -> str | None:
        """The violation, or what is missing when the stream ended here."""
        if self.violation is None and self._phase not in ("stopped", "errored"):
            self.violation = f"stream ended after {self._n} events without message_stop"
        return self.violation

    def _check(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if self._phase in ("stopped", "errored"):
            return f"event after {'message_stop' if self._phase == 'stopped' else 'error'}"
        if kind == "ping":
            return None
        if kind == "error":
            error = event.get("error")
            if not isinstance(error, dict) or not isinstance(error.get("type"), str):
                return "error event without error.type"
            self._phase = "errored"
            return None
        if self._phase == "start":
            if kind != "message_start":
                return "the first event must be message_start"
            message = event.get("message")
            if not isinstance(message, dict):
                return "message_start without message"
            if message.get("content") != []:
                return "message_start.message.content must be []"
            usage = message.get("usage")
            if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
                return "message_start.message.usage.input_tokens missing"
            self._phase = "blocks"
            return None
        if kind == "message_start":
            return "second message_start"
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "content_block_stop":
            return self._block_stop(event)
        if kind == "message_delta":
            if self._open is not None:
                return f"message_delta while block {self._open['index']} is open"
            delta = event.get("delta")
            if not isinstance(delta, dict) or "stop_reason" not in delta:
                return "message_delta without delta.stop_reason"
            usage = event.get("usage")
            if not isinstance(usage, dict) or not isinstance(usage.get("output_tokens"), int):
                return "message_delta without usage.output_tokens"
            self._phase = "delta"
            return None
        if kind == "message_stop":
            if self._phase != "delta":
                return "message_stop without a message_delta before it"
            self._phase = "stopped"
            return None
        return None  # unknown event types are ignored by clients (Anthropic docs, "Streaming")

    def _block_start(self, event: dict[str, Any]) -> str | None:
        if self._phase != "blocks":
            return "content_block_start after message_delta"
        if self._open is not None:
            return f"block {event.get('index')} starts while block {self._open['index']} is open"
        if event.get("index") != self._next_index:
            return f"block index {event.get('index')!r}, expected {self._next_index}"
        block = event.get("content_block")
        if not isinstance(block, dict) or block.get("type") not in _DELTA_FOR_BLOCK:
            return f"unknown content_block {block!r}"
        btype = block["type"]
        if btype == "text" and block.get("text") != "":
            return "text block must start with text \"\""
        if btype == "thinking" and (block.get("thinking") != "" or not isinstance(block.get("signature"), str)):
            return "thinking block must start with thinking \"\" and a signature string"
        if btype in ("tool_use", "server_tool_use"):
            if not isinstance(block.get("id"), str) or not _TOOL_ID.match(block["id"]):
                return f"tool_use id {block.get('id')!r} does not match ^[a-zA-Z0-9_-]+$"
            if not isinstance(block.get("name"), str) or not block["name"]:
                return "tool_use block without a name"
            if block.get("input") != {}:
                return "tool_use input must be {} at start (Claude Code drops arguments sent only there)"
        self._open = {"index": self._next_index, "type": btype, "json": [],
                      "signature": block.get("signature") or ""}
        self._next_index += 1
        return None

    def _block_delta(self, event: dict[str, Any]) -> str | None:
        block = self._open
        if block is None or event.get("index") != block["index"]:
            return f"delta for block {event.get('index')!r}, which is not open"
        delta = event.get("delta")
        dtype = delta.get("type") if isinstance(delta, dict) else None
        if dtype not in _DELTA_FOR_BLOCK[block["type"]]:
            return f"{dtype} in a {block['type']} block"
        assert isinstance(delta, dict)
        if dtype == "input_json_delta":
            fragment = delta.get("partial_json")
            if not isinstance(fragment, str):
                return "input_json_delta without partial_json string"
            block["json"].append(fragment)
            # jiter (Python SDK) crashes on a whitespace-only buffer.
            if fragment and fragment.isspace() and not "".join(block["json"]).strip():
                return "whitespace-only partial_json"
        elif dtype == "thinking_delta":
            if block["signature"]:
                return "thinking_delta after the signature"
            if not isinstance(delta.get("thinking"), str):
                return "thinking_delta without thinking string"
        elif dtype == "signature_delta":
            if not isinstance(delta.get("signature"), str) or not delta["signature"]:
                return "empty signature_delta"
            block["signature"] = delta["signature"]
        elif dtype == "text_delta" and not isinstance(delta.get("text"), str):
            return "text_delta without text string"
        return None

    def _block_stop(self, event: dict[str, Any]) -> str | None:
        block = self._open
        if block is None or event.get("index") != block["index"]:
            return f"stop for block {event.get('index')!r}, which is not open"
        self._open = None
        if block["type"] in ("tool_use", "server_tool_use"):
            text = "".join(block["json"])
            if text:
                try:
                    value = json.loads(text)
                except ValueError:
                    return f"tool input JSON does not parse: {text[:200]!r}"
                if not isinstance(value, dict):
                    return f"tool input is not a JSON object: {text[:200]!r}"
        if block["type"] == "thinking" and not block["signature"]:
            return "thinking block closed without a signature"
        return None


def stream_validate(events: Iterable[dict[str, Any]]) -> str | None:
    """The first grammar violation in ``events`` (a complete stream), or ``None``."""
    validator = StreamValidator()
    for event in events:
        if validator.feed(event) is not None:
            return validator.violation
    return validator.finish()


stream_validate_incremental = StreamValidator
