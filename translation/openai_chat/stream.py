"""Chat Completions stream chunks -> Anthropic stream events (Anthropic streaming docs; openai-python chat_completion_chunk.py).

``ChatStreamTranslator`` is an incremental object in the style of httpx's decoders: the
gateway calls ``start()`` when the upstream answers 200, ``feed(chunk)`` for every parsed SSE
``data`` object, and ``finish()`` on ``[DONE]`` or EOF (or ``fail(error)``).

The Anthropic grammar is strict (anthropic-sdk-python lib/streaming/_messages.py): blocks are opened lazily on their first
non-empty delta, numbered 0..n-1, and the previous block is closed before the next one opens.
Tool calls are keyed by ``(choice index, tool_calls[].index)``, never by "a name appeared" or
by the presence of a ``tool_calls`` key (``"tool_calls": []`` next to content is plain text).
Only one tool call streams live; fragments of other calls (interleaved parallel indices) are
buffered and their blocks emitted, whole, when the live block has closed at the end.
"""

from __future__ import annotations

from typing import Any

from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.events import message_end
from translation.jsonbytes import json_bytes
from translation.notes import RewriteNote
from translation.openai_chat.common import (
    body_error,
    chat_signature,
    content_text,
    context_full,
    fatal_finish_error,
    llamacpp_verbose,
    reasoning_read,
    stop_reason_decide,
    tool_id_make,
    tool_input_parse,
    usage_from_openai,
)
from translation.openai_shared import USAGE_MISSING_DETAIL
from translation.prefill import PrefixStrip, prefill_echo_prefix
from translation.rewrites import PARALLEL_DROP_DETAIL, parallel_tools_disabled
from translation.schemas import MessagesRequest
from translation.stops import StopScanner, stop_matched_detail
from translation.streambase import StreamTranslatorBase

Event = dict[str, Any]


class _Block:
    """A thinking or text block (its text is in the fold of the events sent)."""

    __slots__ = ("closed", "kind")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.closed = False


class _Tool:
    """One tool call, keyed by (choice, index); its block exists once it is opened."""

    __slots__ = ("block_id", "closed", "fed", "held", "id", "input", "key", "mode", "name", "opened", "raw")

    def __init__(self, key: tuple[int, int]) -> None:
        self.key = key
        self.id: str | None = None
        self.name: str | None = None
        self.raw: list[str] = []  # argument fragments as received
        self.fed = 0  # how many of ``raw`` went through the emit guard
        self.held: list[str] = []  # whitespace-only fragments not emitted yet
        # None until the first non-blank character; "stream" when it is "{" (fragments pass
        # through as received); "buffer" otherwise (the input is repaired and sent once).
        self.mode: str | None = None
        self.opened = False
        self.closed = False
        self.block_id = ""
        self.input: dict[str, Any] = {}


def _delta(index: int, delta: dict[str, Any]) -> Event:
    return {"type": "content_block_delta", "index": index, "delta": delta}


class ChatStreamTranslator(StreamTranslatorBase):
    def __init__(self, caps: Capabilities, *, request: MessagesRequest, message_id: str,
                 input_tokens_estimate: int = 0) -> None:
        super().__init__(caps, request=request, message_id=message_id, input_tokens_estimate=input_tokens_estimate)
        self._signature = chat_signature()
        self._content: list[_Block | _Tool] = []
        self._open: tuple[str, Any] | None = None  # ("thinking"|"text", choice) or ("tool", key)
        self._tools: dict[tuple[int, int], _Tool] = {}
        self._pending: list[_Tool] = []  # tool calls seen but not opened yet
        self._used_ids: set[str] = set()
        self._tool_count = 0
        self._finishes: dict[int, tuple[Any, Any]] = {}
        self._usage_raw: dict[str, Any] | None = None
        self._refused = False
        # Several choices: the first to send text or reasoning streams live; the others' text and
        # reasoning are held and sent whole at the end (one block each), so choices never
        # interleave into one another's text. Tool calls are keyed by choice anyway.
        self._live_choice: int | None = None
        self._held: dict[tuple[int, str], list[str]] = {}
        # An echoed prefill (rewrite, prefill_echo): the first text is held until it is known
        # whether it repeats the prefix.
        self._prefix = PrefixStrip(prefill_echo_prefix(request, caps))
        self._prefix_choice: int | None = None
        # stop_sequences=gateway: the live text runs through a scanner; a match ends the message.
        self._scanner = StopScanner(request.stop_sequences) if caps.stop_sequences == "gateway" else None
        # llama.cpp's __verbose (stop_sequences=llamacpp_verbose): the stop word and a full context.
        self._verbose_stop: str | None = None
        self._truncated = False
        # disable_parallel_tool_use: tool calls after the first are dropped (servers ignore the flag).
        self._one_tool = parallel_tools_disabled(request)
        self._dropped_tools: set[tuple[int, int]] = set()

    # -- the Chat Completions mapping ----------------------------------------------------------

    def _feed(self, chunk: dict[str, Any]) -> list[Event]:
        out = self.start()
        error = body_error(chunk)
        if error is not None:
            return out + self.fail(error)
        usage = chunk.get("usage")
        if isinstance(usage, dict):  # cumulative: the last one wins
            self._usage_raw = usage
        if "__verbose" in chunk:
            word, truncated = llamacpp_verbose(chunk)
            self._verbose_stop = word or self._verbose_stop
            self._truncated = self._truncated or truncated
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                error = self._choice(choice, out)
                if error is not None:
                    return out + self.fail(error)
                if self._scanner is not None and self._scanner.matched is not None:
                    # The rest of the backend's output is not part of the reply: end the message
                    # (the relay stops reading and closes the upstream stream).
                    return out + self.finish()
        return out

    def _finish(self) -> list[Event]:
        """Close everything and end the message (upstream sent ``[DONE]`` or closed)."""
        out = self.start()
        self._prefix_release(out)
        self._scan_release(out)
        self._close(out)
        matched = self._scanner.matched if self._scanner is not None else None
        if matched is not None:  # what came after the stop sequence is not part of the reply
            self._held.clear()
            self._pending.clear()
        for (ci, kind), parts in sorted(self._held.items(), key=lambda item: (item[0][0], item[0][1] == "text")):
            self._live_choice = ci
            self._block_delta(kind, ci, "".join(parts), out)
            self._close(out)
        self._held.clear()
        for tool in sorted(self._pending, key=lambda t: t.key):
            if tool.name:
                self._tool_open(tool, out)
                self._close(out)
            else:
                self.notes.append(RewriteNote("tool_call.drop_nameless", f"tool_calls[{tool.key[1]}]",
                                              "Dropped a streamed tool call that never got a function name."))
        self._pending.clear()
        if matched is not None:
            self.notes.append(RewriteNote("stop_sequences.matched", "content", stop_matched_detail(matched)))
        stop_reason, stop_sequence = stop_reason_decide(
            finishes=[(reason, stop or self._verbose_stop) for reason, stop in
                      (self._finishes[k] for k in sorted(self._finishes))],
            tool_calls=self._tool_count > 0, refused=self._refused, stop_sequences=self.request.stop_sequences,
            context_full=self._truncated or context_full(self._usage_raw, self.caps.context_window),
            gateway_stop=matched)
        if self._usage_raw is None:
            self.notes.append(RewriteNote("usage.missing", "usage", USAGE_MISSING_DETAIL))
        out += message_end(stop_reason=stop_reason, stop_sequence=stop_sequence, usage=self.usage)
        return out

    def _fail_close(self, out: list[Event]) -> None:
        self._prefix_release(out)
        self._scan_release(out)
        self._close(out)

    @property
    def upstream_finished(self) -> bool:
        """Whether the backend said it was done (a ``finish_reason``); a stream that ends without
        one was cut off, whatever its transport said."""
        return bool(self._finishes) or (self._scanner is not None and self._scanner.matched is not None)

    @property
    def usage(self) -> dict[str, int]:
        return usage_from_openai(self._usage_raw, input_tokens_estimate=self.input_tokens_estimate)

    # -- one choice of one chunk ----------------------------------------------------------

    def _choice(self, choice: dict[str, Any], out: list[Event]) -> ApiError | None:
        ci = choice.get("index")
        ci = ci if isinstance(ci, int) else 0
        delta = choice.get("delta")
        if isinstance(delta, dict) and delta:
            reasoning = reasoning_read(delta, self.caps.reasoning_fields_in)
            if reasoning:
                self._reasoning(ci, reasoning, out)
            text = content_text(delta.get("content"))  # a string, or (some backends) text parts
            if text:
                self._text(ci, text, out)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self._refused = True
                self._text(ci, refusal, out)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):  # [] is no tool call at all
                for position, call in enumerate(calls):
                    if isinstance(call, dict):
                        self._tool_fragment(ci, position, call, out)
        reason = choice.get("finish_reason")
        if reason:
            fatal = fatal_finish_error(reason)
            if fatal is not None:
                return fatal
            self._finishes[ci] = (reason, choice.get("stop_reason", choice.get("matched_stop")))
        return None

    # -- blocks ---------------------------------------------------------------------------

    def _close(self, out: list[Event]) -> None:
        if self._open is None:
            return
        index = len(self._content) - 1
        item = self._content[index]
        if isinstance(item, _Tool):
            self._tool_finalize(item, index, out)
        elif item.kind == "thinking":
            # Signature "just before content_block_stop" (anthropic-sdk-python signature_delta.py).
            out.append(_delta(index, {"type": "signature_delta", "signature": self._signature}))
        item.closed = True
        out.append({"type": "content_block_stop", "index": index})
        self._open = None

    def _block_delta(self, kind: str, ci: int, text: str, out: list[Event]) -> None:
        if self._live_choice is None:
            self._live_choice = ci
        if ci != self._live_choice:
            self._held.setdefault((ci, kind), []).append(text)
            return
        if self._open != (kind, ci):
            self._close(out)
            block = _Block(kind)
            self._content.append(block)
            self._open = (kind, ci)
            start = {"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking" else {
                "type": "text", "text": ""}
            out.append({"type": "content_block_start", "index": len(self._content) - 1, "content_block": start})
        key = "thinking" if kind == "thinking" else "text"
        out.append(_delta(len(self._content) - 1, {"type": f"{key}_delta", key: text}))

    def _reasoning(self, ci: int, text: str, out: list[Event]) -> None:
        self._prefix_release(out)
        self._scan_release(out)
        self._block_delta("thinking", ci, text, out)

    def _text(self, ci: int, text: str, out: list[Event]) -> None:
        if self._prefix.active:
            if self._prefix_choice is None:
                self._prefix_choice = ci
            if ci == self._prefix_choice:
                text = self._prefix.feed(text)
                if (note := self._prefix.note()) is not None:
                    self.notes.append(note)
                if not text:
                    return
        self._text_emit(ci, text, out)

    def _text_emit(self, ci: int, text: str, out: list[Event]) -> None:
        """Text past the prefix check: through the stop scanner (stop_sequences=gateway) to a block."""
        if self._scanner is not None and ci == (self._live_choice if self._live_choice is not None else ci):
            if self._scanner.matched is not None:
                return
            text = self._scanner.feed(text)
            if not text:
                return
        self._block_delta("text", ci, text, out)

    def _prefix_release(self, out: list[Event]) -> None:
        """Another block (or the end) comes: held text was not the whole prefix; it is text."""
        if self._prefix.active and self._prefix.held:
            self._text_emit(self._prefix_choice or 0, self._prefix.flush(), out)

    def _scan_release(self, out: list[Event]) -> None:
        """Another block (or the end) comes: text held as a possible stop-sequence start is text."""
        if self._scanner is not None and self._scanner.held and self._live_choice is not None:
            self._block_delta("text", self._live_choice, self._scanner.flush(), out)

    # -- tool calls -----------------------------------------------------------------------

    def _tool_fragment(self, ci: int, position: int, call: dict[str, Any], out: list[Event]) -> None:
        index = call.get("index")
        call_id = call.get("id")
        if not isinstance(index, int) or isinstance(index, bool):
            # No index (non-conforming backend): the position, or a new call if the id changed.
            index = position
            known = self._tools.get((ci, index))
            if known is not None and isinstance(call_id, str) and call_id and known.id and known.id != call_id:
                index = 1 + max(k[1] for k in self._tools if k[0] == ci)
        key = (ci, index)
        tool = self._tools.get(key)
        if tool is None:
            if self._one_tool and self._tools:
                if key not in self._dropped_tools:
                    self._dropped_tools.add(key)
                    self.notes.append(RewriteNote("tool_call.drop_parallel", f"tool_calls[{index}]",
                                                  PARALLEL_DROP_DETAIL))
                return
            tool = self._tools[key] = _Tool(key)
            self._pending.append(tool)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        # id and name come once (first fragment); repeats are ignored, never concatenated.
        if tool.id is None and isinstance(call_id, str) and call_id:
            tool.id = call_id
        name = function.get("name")
        if tool.name is None and isinstance(name, str) and name:
            tool.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # whole object instead of a string (some backends)
            arguments = json_bytes(arguments).decode()
        if isinstance(arguments, str) and arguments:
            if tool.closed:
                self.notes.append(RewriteNote("tool_call.late_arguments", f"tool_calls[{index}]",
                                              "Dropped argument text that arrived after the tool block was closed."))
                return
            tool.raw.append(arguments)
        if tool.opened:
            if not tool.closed:
                self._tool_emit(tool, len(self._content) - 1, out)
        elif (tool.name and (tool.id or tool.raw) and (self._open is None or self._open[0] != "tool")
              and not any(other.key < tool.key for other in self._pending)):
            # Calls open in key order: a later call never overtakes an earlier one still waiting.
            self._prefix_release(out)
            self._scan_release(out)
            self._tool_open(tool, out)

    def _tool_open(self, tool: _Tool, out: list[Event]) -> None:
        self._close(out)
        self._pending.remove(tool)
        tool.opened = True
        tool.block_id = tool_id_make(tool.id, message_id=self.message_id, ordinal=self._tool_count,
                                     used=self._used_ids)
        self._tool_count += 1
        self._content.append(tool)
        self._open = ("tool", tool.key)
        index = len(self._content) - 1
        out.append({"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": tool.block_id, "name": tool.name, "input": {}}})
        self._tool_emit(tool, index, out)

    def _tool_emit(self, tool: _Tool, index: int, out: list[Event]) -> None:
        """Pass new argument fragments through as received, except whitespace-only ones.

        A whitespace-only ``partial_json`` buffer crashes the Python SDK's partial JSON parser
        (anthropic-sdk-python lib/streaming/_messages.py): blank fragments are held and sent with the next non-blank one.
        """
        for fragment in tool.raw[tool.fed:]:
            if tool.mode == "buffer":
                continue
            if fragment.isspace():
                tool.held.append(fragment)
                continue
            if tool.mode is None:
                tool.mode = "stream" if fragment.lstrip()[0] == "{" else "buffer"
                if tool.mode == "buffer":
                    continue
            if tool.held:
                fragment = "".join(tool.held) + fragment
                tool.held = []
            out.append(_delta(index, {"type": "input_json_delta", "partial_json": fragment}))
        tool.fed = len(tool.raw)

    def _tool_finalize(self, tool: _Tool, index: int, out: list[Event]) -> None:
        """Make the concatenated ``partial_json`` parse to the tool input before the stop."""
        tool.input, problem, suffix = tool_input_parse("".join(tool.raw))
        if tool.mode is None or tool.mode == "buffer":
            # Nothing sent yet: empty arguments become "{}", anything else its repaired form.
            out.append(_delta(index, {"type": "input_json_delta",
                                      "partial_json": json_bytes(tool.input).decode()}))
        elif suffix:
            out.append(_delta(index, {"type": "input_json_delta", "partial_json": suffix}))
        if problem:
            self.notes.append(RewriteNote("tool_call.arguments", f"content[{index}].input", problem))
