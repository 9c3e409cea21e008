"""Anthropic Messages request -> OpenAI Chat Completions request (README, What is translated).

Everything the backend may not understand is decided by ``Capabilities``; every change that is
not a plain one-to-one mapping leaves a ``RewriteNote``.
"""

from __future__ import annotations

from typing import Any

from translation.body import body_extras_apply
from translation.capabilities import Capabilities
from translation.jsonbytes import json_bytes
from translation.notes import RewriteNote
from translation.prefill import PrefillPlan, prefill_plan
from translation.rewrites import (
    EFFORT_TO_OPENAI,
    fields_unmapped,
    image_policy,
    search_result_text,
    system_message_keep,
    system_message_text,
    system_texts,
    tool_choice_apply,
)
from translation.schemas import (
    DocumentBlock,
    ImageBlock,
    Message,
    MessagesRequest,
    RedactedThinkingBlock,
    SearchResultBlock,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from translation.thinking import ThinkingIntent, thinking_intent


class _Builder:
    """Walks one request; collects the chat messages, the hoisted system text and the notes."""

    def __init__(self, req: MessagesRequest, caps: Capabilities, backend_name: str) -> None:
        self.req = req
        self.caps = caps
        self.backend = f"backend {backend_name}" if backend_name else "this backend"
        self.notes: list[RewriteNote] = []
        self.system_parts: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self.reasoning_dropped: list[int] = []

    def note(self, rule: str, path: str, detail: str) -> None:
        self.notes.append(RewriteNote(rule, path, detail))

    # -- system ---------------------------------------------------------------------------

    def system(self) -> None:
        self.system_parts.extend(system_texts(self.req, self.caps, self.notes))

    def system_message(self, i: int, message: Message) -> None:
        text = system_message_text(message)
        if system_message_keep(i, self.caps, self.notes, hoisted_into="the leading system prompt"):
            self.messages.append({"role": "system", "content": text})
        elif text:
            self.system_parts.append(text)

    # -- user -----------------------------------------------------------------------------

    def user(self, i: int, message: Message) -> None:
        tool_messages: list[dict[str, Any]] = []
        result_media: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        for j, block in enumerate(message.blocks()):
            path = f"messages[{i}].content[{j}]"
            if isinstance(block, ToolResultBlock):
                tool_messages.append(self.tool_result(path, block, result_media))
            else:
                self.user_part(path, block, parts)
        self.messages.extend(tool_messages)
        if result_media:
            self.messages.append({"role": "user", "content": result_media})
        if parts:
            self.messages.append({"role": "user", "content": _content(parts)})
        elif not tool_messages and not result_media:
            self.note("message.drop_empty", f"messages[{i}]", "Dropped a user message left with no content.")

    def user_part(self, path: str, block: Any, parts: list[dict[str, Any]]) -> None:
        if isinstance(block, TextBlock):
            if block.text:
                parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            image = image_policy(path, block, self.caps, self.notes, backend=self.backend)
            if image is not None:
                kind, value = image
                parts.append({"type": "text", "text": value} if kind == "text" else
                             {"type": "image_url", "image_url": {"url": value}})
        elif isinstance(block, DocumentBlock):
            self.document(path, block, parts)
        elif isinstance(block, SearchResultBlock):
            parts.append({"type": "text", "text": search_result_text(block)})
            self.note("search_result.flatten", path, "Flattened a search_result block to text.")
        elif isinstance(block, ServerToolBlock | ThinkingBlock | RedactedThinkingBlock | ToolUseBlock):
            self.note("block.drop", path, f"Dropped a {block.type} block from a user message.")

    def document(self, path: str, block: DocumentBlock, parts: list[dict[str, Any]]) -> None:
        source = block.source
        kind = source.get("type")
        title = block.title or ""
        if kind == "text":
            text = str(source.get("data", ""))
            parts.append({"type": "text", "text": f"{title}\n\n{text}" if title else text})
            self.note("document.flatten", path, "Sent a plain-text document as text.")
        elif kind == "content":
            content = source.get("content")
            if isinstance(content, str):
                text = content
            else:
                text = "\n\n".join(str(c.get("text", "")) for c in content or [] if isinstance(c, dict))
            parts.append({"type": "text", "text": f"{title}\n\n{text}" if title else text})
            self.note("document.flatten", path, "Sent a content document as text.")
        elif kind == "base64":
            media_type = source.get("media_type", "application/pdf")
            parts.append({"type": "file", "file": {
                "file_data": f"data:{media_type};base64,{source.get('data', '')}",
                "filename": title or "document.pdf",
            }})
            self.note("document.file", path, "Sent a base64 PDF document as an OpenAI file part.")
        else:
            url = source.get("url")
            if url:
                parts.append({"type": "text", "text": f"[document: {title or url}]({url})"})
                self.note("document.url_as_text", path, "Chat Completions has no URL documents; sent the link as text.")
            else:
                self.note("document.drop", path, f"Dropped a document with a {kind!r} source.")

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

    # -- tools ----------------------------------------------------------------------------

    def tools(self, body: dict[str, Any]) -> None:
        req = self.req
        tools: list[dict[str, Any]] = []
        for k, tool in enumerate(req.tools or []):
            if tool.type not in (None, "custom"):
                self.note("tools.drop_server_tool", f"tools[{k}]",
                          f"Dropped server tool {tool.name!r} ({tool.type}): the backend cannot run it.")
                continue
            function: dict[str, Any] = {"name": tool.name}
            if tool.description:
                function["description"] = tool.description
            # The schema is passed intact (JSON Schema 2020-12 keywords included).
            function["parameters"] = tool.input_schema if tool.input_schema is not None else {
                "type": "object", "properties": {}}
            tools.append({"type": "function", "function": function})
        choice = req.tool_choice
        if not tools:
            # vLLM 400s on tools: [] and on tool_choice without tools.
            if choice is not None:
                self.note("tool_choice.drop", "tool_choice", "Dropped tool_choice: no tools are sent.")
            return
        body["tools"] = tools
        if choice is None:
            return
        self.tool_choice(choice.type, choice.name, body)
        if choice.disable_parallel_tool_use:
            if self.caps.parallel_tool_calls:
                body["parallel_tool_calls"] = False
            else:
                self.note("parallel_tool_calls.drop", "tool_choice.disable_parallel_tool_use",
                          "Not sent: the backend does not accept parallel_tool_calls.")

    def tool_choice(self, kind: str, name: str | None, body: dict[str, Any]) -> None:
        mapped: Any = {"type": "function", "function": {"name": name}} if kind == "tool" else {
            "auto": "auto", "any": "required", "none": "none"}[kind]
        tool_choice_apply(kind, mapped, body, self.caps, self.notes)


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


def build_request(req: MessagesRequest, caps: Capabilities, *, upstream_model: str,
                  backend_name: str = "") -> tuple[dict[str, Any], list[RewriteNote]]:
    """The Chat Completions body for ``req`` on a backend with ``caps``, and the rewrite notes."""
    b = _Builder(req, caps, backend_name)
    body: dict[str, Any] = {"model": upstream_model}
    b.system()
    last = len(req.messages) - 1
    plan: PrefillPlan | None = None
    for i, message in enumerate(req.messages):
        if message.role == "system":
            b.system_message(i, message)
        elif message.role == "user":
            b.user(i, message)
        else:
            out = b.assistant(i, message)
            if out is not None and i == last:
                out, plan = b.prefill(out, body)
            if out is not None:
                b.messages.append(out)
    if b.reasoning_dropped:
        where = ", ".join(f"messages[{i}]" for i in b.reasoning_dropped)
        b.note("reasoning.not_replayed", where,
               f"History thinking not sent back (capability reasoning_replay={caps.reasoning_replay}, "
               f"reasoning_field_out={caps.reasoning_field_out!r}).")
    if b.system_parts:
        b.messages.insert(0, {"role": "system", "content": "\n\n".join(b.system_parts)})
    body["messages"] = b.messages
    max_tokens = req.max_tokens
    if caps.max_tokens_cap and max_tokens > caps.max_tokens_cap:
        b.note("max_tokens.clamp", caps.max_tokens_field,
               f"max_tokens {max_tokens} is above the backend's limit; sent {caps.max_tokens_cap} "
               "(capability max_tokens_cap).")
        max_tokens = caps.max_tokens_cap
    body[caps.max_tokens_field] = max_tokens
    _stop_sequences(req, caps, body, b.notes)
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        if caps.sampling_exclusive and req.temperature is not None:
            b.note("top_p.drop", "top_p", "Dropped top_p: the backend rejects it together with temperature.")
        else:
            body["top_p"] = req.top_p
    if req.top_k is not None:
        if caps.top_k:
            body["top_k"] = req.top_k
        else:
            b.note("top_k.drop", "top_k", "Dropped top_k: this backend rejects it.")
    if req.metadata is not None and req.metadata.user_id:
        body["user"] = req.metadata.user_id
    b.tools(body)
    _thinking_knob(_thinking_resolve(b, plan), caps, body, b.notes)
    _response_format(req, body, b.notes)
    if req.stream:
        body["stream"] = True
        if caps.stream_usage:
            body["stream_options"] = {"include_usage": True}
    dropped = fields_unmapped(req)
    if dropped:
        b.note("fields.drop", ",".join(dropped),
               f"Not forwarded (no Chat Completions equivalent): {', '.join(dropped)}.")
    body_extras_apply(body, caps, b.notes)
    return body, b.notes
