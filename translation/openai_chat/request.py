"""Anthropic Messages request -> OpenAI Chat Completions request (README, What is translated).

Everything the backend may not understand is decided by ``Capabilities``; every change that is
not a plain one-to-one mapping leaves a ``RewriteNote``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from translation.body import body_extras_apply
from translation.capabilities import Capabilities
from translation.jsonbytes import json_bytes
from translation.notes import RewriteNote
from translation.openai_chat.common import prompt_cache_key_set
from translation.openai_shared import RequestBuilder
from translation.prefill import PrefillPlan, prefill_plan
from translation.rewrites import EFFORT_TO_OPENAI, search_result_text
from translation.schemas import (
    Message,
    MessagesRequest,
    RedactedThinkingBlock,
    SearchResultBlock,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolResultBlock,
    ToolUseBlock,
)
from translation.thinking import ThinkingIntent, thinking_intent


class _Builder(RequestBuilder):
    """Walks one request; collects the chat messages, the hoisted system text and the notes."""

    api = "Chat Completions"
    hoisted_into = "the leading system prompt"
    document_kinds = {"text": "plain-text", "content": "content"}
    parallel_without_tools = True

    def __init__(self, req: MessagesRequest, caps: Capabilities, backend_name: str) -> None:
        super().__init__(req, caps, backend_name)
        self.reasoning_dropped: list[int] = []
        self.plan: PrefillPlan | None = None  # the prefill plan of the trailing assistant message

    # -- shapes ---------------------------------------------------------------------------

    def text_part(self, text: str) -> dict[str, Any]:
        return {"type": "text", "text": text}

    def image_part(self, url: str) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": url}}

    def file_part(self, path: str, data_url: str, filename: str) -> dict[str, Any]:
        self.note("document.file", path, "Sent a base64 PDF document as an OpenAI file part.")
        return {"type": "file", "file": {"file_data": data_url, "filename": filename}}

    def url_document(self, path: str, kind: Any, url: Any, title: str) -> dict[str, Any] | None:
        if not url:
            return None
        self.note("document.url_as_text", path, "Chat Completions has no URL documents; sent the link as text.")
        return self.text_part(f"[document: {title or url}]({url})")

    def document_text(self, kind: str, source: dict[str, Any]) -> str:
        if kind == "text":
            return str(source.get("data", ""))
        return super().document_text(kind, source)

    def system_item(self, text: str) -> dict[str, Any]:
        return {"role": "system", "content": text}

    def user_item(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"role": "user", "content": _content(parts)}

    def media_item(self, media: list[dict[str, Any]]) -> dict[str, Any]:
        return {"role": "user", "content": media}

    def tool_result(self, path: str, block: ToolResultBlock,
                    media: list[dict[str, Any]]) -> dict[str, Any]:
        content = block.content
        texts: list[str] = []
        if isinstance(content, str):
            texts.append(content)
        elif content:
            for k, item in enumerate(content):
                if isinstance(item, TextBlock):
                    texts.append(item.text)
                elif isinstance(item, SearchResultBlock):
                    texts.append(search_result_text(item))
                else:
                    # Tool messages carry text only; images and files follow as a user message.
                    self.user_part(f"{path}.content[{k}]", item, media)
                    self.note("tool_result.media", f"{path}.content[{k}]",
                              "Moved an image/document out of a tool result into a user message after it.")
        text = "\n".join(texts)
        if block.is_error:
            text = f"Error: {text}"
            self.note("tool_result.is_error", path, "Chat tool messages have no error flag; prefixed the result with 'Error: '.")
        return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}

    def tool_definition(self, tool: Tool) -> dict[str, Any]:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        # The schema is passed intact (JSON Schema 2020-12 keywords included).
        function["parameters"] = tool.input_schema if tool.input_schema is not None else {
            "type": "object", "properties": {}}
        return {"type": "function", "function": function}

    def tool_choice_named(self, name: str | None) -> dict[str, Any]:
        return {"type": "function", "function": {"name": name}}

    # -- assistant ------------------------------------------------------------------------

    def assistant(self, i: int, message: Message) -> dict[str, Any] | None:
        texts: list[str] = []
        reasoning: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for j, block in enumerate(message.blocks()):
            path = f"messages[{i}].content[{j}]"
            if isinstance(block, TextBlock):
                if block.text:
                    texts.append(block.text)
            elif isinstance(block, ThinkingBlock):
                # Never as a content part (vLLM 400s, field report #5): it goes to the reasoning field.
                if block.thinking:
                    reasoning.append(block.thinking)
            elif isinstance(block, ToolUseBlock):
                tool_calls.append({
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": json_bytes(block.input).decode()},
                })
            elif isinstance(block, RedactedThinkingBlock):
                self.note("redacted_thinking.drop", path, "Dropped a redacted_thinking block (opaque to this backend).")
            else:
                self.note("block.drop", path, f"Dropped a {block.type} block (no Chat Completions equivalent).")
        out: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
        if tool_calls:
            out["tool_calls"] = tool_calls
            if not texts:
                out["content"] = None
        replayed = self.reasoning_replay(i, reasoning, bool(tool_calls), out)
        if not texts and not tool_calls and not replayed:
            self.note("message.drop_empty", f"messages[{i}]", "Dropped an assistant message left with no content.")
            return None
        return out

    def reasoning_replay(self, i: int, reasoning: list[str], tool_turn: bool, out: dict[str, Any]) -> bool:
        """Put history thinking on the assistant message per ``reasoning_replay``; True if sent."""
        caps = self.caps
        field, policy = caps.reasoning_field_out, caps.reasoning_replay
        if not field or policy == "never":
            if reasoning:
                self.reasoning_dropped.append(i)
            return False
        if policy == "tool_turns" and not tool_turn:
            if reasoning:
                self.reasoning_dropped.append(i)
            return False
        if reasoning:
            out[field] = "\n\n".join(reasoning)
            return True
        if policy == "tool_turns":
            # DeepSeek thinking mode and Kimi answer 400 when a tool-call turn lacks the field.
            out[field] = caps.reasoning_placeholder
            self.note("reasoning.placeholder", f"messages[{i}].{field}",
                      f"Sent {caps.reasoning_placeholder!r} as the reasoning of a tool-call turn that had no "
                      "thinking (the backend requires the field on tool-call turns).")
        return False

    def assistant_turn(self, i: int, message: Message, last: bool, body: dict[str, Any]) -> None:
        out = self.assistant(i, message)
        if out is not None and last:
            out, self.plan = self.prefill(out, body)
        if out is not None:
            self.items.append(out)

    # -- prefill --------------------------------------------------------------------------

    def prefill(self, out: dict[str, Any], body: dict[str, Any]) -> tuple[dict[str, Any], PrefillPlan | None]:
        """The trailing assistant message shaped by the prefill plan (Anthropic docs, prefill):
        vLLM/SGLang's continue_final_message flags, DeepSeek's ``prefix`` / Kimi's ``partial``."""
        plan = prefill_plan(request=self.req, caps=self.caps, kind="openai_chat", backend=self.backend)
        if plan is None:
            return out, None
        if plan.trimmed:
            out["content"] = plan.text
        self.notes.extend(plan.notes)
        if plan.strategy == "continue_final_message":
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        elif plan.strategy == "prefix_flag":
            out[self.caps.prefix_flag_name] = True
        elif plan.strategy == "rewrite":
            return {"role": "user", "content": plan.instruction}, plan
        return out, plan


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Plain string when the message is text only (what every chat template handles)."""
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _thinking_knob(intent: ThinkingIntent, caps: Capabilities, body: dict[str, Any],
                   notes: list[RewriteNote]) -> None:
    """Turn the backend's thinking knob (``thinking_control``) to what the client asked for."""
    control = caps.thinking_control
    if intent.enabled is None and intent.effort is None:
        return  # the client said nothing: the backend's default applies
    effort = intent.effort_or_budget
    if control in ("none", "native"):
        notes.append(RewriteNote("thinking.not_sent", "thinking",
                                 "The backend has no thinking switch (capability thinking_control=none); "
                                 "its default applies."))
        return
    if control in ("enable_thinking", "template_thinking"):
        if intent.enabled is None:
            return  # an effort alone does not switch a template
        key = "enable_thinking" if control == "enable_thinking" else "thinking"
        kwargs = body.setdefault("chat_template_kwargs", {})
        kwargs[key] = intent.enabled
        notes.append(RewriteNote("thinking.chat_template_kwargs", f"chat_template_kwargs.{key}",
                                 f"thinking {'on' if intent.enabled else 'off'} via chat_template_kwargs.{key}."))
        if intent.enabled and intent.budget is not None:
            _thinking_budget(intent.budget, caps, body, notes)
        return
    if control == "reasoning_effort":
        value = "none" if intent.enabled is False else EFFORT_TO_OPENAI.get(effort or "", None)
        if value is None:
            return  # thinking on without a level: the backend's default level
        body["reasoning_effort"] = value
        notes.append(RewriteNote("thinking.reasoning_effort", "reasoning_effort",
                                 f"thinking {'off' if value == 'none' else 'on'}: reasoning_effort {value!r}"
                                 + (f" (from {'effort ' + repr(intent.effort) if intent.effort else 'budget'})"
                                    if value != "none" else "") + "."))
        return
    if control == "thinking_object":
        if intent.enabled is None:
            return
        body["thinking"] = {"type": "enabled" if intent.enabled else "disabled"}
        notes.append(RewriteNote("thinking.object", "thinking",
                                 f"Sent thinking: {{type: {body['thinking']['type']}}} in the backend's form."))
        return
    # reasoning_object (OpenRouter): {enabled:false} | {max_tokens} | {effort} | {enabled:true}
    reasoning: dict[str, Any]
    if intent.enabled is False:
        reasoning = {"enabled": False}
    elif intent.budget is not None and not intent.effort:
        reasoning = {"max_tokens": intent.budget}
    elif effort:
        reasoning = {"effort": EFFORT_TO_OPENAI[effort]}
    else:
        reasoning = {"enabled": True}
    body["reasoning"] = reasoning
    notes.append(RewriteNote("thinking.reasoning_object", "reasoning",
                             f"Sent reasoning: {json_bytes(reasoning).decode()}."))


def _thinking_budget(budget: int, caps: Capabilities, body: dict[str, Any], notes: list[RewriteNote]) -> None:
    field = caps.thinking_budget_field
    if not field:
        notes.append(RewriteNote("thinking.budget_not_sent", "thinking.budget_tokens",
                                 "The thinking budget has no equivalent here (capability thinking_budget_field "
                                 "is empty); only the switch is sent."))
        return
    body[field] = budget
    notes.append(RewriteNote("thinking.budget", field, f"Thinking budget {budget} sent as {field}."))


def _stop_sequences(req: MessagesRequest, caps: Capabilities, body: dict[str, Any],
                    notes: list[RewriteNote]) -> None:
    """``stop`` where the backend can say which sequence stopped it (capability stop_sequences)."""
    if caps.stop_sequences == "llamacpp_verbose":
        # llama.cpp names the stop word (and a full context) only in __verbose; response_fields
        # keeps that object to three fields (tools/server/server-task.cpp, llama-cpp-python 0.3.36).
        body["verbose"] = True
        body["response_fields"] = ["stop_type", "stopping_word", "truncated"]
    if not req.stop_sequences:
        return
    if caps.stop_sequences == "gateway":
        notes.append(RewriteNote("stop_sequences.gateway", "stop_sequences",
                                 "Not sent: the backend cannot say which sequence stopped it, so the gateway "
                                 "matches them in the reply, cuts the text there and ends the turn "
                                 "(capability stop_sequences=gateway)."))
        return
    body["stop"] = list(req.stop_sequences)


def _thinking_resolve(b: _Builder, plan: PrefillPlan | None) -> ThinkingIntent:
    """The thinking the backend should do, after the prefill plan's thinking rule."""
    intent = thinking_intent(b.req, b.notes)
    if plan is None or plan.thinking_note is None:
        return intent
    b.notes.append(plan.thinking_note)
    return ThinkingIntent(enabled=False)


def _response_format(req: MessagesRequest, body: dict[str, Any], notes: list[RewriteNote]) -> None:
    fmt = (req.output_config or {}).get("format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        return
    body["response_format"] = {"type": "json_schema",
                               "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True}}
    notes.append(RewriteNote("output_config.format", "response_format",
                             "Structured output sent as response_format json_schema."))


def build_request(req: MessagesRequest, caps: Capabilities, *, upstream_model: str, backend_name: str = "",
                  client_headers: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[RewriteNote]]:
    """The Chat Completions body for ``req`` on a backend with ``caps``, and the rewrite notes
    (``client_headers``: the client's request headers, which may name its session)."""
    b = _Builder(req, caps, backend_name)
    body: dict[str, Any] = {"model": upstream_model}
    b.messages(body)
    if b.reasoning_dropped:
        where = ", ".join(f"messages[{i}]" for i in b.reasoning_dropped)
        b.note("reasoning.not_replayed", where,
               f"History thinking not sent back (capability reasoning_replay={caps.reasoning_replay}, "
               f"reasoning_field_out={caps.reasoning_field_out!r}).")
    if b.system_parts:
        b.items.insert(0, {"role": "system", "content": "\n\n".join(b.system_parts)})
    body["messages"] = b.items
    b.max_tokens(body, caps.max_tokens_field)
    _stop_sequences(req, caps, body, b.notes)
    b.sampling(body)
    if req.top_k is not None:
        if caps.top_k:
            body["top_k"] = req.top_k
        else:
            b.note("top_k.drop", "top_k", "Dropped top_k: this backend rejects it.")
    if req.metadata is not None and req.metadata.user_id:
        body["user"] = req.metadata.user_id
    prompt_cache_key_set(body, req=req, caps=caps, client_headers=client_headers, notes=b.notes)
    b.tools(body)
    _thinking_knob(_thinking_resolve(b, b.plan), caps, body, b.notes)
    _response_format(req, body, b.notes)
    if req.stream:
        body["stream"] = True
        if caps.stream_usage:
            body["stream_options"] = {"include_usage": True}
    b.unmapped()
    body_extras_apply(body, caps, b.notes)
    return body, b.notes
