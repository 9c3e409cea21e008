"""Chat Completions response -> Anthropic Message (README, What is translated)."""

from __future__ import annotations

from typing import Any

from translation.capabilities import Capabilities
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
from translation.openai_shared import message_out
from translation.prefill import PrefixStrip, prefill_echo_prefix
from translation.rewrites import PARALLEL_DROP_DETAIL, parallel_tools_disabled
from translation.schemas import MessagesRequest
from translation.stops import StopScanner, stop_matched_detail


def _index(choice: dict[str, Any]) -> int:
    index = choice.get("index")
    return index if isinstance(index, int) else 0


def translate_response(body: dict[str, Any], caps: Capabilities, *, request: MessagesRequest,
                       message_id: str, input_tokens_estimate: int = 0) -> tuple[dict[str, Any], list[RewriteNote]]:
    """The complete Anthropic Message for a ``chat.completion`` body.

    Blocks come in the order thinking, text, tool_use, each kind merged over all choices (some
    upstreams put the text in ``choices[0]`` and the tool call in ``choices[1]``, field report
    #24). Tool arguments that are not a JSON object become ``{}`` (truncated objects are
    closed first); each such repair leaves a note. An ``error`` body raises ``ApiError``.
    """
    error = body_error(body)
    if error is not None:
        raise error
    notes: list[RewriteNote] = []
    choices = sorted((c for c in body.get("choices") or [] if isinstance(c, dict)), key=_index)
    thinking: list[dict[str, Any]] = []
    texts: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    finishes: list[tuple[Any, Any]] = []
    used_ids: set[str] = set()
    refused = False
    prefix = PrefixStrip(prefill_echo_prefix(request, caps))
    scanner = StopScanner(request.stop_sequences if caps.stop_sequences == "gateway" else None)
    one_tool = parallel_tools_disabled(request)
    verbose_stop, truncated = llamacpp_verbose(body)
    for choice in choices:
        fatal = fatal_finish_error(choice.get("finish_reason"))
        if fatal is not None:
            raise fatal
        finishes.append((choice.get("finish_reason"),
                         choice.get("stop_reason", choice.get("matched_stop")) or verbose_stop))
        message = choice.get("message")
        if not isinstance(message, dict):
            continue
        reasoning = reasoning_read(message, caps.reasoning_fields_in)
        if reasoning:
            thinking.append({"type": "thinking", "thinking": reasoning, "signature": chat_signature()})
        text = content_text(message.get("content"))
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            refused = True
            text += refusal
        if text:
            text = prefix.strip(text)  # only the first text can repeat the prefill
            if (note := prefix.note()) is not None:
                notes.append(note)
        if text and scanner.stops:
            text = scanner.feed(text) + scanner.flush()
        if text:
            texts.append({"type": "text", "text": text})
        if scanner.matched is not None:
            notes.append(RewriteNote("stop_sequences.matched", "content", stop_matched_detail(scanner.matched)))
            break  # nothing after the stop sequence is part of the reply
        for k, call in enumerate(message.get("tool_calls") or []):
            if one_tool and tools:
                notes.append(RewriteNote("tool_call.drop_parallel", f"choices[{_index(choice)}].message.tool_calls[{k}]",
                                         PARALLEL_DROP_DETAIL))
                continue
            path = f"choices[{_index(choice)}].message.tool_calls[{k}]"
            function = call.get("function") if isinstance(call, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(call, dict) or not isinstance(function, dict) or not isinstance(name, str) or not name:
                notes.append(RewriteNote("tool_call.drop_nameless", path, "Dropped a tool call without a function name."))
                continue
            arguments = function.get("arguments")
            if isinstance(arguments, dict):  # some backends send an object, not a string
                arguments = json_bytes(arguments).decode()
            tool_input, problem, _ = tool_input_parse(arguments if isinstance(arguments, str) else "")
            if problem:
                notes.append(RewriteNote("tool_call.arguments", f"{path}.function.arguments", problem))
            tools.append({
                "type": "tool_use",
                "id": tool_id_make(call.get("id"), message_id=message_id, ordinal=len(tools), used=used_ids),
                "name": name,
                "input": tool_input,
            })
    usage = body.get("usage")
    stop_reason, stop_sequence = stop_reason_decide(
        finishes=finishes, tool_calls=bool(tools), refused=refused, stop_sequences=request.stop_sequences,
        context_full=truncated or context_full(usage, caps.context_window), gateway_stop=scanner.matched)
    return message_out(request=request, message_id=message_id, content=thinking + texts + tools,
                       stop_reason=stop_reason, stop_sequence=stop_sequence, usage=usage,
                       usage_map=usage_from_openai, input_tokens_estimate=input_tokens_estimate,
                       notes=notes), notes

