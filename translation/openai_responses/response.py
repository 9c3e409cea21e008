"""Responses API response -> Anthropic Message (openai-python response_stream_event.py).

Output items become blocks in output order, exactly as ``ResponsesStreamTranslator`` emits them
(the same text filters, signature and tool-id rules from ``common``): ``reasoning`` -> thinking
(signature carrying the item's id and ``encrypted_content``), ``message`` -> text (``refusal``
parts too, with ``stop_reason: refusal``), ``function_call`` -> tool_use.
"""

from __future__ import annotations

from typing import Any

from translation.capabilities import Capabilities
from translation.jsonbytes import json_bytes
from translation.notes import RewriteNote
from translation.openai_chat.common import tool_input_parse
from translation.openai_responses.common import (
    reasoning_signature,
    response_error,
    stop_reason_decide,
    summary_join,
    tool_id_from_call_id,
    usage_from_responses,
)
from translation.openai_shared import message_out
from translation.prefill import PrefixStrip, prefill_echo_prefix
from translation.schemas import MessagesRequest
from translation.stops import StopScanner


def _texts(parts: Any, kind: str, key: str) -> list[str]:
    return [p[key] for p in parts or () if isinstance(p, dict) and p.get("type") == kind
            and isinstance(p.get(key), str)]


def _thinking(item: dict[str, Any]) -> dict[str, Any]:
    parts = _texts(item.get("summary"), "summary_text", "text")
    raw = not any(parts)
    if raw:
        parts = _texts(item.get("content"), "reasoning_text", "text")
    text, lengths = summary_join(parts)
    signature = reasoning_signature(item_id=item.get("id"), encrypted=item.get("encrypted_content"),
                                    raw=raw and bool(text), summary_lengths=lengths)
    return {"type": "thinking", "thinking": text, "signature": signature}


def translate_response(body: dict[str, Any], caps: Capabilities, *, request: MessagesRequest,
                       message_id: str, input_tokens_estimate: int = 0) -> tuple[dict[str, Any], list[RewriteNote]]:
    """The complete Anthropic Message for a Responses ``response`` body; a failed or cancelled
    response raises ``ApiError``."""
    error = response_error(body)
    if error is not None:
        raise error
    notes: list[RewriteNote] = []
    content: list[dict[str, Any]] = []
    used_ids: set[str] = set()
    tools = 0
    refused = False
    prefix = PrefixStrip(prefill_echo_prefix(request, caps, "openai_responses"))
    scanner = StopScanner(request.stop_sequences)
    output = body.get("output")
    for k, item in enumerate(output if isinstance(output, list) else []):
        if scanner.matched is not None:
            break
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        path = f"output[{k}]"
        if kind == "reasoning":
            content.append(_thinking(item))
        elif kind == "message":
            text: list[str] = []
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    text.append(scanner.feed(prefix.feed(part["text"])))
                    if scanner.matched is not None:
                        break
                elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                    refused = True
                    text.append(part["refusal"])
            text.append(scanner.feed(prefix.flush()) + scanner.flush())
            if (note := prefix.note()) is not None:
                notes.append(note)
            if "".join(text):
                content.append({"type": "text", "text": "".join(text)})
        elif kind == "function_call":
            name = item.get("name")
            if not isinstance(name, str) or not name:
                notes.append(RewriteNote("tool_call.drop_nameless", path, "Dropped a function call without a name."))
                continue
            arguments = item.get("arguments")
            if isinstance(arguments, dict):
                arguments = json_bytes(arguments).decode()
            tool_input, problem, _ = tool_input_parse(arguments if isinstance(arguments, str) else "")
            if problem:
                notes.append(RewriteNote("tool_call.arguments", f"{path}.arguments", problem))
            content.append({"type": "tool_use",
                            "id": tool_id_from_call_id(item.get("call_id"), message_id=message_id,
                                                       ordinal=tools, used=used_ids),
                            "name": name, "input": tool_input})
            tools += 1
        else:
            notes.append(RewriteNote("output.drop_item", path,
                                     f"Dropped a {kind} output item (no Anthropic equivalent)."))
    if scanner.matched is not None:
        notes.append(RewriteNote("stop_sequences.matched", "content",
                                 f"Cut the output at stop sequence {scanner.matched!r}; usage counts what the "
                                 "backend generated."))
    incomplete = None
    if body.get("status") == "incomplete":
        details = body.get("incomplete_details")
        incomplete = (details.get("reason") if isinstance(details, dict) else None) or "unknown"
    stop_reason, stop_sequence = stop_reason_decide(refused=refused, matched_stop=scanner.matched,
                                                    incomplete_reason=incomplete, tool_calls=tools > 0)
    usage = body.get("usage")
    return message_out(request=request, message_id=message_id, content=content, stop_reason=stop_reason,
                       stop_sequence=stop_sequence, usage=usage, usage_map=usage_from_responses,
                       input_tokens_estimate=input_tokens_estimate, notes=notes), notes
