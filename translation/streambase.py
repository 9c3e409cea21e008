"""The block lifecycle every stream translator shares (Anthropic docs, streaming messages).

A translator turns one backend's stream into Anthropic events: ``start()`` when the upstream
answers 200, ``feed(chunk)`` per parsed upstream event, ``finish()`` at its end, or
``fail(error)``. The state machine (new -> started -> done, nothing after done), the ``error``
event, and "what the client has seen" (``message``, ``stop_reason``: the fold of every event
returned) live here once; each translator implements only its protocol's mapping.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.events import Event, message_start
from translation.fold import MessageFold
from translation.notes import RewriteNote
from translation.schemas import MessagesRequest


class StreamTranslatorBase(abc.ABC):
    def __init__(self, caps: Capabilities, *, request: MessagesRequest, message_id: str,
                 input_tokens_estimate: int = 0) -> None:
        self.caps = caps
        self.request = request
        self.message_id = message_id
        self.input_tokens_estimate = input_tokens_estimate
        self.notes: list[RewriteNote] = []
        self.error: ApiError | None = None
        self._state = "new"  # new -> started -> done
        # Every event handed out, folded: the message exactly as the client builds it. Tool
        # inputs that do not parse stay {} (the translators repair them before the stop).
        self._fold = MessageFold(keep_unparsed=False)
        self._depth = 0  # public calls in progress (they call one another; fold once, outermost)

    # -- public API -----------------------------------------------------------------------

    def start(self) -> list[Event]:
        if self._state != "new":
            return []
        return self._run(self._start)

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """Events for one upstream chunk (the parsed JSON of one SSE ``data``)."""
        if self._state == "done":
            return []
        # ``_run`` inlined: this is the per-chunk path.
        self._depth += 1
        try:
            out = self._feed(chunk)
        finally:
            self._depth -= 1
        if not self._depth:
            feed = self._fold.feed
            for event in out:
                feed(event)
        return out

    def finish(self) -> list[Event]:
        """Close everything and end the message (the upstream ended)."""
        if self._state == "done":
            return []
        return self._run(self._finish_all)

    def fail(self, error: ApiError) -> list[Event]:
        """Close the open block and emit an ``error`` event; nothing is emitted after it."""
        if self._state == "done":
            return []
        return self._run(lambda: self._fail_all(error))

    @property
    @abc.abstractmethod
    def upstream_finished(self) -> bool:
        """Whether the backend said it was done: a stream that ends without it was cut off."""

    @property
    def stop_reason(self) -> str | None:
        return self._fold.field("stop_reason")

    @property
    def usage(self) -> dict[str, Any]:
        """The usage known so far (translators that count better override it)."""
        usage: dict[str, Any] = self._fold.field("usage", {})
        return usage

    @property
    def message(self) -> dict[str, Any]:
        """The Anthropic Message as streamed so far (what the client has seen), with live usage."""
        if not self._fold.started:
            message: dict[str, Any] = message_start(message_id=self.message_id, model=self.request.model,
                                                    input_tokens=self.input_tokens_estimate)["message"]
        else:
            message = self._fold.message
        message["usage"] = self.usage
        return message

    # -- what each protocol implements --------------------------------------------------------

    def _start(self) -> list[Event]:
        """``message_start`` with the best input-token count known yet."""
        self._state = "started"
        return [message_start(message_id=self.message_id, model=self.request.model,
                              input_tokens=self.input_tokens_estimate)]

    @abc.abstractmethod
    def _feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events for one upstream chunk (may call ``start``, ``finish`` and ``fail``)."""

    @abc.abstractmethod
    def _finish(self) -> list[Event]:
        """Close what is open and end the message (``message_delta``, ``message_stop``)."""

    @abc.abstractmethod
    def _fail_close(self, out: list[Event]) -> None:
        """Release held text and close the open block before the ``error`` event."""

    # -- plumbing ---------------------------------------------------------------------------

    def _finish_all(self) -> list[Event]:
        out = self._finish()
        self._state = "done"
        return out

    def _fail_all(self, error: ApiError) -> list[Event]:
        out = self.start()
        self._fail_close(out)
        out.append({"type": "error", "error": {"type": error.type, "message": error.message}})
        self.error = error
        self._state = "done"
        return out

    def _run(self, step: Callable[[], list[Event]]) -> list[Event]:
        """Run a public step; the outermost one folds the events it hands out."""
        self._depth += 1
        try:
            out = step()
        finally:
            self._depth -= 1
        if not self._depth:
            for event in out:
                self._fold.feed(event)
        return out
