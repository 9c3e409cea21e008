"""Relay a native Anthropic stream to the client, event by event (Anthropic docs, streaming messages).

The backend already speaks the client's grammar, so ``AnthropicStreamRelay`` passes its events
through and changes only what the gateway owns: the message id and model name in
``message_start``, and, with ``prefill=rewrite``, a prefix the model repeated at the start of
its first text block (held back until it is known not to be the prefix, then dropped; a block
that was nothing but the prefix disappears and later blocks are renumbered so indices stay
0..n-1). It folds the events into ``message`` (what the client saw), like the SDK's
``accumulate_event``.

The upstream's own ``message_start`` is relayed, so ``start()`` emits nothing: its usage
(input and cache tokens) is the real one.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.notes import RewriteNote
from translation.prefill import PrefixStrip, prefill_echo_prefix
from translation.schemas import MessagesRequest
from translation.streambase import StreamTranslatorBase

Event = dict[str, Any]

# Anthropic error type -> the HTTP status it "would normally correspond to" (Anthropic docs, errors).
_STATUS_FOR_TYPE = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}


class _Held:
    """The first text block under prefill=rewrite while it may still repeat the prefix."""

    __slots__ = ("index", "start", "stripped")

    def __init__(self, index: int, start: Event) -> None:
        self.index = index  # upstream index
        self.start: Event | None = start  # its content_block_start, until it is emitted
        self.stripped = False  # the whole prefix was found and removed


class AnthropicStreamRelay(StreamTranslatorBase):
    def __init__(self, caps: Capabilities, *, request: MessagesRequest, message_id: str) -> None:
        super().__init__(caps, request=request, message_id=message_id)
        self._blocks: set[int] = set()  # upstream indices of the blocks started
        self._open: int | None = None  # upstream index of the open block
        self._shift = 0  # blocks dropped so far (client index = upstream index - shift)
        self._finished = False
        self._prefix = PrefixStrip(prefill_echo_prefix(request, caps, "anthropic"))
        self._held: _Held | None = None

    # -- the relay ------------------------------------------------------------------------

    def start(self) -> list[Event]:
        """Nothing: the upstream's own ``message_start`` is relayed (its usage is the real one)."""
        return []

    def _finish(self) -> list[Event]:
        """End the message when the backend stopped without ``message_stop``."""
        out: list[Event] = []
        if self._state == "new":
            self._message_start(None, out)
        self._close(out)
        if self._fold.field("stop_reason") is None:
            out.append({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": self._fold.field("usage", {}).get("output_tokens", 0)}})
        out.append({"type": "message_stop"})
        return out

    def _fail_close(self, out: list[Event]) -> None:
        self._close(out)

    @property
    def upstream_finished(self) -> bool:
        return self._finished

    @property
    def message(self) -> dict[str, Any]:
        """The Anthropic Message as streamed so far (what the client has seen)."""
        if not self._fold.started:
            return {"id": self.message_id, "type": "message", "role": "assistant", "model": self.request.model,
                    "content": [], "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}
        message = self._fold.message
        # The relayed events carry the backend's usage: no estimate to put in.
        index = self._open - self._shift if self._open is not None else -1
        raw = self._fold.open_input(index)
        if raw is not None and "input" in message["content"][index]:
            # The open tool block: its input as far as it parses (the SDK's partial JSON view).
            message["content"][index]["input"] = _input_parse(raw)
        return message

    # -- events -----------------------------------------------------------------------------

    def _feed(self, chunk: dict[str, Any]) -> list[Event]:
        kind = chunk.get("type")
        out: list[Event] = []
        if kind == "message_start":
            self._message_start(chunk, out)
            return out
        if kind == "error":
            error = chunk.get("error")
            error = error if isinstance(error, dict) else {}
            etype = str(error.get("type") or "api_error")
            status = _STATUS_FOR_TYPE.get(etype, 500)
            return self.fail(ApiError(status, str(error.get("message") or "the backend reported an error"),
                                      type=etype, source="transient" if status in (429, 529) else "backend"))
        if kind == "ping":
            return [chunk]
        if self._state == "new":
            self._message_start(None, out)
        if kind == "content_block_start":
            self._block_start(chunk, out)
        elif kind == "content_block_delta":
            self._block_delta(chunk, out)
        elif kind == "content_block_stop":
            self._block_stop(chunk, out)
        elif kind == "message_delta":
            self._message_delta(chunk, out)
        elif kind == "message_stop":
            self._finished = True
            self._state = "done"
            out.append(chunk)
        else:
            out.append(chunk)  # new event types: clients ignore what they do not know (Anthropic docs, streaming messages)
        return out

    def _message_start(self, event: Event | None, out: list[Event]) -> None:
        if self._state != "new":
            self.notes.append(RewriteNote("stream.second_message_start", "message_start",
                                          "Dropped a second message_start from the backend."))
            return
        if event is None or not isinstance(event.get("message"), dict):
            self.notes.append(RewriteNote("stream.message_start_missing", "message_start",
                                          "The backend's stream did not begin with message_start; the gateway "
                                          "sent one."))
            message: dict[str, Any] = {"type": "message", "role": "assistant", "stop_reason": None,
                                       "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        else:
            message = copy.deepcopy(event["message"])
        message.update(id=self.message_id, model=self.request.model, content=[])
        if not isinstance(message.get("usage"), dict):
            message["usage"] = {"input_tokens": 0, "output_tokens": 0}
        self._state = "started"
        out.append({**(event or {}), "type": "message_start", "message": message})

    def _block_start(self, event: Event, out: list[Event]) -> None:
        index, block = event.get("index"), event.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            out.append(event)
            return
        self._close(out)  # Anthropic never interleaves blocks; a missing stop is made up here
        self._blocks.add(index)
        self._open = index
        if block.get("type") == "text" and self._prefix.active:
            if not block.get("text"):
                self._held = _Held(index, event)
                return
            self._prefix.flush()  # only the first text block can repeat the prefill
        out.append(self._renumber(event))

    def _block_delta(self, event: Event, out: list[Event]) -> None:
        index, delta = event.get("index"), event.get("delta")
        if index not in self._blocks or not isinstance(delta, dict):
            out.append(event)
            return
        held = self._held
        if held is not None and held.index == index:
            text = delta.get("text") if delta.get("type") == "text_delta" else None
            if self._prefix.active and isinstance(text, str):
                text = self._prefix.feed(text)
                if (note := self._prefix.note()) is not None:
                    held.stripped = True
                    self.notes.append(note)
                if not text:
                    return
                event = {**event, "delta": {**delta, "text": text}}
            elif self._prefix.active:
                self._prefix_release(out, held)
            self._held_emit(out, held)
        out.append(self._renumber(event))

    def _block_stop(self, event: Event, out: list[Event]) -> None:
        index = event.get("index")
        if not isinstance(index, int) or index != self._open:
            out.append(self._renumber(event) if isinstance(index, int) else event)
            return
        self._close(out, event)

    def _message_delta(self, event: Event, out: list[Event]) -> None:
        self._close(out)
        delta = event.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason"):
            self._finished = True
        out.append(event)

    # -- blocks -----------------------------------------------------------------------------

    def _renumber(self, event: Event) -> Event:
        return {**event, "index": event["index"] - self._shift} if self._shift else event

    def _close(self, out: list[Event], stop: Event | None = None) -> None:
        index = self._open
        if index is None:
            return
        self._open = None
        held = self._held
        if held is not None and held.index == index:
            self._held = None
            if self._prefix.active:
                self._prefix_release(out, held)
            if held.start is not None and not held.stripped:
                self._held_emit(out, held)  # an empty text block, relayed as it came
            elif held.start is not None:
                # The block was the repeated prefix and nothing else: it disappears.
                self._blocks.discard(index)
                self._shift += 1
                return
        out.append(self._renumber(stop or {"type": "content_block_stop", "index": index}))

    # -- prefill=rewrite: strip a repeated prefix (the shared PrefixStrip) ---------------------

    def _held_emit(self, out: list[Event], held: _Held) -> None:
        """Send the held block's content_block_start (once)."""
        if held.start is not None:
            out.append(self._renumber(held.start))
            held.start = None

    def _prefix_release(self, out: list[Event], held: _Held) -> None:
        """The held text turned out not to be the whole prefix: send it as it came."""
        text = self._prefix.flush()
        if text:
            self._held_emit(out, held)
            out.append(self._renumber({"type": "content_block_delta", "index": held.index,
                                       "delta": {"type": "text_delta", "text": text}}))


def _input_parse(raw: str) -> Any:
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
