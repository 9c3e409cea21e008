"""Anthropic Messages request -> OpenAI Responses request (openai-python response_create_params.py).

Messages become ``input`` items in order: user text and images as ``message`` items with
``input_text`` / ``input_image`` parts, ``tool_result`` as ``function_call_output`` (first, then
the rest of the user turn), assistant text as ``message`` items with ``output_text``,
``tool_use`` as ``function_call``, and ``thinking`` as top-level ``reasoning`` items placed
immediately before the item that followed them (the API answers 400 to a reasoning item
without its following item). A thinking block whose signature this gateway minted for a
Responses backend is replayed exactly (its ``id`` and ``encrypted_content``); any other
thinking goes back as summary text, never as ``output_text``.

Everything the backend may not understand is decided by ``Capabilities``; every change that is
not a plain one-to-one mapping leaves a ``RewriteNote``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from translation.body import body_extras_apply
from translation.capabilities import Capabilities
from translation.jsonbytes import json_bytes
from translation.notes import RewriteNote
from translation.openai_chat.common import prompt_cache_key_set
from translation.openai_responses.common import (
    call_id_from_tool_id,
    reasoning_payload,
    summary_split,
)
from translation.openai_shared import RequestBuilder
from translation.prefill import prefill_plan
from translation.rewrites import EFFORT_TO_OPENAI
from translation.schemas import (
    Message,
    MessagesRequest,
    RedactedThinkingBlock,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from translation.thinking import ThinkingIntent, thinking_intent

# OpenAI limits safety_identifier to 64 characters; Claude Code's user_id is a long JSON string.
_SAFETY_ID_MAX = 64


def _message(role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": parts}


class _Builder(RequestBuilder):
    api = "Responses"
    hoisted_into = "instructions"

    # -- shapes ---------------------------------------------------------------------------

    def text_part(self, text: str) -> dict[str, Any]:
        return {"type": "input_text", "text": text}

    def image_part(self, url: str) -> dict[str, Any]:
        return {"type": "input_image", "image_url": url, "detail": "auto"}

    def file_part(self, path: str, data_url: str, filename: str) -> dict[str, Any]:
        return {"type": "input_file", "filename": filename, "file_data": data_url}

    def url_document(self, path: str, kind: Any, url: Any, title: str) -> dict[str, Any] | None:
        return {"type": "input_file", "file_url": url} if kind == "url" and url else None

    def system_item(self, text: str) -> dict[str, Any]:
        return _message("system", [self.text_part(text)])

    def user_item(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return _message("user", parts)

    def tool_result(self, path: str, block: ToolResultBlock, media: list[dict[str, Any]]) -> dict[str, Any]:
        """A function_call_output item; it carries images and files itself (``media`` stays empty)."""
        content = block.content
        output: str | list[dict[str, Any]]
        if content is None or isinstance(content, str):
            output = content or ""
        else:
            parts: list[dict[str, Any]] = []
            for k, item in enumerate(content):
                if isinstance(item, TextBlock):
                    parts.append(self.text_part(item.text))
                else:
                    self.user_part(f"{path}.content[{k}]", item, parts)
            if all(p["type"] == "input_text" for p in parts):
                output = "\n".join(p["text"] for p in parts)
            else:
                output = parts
        if block.is_error:
            # function_call_output has no error flag (field report #30: do not lose it).
            if isinstance(output, str):
                output = f"Error: {output}"
            else:
                output = [{"type": "input_text", "text": "Error:"}, *output]
            self.note("tool_result.is_error", path,
                      "function_call_output has no error flag; prefixed the output with 'Error: '.")
        return {"type": "function_call_output", "call_id": call_id_from_tool_id(block.tool_use_id),
                "output": output}

    def tool_definition(self, tool: Tool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "function", "name": tool.name}
        if tool.description:
            out["description"] = tool.description
        out["parameters"] = tool.input_schema if tool.input_schema is not None else {
            "type": "object", "properties": {}}
        # Responses function tools default to strict: true, which rejects most real schemas
        # (every property required, additionalProperties false): strict only when asked.
        out["strict"] = (tool.model_extra or {}).get("strict") is True
        return out

    def tool_choice_named(self, name: str | None) -> dict[str, Any]:
        return {"type": "function", "name": name}

    def tool_choice_sendable(self, choice: ToolChoice, tools: list[dict[str, Any]]) -> bool:
        if choice.type == "tool" and not any(t["name"] == choice.name for t in tools):
            # It named a server tool dropped above: the backend would refuse an unknown function.
            self.note("tool_choice.drop", "tool_choice",
                      f"Dropped tool_choice: the tool it names ({choice.name!r}) is not sent.")
            return False
        return True

    # -- assistant ------------------------------------------------------------------------

    def assistant(self, i: int, message: Message) -> list[dict[str, Any]]:
        """The items of one assistant turn, in block order; reasoning before what followed it."""
        items: list[dict[str, Any]] = []
        texts: list[str] = []
        waiting: list[tuple[str, dict[str, Any]]] = []  # reasoning items not followed by an item yet

        def push(item: dict[str, Any]) -> None:
            items.extend(r for _, r in waiting)
            waiting.clear()
            items.append(item)

        def flush_text() -> None:
            if texts:
                push(_message("assistant", [{"type": "output_text", "text": "".join(texts)}]))
                texts.clear()

        for j, block in enumerate(message.blocks()):
            path = f"messages[{i}].content[{j}]"
            if isinstance(block, TextBlock):
                if block.text:
                    texts.append(block.text)
            elif isinstance(block, ThinkingBlock):
                flush_text()
                reasoning = self.reasoning(path, block)
                if reasoning is not None:
                    waiting.append((path, reasoning))
            elif isinstance(block, ToolUseBlock):
                flush_text()
                push({"type": "function_call", "call_id": call_id_from_tool_id(block.id), "name": block.name,
                      "arguments": json_bytes(block.input).decode()})
            elif isinstance(block, RedactedThinkingBlock):
                self.note("redacted_thinking.drop", path, "Dropped a redacted_thinking block (opaque to this backend).")
            elif isinstance(block, ServerToolBlock):
                self.note("block.drop", path, f"Dropped a {block.type} block (no Responses equivalent).")
        flush_text()
        for path, _ in waiting:
            # "Item 'rs_…' of type 'reasoning' was provided without its required following item."
            self.note("reasoning.drop_trailing", path,
                      "Dropped thinking that ends its turn: a reasoning item must be followed by the item "
                      "it preceded.")
        return items

    def assistant_turn(self, i: int, message: Message, last: bool, body: dict[str, Any]) -> None:
        items = self.assistant(i, message)
        if last and not any(item["type"] == "function_call" for item in items) and any(
                item["type"] == "message" for item in items):
            items = self.prefill(items)
        elif not items:
            self.note("message.drop_empty", f"messages[{i}]", "Dropped an assistant message left with no content.")
        self.items.extend(items)

    def reasoning(self, path: str, block: ThinkingBlock) -> dict[str, Any] | None:
        payload = reasoning_payload(block.signature)
        if payload is not None and isinstance(payload.get("id"), str):
            item: dict[str, Any] = {"type": "reasoning", "id": payload["id"]}
            parts = summary_split(block.thinking, payload.get("sl")) if block.thinking else []
            if payload.get("raw"):  # vLLM: raw reasoning text, no summary
                item["summary"] = []
                if parts:
                    item["content"] = [{"type": "reasoning_text", "text": p} for p in parts]
            else:
                item["summary"] = [{"type": "summary_text", "text": p} for p in parts]
            if isinstance(payload.get("enc"), str):
                item["encrypted_content"] = payload["enc"]
            return item
        if not block.thinking:
            self.note("thinking.drop_empty", path, "Dropped a thinking block with no text and no reasoning item "
                                                   "behind it.")
            return None
        self.note("thinking.as_summary", path,
                  "Thinking not made by this backend sent as a reasoning item with its text as summary_text "
                  "(no id, no encrypted_content).")
        return {"type": "reasoning", "summary": [{"type": "summary_text", "text": block.thinking}]}

    def prefill(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The Responses API has no prefill: the plan rewrites it into a user message (or 400s)."""
        plan = prefill_plan(request=self.req, caps=self.caps, kind="openai_responses", backend=self.backend,
                            thinking_dropped=any(item["type"] == "reasoning" for item in items))
        if plan is None:
            return items
        self.notes.extend(plan.notes)
        return [_message("user", [{"type": "input_text", "text": plan.instruction}])]


def _reasoning(intent: ThinkingIntent, caps: Capabilities, body: dict[str, Any], notes: list[RewriteNote], *,
               display: Any = None) -> None:
    """``thinking`` / ``output_config.effort`` -> ``reasoning: {effort, summary}``.

    thinking_control ``none`` sends nothing; any other value turns the Responses knob. Thinking
    off is ``effort: "none"`` (gpt-5.1 and later, vLLM; older reasoning models reject it: set
    thinking_control=none for them). Thinking on asks for a summary per ``reasoning_summary``,
    so the client gets thinking text, unless ``thinking.display`` is ``"omitted"``: then no summary
    is asked for and the reasoning items come back as thinking blocks with a signature and no
    text, which is what Anthropic returns for it.
    """
    if intent.enabled is None and intent.effort is None:
        return
    if caps.thinking_control == "none":
        notes.append(RewriteNote("thinking.not_sent", "thinking",
                                 "The backend has no thinking switch (capability thinking_control=none); "
                                 "its default applies."))
        return
    if intent.enabled is False:
        body["reasoning"] = {"effort": "none"}
        notes.append(RewriteNote("thinking.reasoning", "reasoning.effort", "thinking off: reasoning.effort 'none'."))
        return
    reasoning: dict[str, Any] = {}
    effort = intent.effort_or_budget
    if effort:
        reasoning["effort"] = EFFORT_TO_OPENAI[effort]
    if display == "omitted":
        notes.append(RewriteNote("thinking.display_omitted", "thinking.display",
                                 "thinking.display omitted: no reasoning summary asked for; thinking blocks carry "
                                 "only their signature."))
    elif caps.reasoning_summary != "none":
        reasoning["summary"] = caps.reasoning_summary
    if not reasoning:
        return
    body["reasoning"] = reasoning
    source = (f" (from effort {intent.effort!r})" if intent.effort else " (from budget_tokens)" if effort else "")
    notes.append(RewriteNote("thinking.reasoning", "reasoning",
                             f"Sent reasoning: {json_bytes(reasoning).decode()}{source}."))


def build_request(req: MessagesRequest, caps: Capabilities, *, upstream_model: str, backend_name: str = "",
                  client_headers: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[RewriteNote]]:
    """The Responses body for ``req`` on a backend with ``caps``, and the rewrite notes
    (``client_headers``: the client's request headers, which may name its session)."""
    b = _Builder(req, caps, backend_name)
    body: dict[str, Any] = {"model": upstream_model}
    b.messages(body)
    if b.system_parts:
        body["instructions"] = "\n\n".join(b.system_parts)
    body["input"] = b.items
    b.max_tokens(body, "max_output_tokens")
    if req.stop_sequences:
        b.note("stop_sequences.emulate", "stop_sequences",
               "The Responses API has no stop sequences: the gateway cuts the output at the first match "
               "and reports stop_reason stop_sequence.")
    b.sampling(body)
    if req.top_k is not None:
        b.note("top_k.drop", "top_k", "Dropped top_k: the Responses API has no such parameter.")
    user_id = req.metadata.user_id if req.metadata is not None else None
    if user_id:
        if len(user_id) > _SAFETY_ID_MAX:
            user_id = hashlib.sha256(user_id.encode()).hexdigest()
            b.note("metadata.user_id_hash", "safety_identifier",
                   "metadata.user_id is longer than 64 characters: sent its SHA-256 as safety_identifier.")
        body["safety_identifier"] = user_id
    prompt_cache_key_set(body, req=req, caps=caps, client_headers=client_headers, notes=b.notes)
    b.tools(body)
    _reasoning(thinking_intent(req, b.notes), caps, body, b.notes,
               display=(req.thinking.model_extra or {}).get("display") if req.thinking is not None else None)
    fmt = (req.output_config or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        body["text"] = {"format": {"type": "json_schema", "name": "output", "schema": fmt["schema"], "strict": True}}
        b.note("output_config.format", "text.format", "Structured output sent as text.format json_schema.")
    if caps.stateless:
        # Stateless use: nothing stored server-side; reasoning travels in the client's history.
        body["store"] = False
        body["include"] = ["reasoning.encrypted_content"]
    if req.stream:
        body["stream"] = True
    b.unmapped()
    body_extras_apply(body, caps, b.notes)
    return body, b.notes
