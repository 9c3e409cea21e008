"""Responses API stream events -> Anthropic stream events (Anthropic streaming docs; openai-python response_stream_event.py).

``ResponsesStreamTranslator`` has the shape of ``ChatStreamTranslator``: ``start()`` when the
upstream answers 200, ``feed(event)`` for every parsed SSE ``data`` object (each carries its
``type``; the ``event:`` line repeats it), ``finish()`` / ``fail(error)``. A Responses stream has
no ``[DONE]``: ``response.completed`` / ``response.incomplete`` end the message (``feed``
returns the closing events and ``upstream_finished`` becomes true), ``response.failed`` and
``error`` end it with an ``event: error``.

Each output item becomes one block, in output order: ``reasoning`` a thinking block (its
signature, minted when ``output_item.done`` brings the ``encrypted_content``, lets the next turn
replay the item exactly), ``message`` a text block (``output_text`` and ``refusal`` deltas),
``function_call`` a tool_use block. Only the first unfinished item streams live; events for
later items (a server that interleaves) are kept and emitted when their turn comes, so blocks
never interleave. Function-call arguments may arrive as deltas, only in
``function_call_arguments.done`` / ``output_item.done``, or (vLLM) partly in
``output_item.added``: the block's ``partial_json`` always concatenates to the exact input.
"""

from __future__ import annotations

from typing import Any

from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.events import message_end
from translation.jsonbytes import json_bytes
from translation.notes import RewriteNote
from translation.openai_chat.common import tool_input_parse
from translation.openai_responses.common import (
    error_from_responses,
    reasoning_signature,
    response_error,
    stop_reason_decide,
    tool_id_from_call_id,
    usage_from_responses,
)
from translation.openai_shared import USAGE_MISSING_DETAIL
from translation.prefill import PrefixStrip, prefill_echo_prefix
from translation.schemas import MessagesRequest
from translation.stops import StopScanner
from translation.streambase import StreamTranslatorBase
from translation.tokens import CHARS_PER_TOKEN

Event = dict[str, Any]


class _Item:
    """One output item and, once it has one, its block."""

    __slots__ = ("args", "block_id", "call_id", "closed", "conflict", "done", "emitted", "enc", "final", "input",
                 "item_id", "kind", "lengths", "mode", "name", "opened", "part", "pending", "reasoning_kind",
                 "received", "sent")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "reasoning" | "message" | "function_call" | other item types
        self.item_id: str | None = None
        self.done = False
        self.opened = False
        self.closed = False
        self.pending: list[tuple[str, str]] = []  # ("text"|"refusal"|"thinking", fragment) not emitted yet
        self.emitted: list[str] = []  # block text as the client saw it
        # reasoning
        self.enc: str | None = None
        self.reasoning_kind: str | None = None  # "summary" | "content": the first kind seen wins
        self.part: Any = None
        self.lengths: list[int] = []
        # message
        self.received = {"text": "", "refusal": ""}
        # function_call
        self.call_id: str | None = None
        self.name: str | None = None
        self.args = ""
        self.final: str | None = None
        self.mode: str | None = None  # None until the first non-blank character; "stream" | "buffer"
        self.sent = ""
        self.conflict = False
        self.block_id = ""
        self.input: dict[str, Any] = {}


def _delta(index: int, delta: dict[str, Any]) -> Event:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _texts(parts: Any, kind: str, key: str) -> list[str]:
    return [p[key] for p in parts or () if isinstance(p, dict) and p.get("type") == kind
            and isinstance(p.get(key), str)]


class ResponsesStreamTranslator(StreamTranslatorBase):
    def __init__(self, caps: Capabilities, *, request: MessagesRequest, message_id: str,
                 input_tokens_estimate: int = 0) -> None:
        super().__init__(caps, request=request, message_id=message_id, input_tokens_estimate=input_tokens_estimate)
        self._by_index: dict[Any, _Item] = {}
        self._by_id: dict[str, _Item] = {}
        self._queue: list[_Item] = []
        self._blocks: list[_Item] = []
        self._used_ids: set[str] = set()
        self._tool_count = 0
        self._refused = False
        self._usage_raw: dict[str, Any] | None = None
        self._incomplete: Any = None
        self._finished = False
        self._prefix = PrefixStrip(prefill_echo_prefix(request, caps, "openai_responses"))
        self._scanner = StopScanner(request.stop_sequences)

    # -- the Responses mapping ----------------------------------------------------------------

    def _feed(self, event: dict[str, Any]) -> list[Event]:
        out = self.start()
        kind = event.get("type")
        if kind == "error" or (kind is None and event.get("error")):
            return out + self.fail(error_from_responses(event.get("error") or event))
        if kind == "response.failed":
            response = event.get("response")
            error = response_error(response) if isinstance(response, dict) else None
            return out + self.fail(error or ApiError(502, "backend error: the response failed", source="backend"))
        if kind in ("response.completed", "response.incomplete", "response.cancelled"):
            response = event.get("response")
            response = response if isinstance(response, dict) else {}
            if response.get("status") == "cancelled" or kind == "response.cancelled":
                return out + self.fail(ApiError(502, "backend error: the backend cancelled the response",
                                                source="backend"))
            usage = response.get("usage")
            self._usage_raw = usage if isinstance(usage, dict) else None
            if response.get("status") == "incomplete" or kind == "response.incomplete":
                details = response.get("incomplete_details")
                self._incomplete = (details.get("reason") if isinstance(details, dict) else None) or "unknown"
            self._finished = True
            return out + self.finish()
        self._event(kind, event)
        self._pump(out)
        if self._scanner.matched is not None:
            # The client's stop sequence ended the message: stop now, not when the backend does.
            self._finished = True
            self.notes.append(RewriteNote("stop_sequences.matched", "content",
                                          f"Cut the output at stop sequence {self._scanner.matched!r} and ended "
                                          "the stream; usage is estimated."))
            out += self.finish()
        return out

    def _finish(self) -> list[Event]:
        out = self.start()
        for item in self._queue:
            item.done = True
        self._pump(out)
        stop_reason, stop_sequence = stop_reason_decide(
            refused=self._refused, matched_stop=self._scanner.matched, incomplete_reason=self._incomplete,
            tool_calls=self._tool_count > 0)
        if self._usage_raw is None and self._scanner.matched is None:
            self.notes.append(RewriteNote("usage.missing", "usage", USAGE_MISSING_DETAIL))
        out += message_end(stop_reason=stop_reason, stop_sequence=stop_sequence, usage=self.usage)
        return out

    def _fail_close(self, out: list[Event]) -> None:
        if self._queue and self._queue[0].opened:
            self._close(self._queue[0], out)

    @property
    def upstream_finished(self) -> bool:
        """Whether the backend ended the response (completed or incomplete) — a stream that
        stops without it was cut off."""
        return self._finished

    @property
    def usage(self) -> dict[str, int]:
        usage = usage_from_responses(self._usage_raw, input_tokens_estimate=self.input_tokens_estimate)
        if self._usage_raw is None:
            chars = sum(len(t) for block in self._blocks for t in block.emitted) + sum(
                len(block.sent) for block in self._blocks)
            usage["output_tokens"] = -(-chars // CHARS_PER_TOKEN)
        return usage

    # -- upstream events ------------------------------------------------------------------

    def _item(self, event: dict[str, Any], kind: str | None = None) -> _Item:
        """The item an event is about, created on first sight (in output order)."""
        index = event.get("output_index")
        item_id = event.get("item_id")
        raw = event.get("item")
        if isinstance(raw, dict):
            item_id = raw.get("id", item_id)
            kind = raw.get("type", kind)
        found = self._by_index.get(index) if isinstance(index, int) else None
        if found is None and isinstance(item_id, str):
            found = self._by_id.get(item_id)
        if found is None:
            found = _Item(kind or "message")
            self._queue.append(found)
            if isinstance(index, int):
                self._by_index[index] = found
        if isinstance(item_id, str) and item_id:
            found.item_id = found.item_id or item_id
            self._by_id[item_id] = found
        return found

    def _event(self, kind: Any, event: dict[str, Any]) -> None:
        if kind == "response.output_item.added" or kind == "response.output_item.done":
            raw = event.get("item")
            if not isinstance(raw, dict):
                return
            item = self._item(event)
            self._item_update(item, raw, done=kind == "response.output_item.done")
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                item = self._item(event, "message")
                part = "text" if kind == "response.output_text.delta" else "refusal"
                item.received[part] += delta
                item.pending.append((part, delta))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                item = self._item(event, "reasoning")
                which = "summary" if kind == "response.reasoning_summary_text.delta" else "content"
                index = event.get("summary_index" if which == "summary" else "content_index")
                self._reasoning_fragment(item, which, index, delta)
        elif kind == "response.function_call_arguments.delta":
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                item = self._item(event, "function_call")
                if item.final is None:
                    item.args += delta
        elif kind == "response.function_call_arguments.done":
            item = self._item(event, "function_call")
            if isinstance(event.get("arguments"), str):
                item.final = event["arguments"]
            if not item.name and isinstance(event.get("name"), str) and event["name"]:
                item.name = event["name"]
        # Everything else (created, in_progress, content_part.*, *.done texts, annotations,
        # reasoning_summary_part.*) adds nothing the items above do not carry.

    def _reasoning_fragment(self, item: _Item, which: str, index: Any, delta: str) -> None:
        if item.reasoning_kind is None:
            item.reasoning_kind = which
        elif item.reasoning_kind != which:
            return  # a server sending both: the kind seen first is the thinking text
        if not item.lengths or index != item.part:
            # A new summary part: parts are joined with a blank line (as translate_response does).
            item.part = index
            item.lengths.append(len(delta))
            if len(item.lengths) > 1:
                delta = "\n\n" + delta
        else:
            item.lengths[-1] += len(delta)
        item.pending.append(("thinking", delta))

    def _item_update(self, item: _Item, raw: dict[str, Any], *, done: bool) -> None:
        if item.kind == "reasoning":
            if isinstance(raw.get("encrypted_content"), str):
                item.enc = raw["encrypted_content"]
            if done and not item.lengths:
                # No deltas: the done item carries the text (summary first, else raw content).
                parts = _texts(raw.get("summary"), "summary_text", "text")
                which = "summary"
                if not any(parts):
                    parts, which = _texts(raw.get("content"), "reasoning_text", "text"), "content"
                for k, part in enumerate(parts):
                    if part:
                        self._reasoning_fragment(item, which, k, part)
        elif item.kind == "message":
            if done:
                content = raw.get("content")
                for part, text in (("text", "".join(_texts(content, "output_text", "text"))),
                                   ("refusal", "".join(_texts(content, "refusal", "refusal")))):
                    seen = item.received[part]
                    if len(text) > len(seen) and text.startswith(seen):
                        item.received[part] = text
                        item.pending.append((part, text[len(seen):]))
        elif item.kind == "function_call":
            if not item.call_id and isinstance(raw.get("call_id"), str) and raw["call_id"]:
                item.call_id = raw["call_id"]
            if not item.name and isinstance(raw.get("name"), str) and raw["name"]:
                item.name = raw["name"]
            arguments = raw.get("arguments")
            if isinstance(arguments, dict):
                arguments = json_bytes(arguments).decode()
            if isinstance(arguments, str):
                if done:
                    item.final = arguments
                elif not item.args:
                    item.args = arguments  # vLLM seeds the first fragment here
        if done:
            item.done = True

    # -- blocks ---------------------------------------------------------------------------

    def _pump(self, out: list[Event]) -> None:
        """Emit what the first unfinished item has; close finished items in order."""
        while self._queue:
            item = self._queue[0]
            if self._scanner.matched is not None:
                # Everything after the stop sequence is discarded.
                if item.opened and not item.closed:
                    self._close(item, out)
                self._queue.clear()
                return
            self._advance(item, out)
            if self._scanner.matched is not None:
                continue
            if not item.done:
                return
            self._close(item, out)
            self._queue.pop(0)

    def _open(self, item: _Item, out: list[Event], block: dict[str, Any]) -> None:
        item.opened = True
        self._blocks.append(item)
        out.append({"type": "content_block_start", "index": len(self._blocks) - 1, "content_block": block})

    def _index(self, item: _Item) -> int:
        return self._blocks.index(item)

    def _advance(self, item: _Item, out: list[Event]) -> None:
        if item.kind == "function_call":
            self._tool_advance(item, out)
            return
        pending, item.pending = item.pending, []
        for part, fragment in pending:
            if part == "thinking":
                self._emit(item, "thinking", fragment, out)
            elif part == "refusal":
                self._refused = True
                self._emit(item, "text", fragment, out)
            else:
                self._emit(item, "text", self._scanner.feed(self._prefix.feed(fragment)), out)
                if self._scanner.matched is not None:
                    return
        if item.done and item.kind == "message":
            self._emit(item, "text", self._scanner.feed(self._prefix.flush()) + self._scanner.flush(), out)
            if (note := self._prefix.note()) is not None:
                self.notes.append(note)

    def _emit(self, item: _Item, kind: str, text: str, out: list[Event]) -> None:
        if not text:
            return
        if not item.opened:
            self._open(item, out, {"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking"
                       else {"type": "text", "text": ""})
        item.emitted.append(text)
        key = "thinking" if kind == "thinking" else "text"
        out.append(_delta(self._index(item), {"type": f"{key}_delta", key: text}))

    def _signature(self, item: _Item) -> str:
        return reasoning_signature(item_id=item.item_id, encrypted=item.enc,
                                   raw=item.reasoning_kind == "content", summary_lengths=item.lengths)

    def _close(self, item: _Item, out: list[Event]) -> None:
        if item.kind == "reasoning":
            if not item.opened:  # a reasoning item without text still carries id/encrypted_content
                self._open(item, out, {"type": "thinking", "thinking": "", "signature": ""})
            out.append(_delta(self._index(item), {"type": "signature_delta", "signature": self._signature(item)}))
        elif item.kind == "function_call":
            if not item.opened:
                self._tool_advance(item, out)
                if not item.opened:
                    self.notes.append(RewriteNote("tool_call.drop_nameless", "output",
                                                  "Dropped a function call that never got a name."))
                    item.closed = True
                    return
            self._tool_finalize(item, out)
        elif not item.opened:
            if item.kind not in ("message", "reasoning", "function_call"):
                self.notes.append(RewriteNote("output.drop_item", "output",
                                              f"Dropped a {item.kind} output item (no Anthropic equivalent)."))
            item.closed = True
            return
        item.closed = True
        out.append({"type": "content_block_stop", "index": self._index(item)})

    # -- function calls -------------------------------------------------------------------

    def _tool_advance(self, item: _Item, out: list[Event]) -> None:
        if not item.opened:
            if not item.name:
                return
            item.block_id = tool_id_from_call_id(item.call_id, message_id=self.message_id,
                                                 ordinal=self._tool_count, used=self._used_ids)
            self._tool_count += 1
            self._open(item, out, {"type": "tool_use", "id": item.block_id, "name": item.name, "input": {}})
        available = item.final if item.final is not None else item.args
        if not available.startswith(item.sent):
            if not item.conflict:
                item.conflict = True
                self.notes.append(RewriteNote("tool_call.arguments_conflict", f"content[{self._index(item)}].input",
                                              "The final arguments disagree with the streamed ones; kept what "
                                              "was streamed."))
            return
        pending = available[len(item.sent):]
        if not pending:
            return
        if item.mode is None:
            if not pending.strip():
                return  # a whitespace-only partial_json crashes the Python SDK: wait for more
            item.mode = "stream" if pending.lstrip()[0] == "{" else "buffer"
        if item.mode == "stream":
            item.sent += pending
            out.append(_delta(self._index(item), {"type": "input_json_delta", "partial_json": pending}))

    def _tool_finalize(self, item: _Item, out: list[Event]) -> None:
        index = self._index(item)
        if item.mode == "stream":
            self._tool_advance(item, out)
            item.input, problem, suffix = tool_input_parse(item.sent)
            if suffix:
                out.append(_delta(index, {"type": "input_json_delta", "partial_json": suffix}))
        else:
            arguments = item.final if item.final is not None else item.args
            item.input, problem, _ = tool_input_parse(arguments)
            out.append(_delta(index, {"type": "input_json_delta", "partial_json": json_bytes(item.input).decode()}))
        if problem:
            self.notes.append(RewriteNote("tool_call.arguments", f"content[{index}].input", problem))
