"""Anthropic Messages request -> OpenAI Chat Completions request (protocol.md §9.1).

Everything the backend may not understand is decided by ``Capabilities``; every change that is
not a plain one-to-one mapping leaves a ``RewriteNote``.
"""

from __future__ import annotations

from typing import Any

import orjson

from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.notes import RewriteNote
from translation.prefill import BILLING_HEADER_PREFIX, PREFILL_REWRITE_INSTRUCTION
from translation.schemas import (
    Base64Source,
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
    UrlSource,
)

# Top-level request fields this module maps; anything else (context_management, output_config,
# cache_control, container, service_tier, ...) is not forwarded.
_MAPPED_FIELDS = frozenset({
    "model", "max_tokens", "messages", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice",
})

class _Builder:
    """Walks one request; collects the chat messages, the hoisted system text and the notes."""

    def __init__(self, req: MessagesRequest, caps: Capabilities) -> None:
        self.req = req
        self.caps = caps
        self.notes: list[RewriteNote] = []
        self.system_parts: list[str] = []
        self.messages: list[dict[str, Any]] = []

    def note(self, rule: str, path: str, detail: str) -> None:
        self.notes.append(RewriteNote(rule, path, detail))

    # -- system ---------------------------------------------------------------------------

    def system(self) -> None:
        system = self.req.system
        if system is None:
            return
        if isinstance(system, str):
            if system:
                self.system_parts.append(system)
            return
        for i, block in enumerate(system):
            if i == 0 and self.caps.strip_billing_header and block.text.startswith(BILLING_HEADER_PREFIX):
                self.note("system.strip_billing_header", "system[0]",
                          "Removed Claude Code's per-request x-anthropic-billing-header block "
                          "(it changes every request and defeats prefix caching).")
                continue
            if block.text:
                self.system_parts.append(block.text)

    def system_message(self, i: int, message: Message) -> None:
        text = "\n\n".join(b.text for b in message.blocks() if isinstance(b, TextBlock) and b.text)
        policy = self.caps.system_messages
        if policy == "reject":
            raise ApiError(400, f"messages.{i}: Unexpected role \"system\". This backend does not accept "
                                "system messages inside messages (capability system_messages=reject); "
                                "the input message role must be 'user' or 'assistant'.")
        if policy == "keep":
            self.messages.append({"role": "system", "content": text})
            return
        if text:
            self.system_parts.append(text)
        self.note("system_messages.hoist", f"messages[{i}]",
                  "Moved a mid-conversation system message into the leading system prompt.")

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
            url = _image_url(block)
            if url is None:
                self.note("image.drop_file", path, "Dropped an image given as a Files API id (no Chat equivalent).")
            else:
                parts.append({"type": "image_url", "image_url": {"url": url}})
        elif isinstance(block, DocumentBlock):
            self.document(path, block, parts)
        elif isinstance(block, SearchResultBlock):
            parts.append({"type": "text", "text": _search_result_text(block)})
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
                    texts.append(_search_result_text(item))
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
                    "function": {"name": block.name, "arguments": orjson.dumps(block.input).decode()},
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
        if reasoning:
            field = self.caps.reasoning_field_out
            if field:
                out[field] = "\n\n".join(reasoning)
            else:
                self.note("thinking.drop", f"messages[{i}]",
                          "Dropped thinking from history: this backend takes no reasoning field.")
        if not texts and not tool_calls and not (reasoning and self.caps.reasoning_field_out):
            self.note("message.drop_empty", f"messages[{i}]", "Dropped an assistant message left with no content.")
            return None
        return out

    # -- prefill --------------------------------------------------------------------------

    def prefill(self, i: int, out: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        """The trailing assistant message, shaped by ``caps.prefill`` (protocol.md §6)."""
        strategy = self.caps.prefill
        path = f"messages[{i}]"
        if strategy == "native":
            return out
        if strategy == "reject":
            raise ApiError(400, "this backend does not accept a trailing assistant message "
                                "(capability prefill=reject)")
        if strategy == "continue_final_message":
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
            self.note("prefill.continue_final_message", path,
                      "Trailing assistant message sent with continue_final_message: true and "
                      "add_generation_prompt: false so the model continues it.")
            return out
        if strategy == "prefix_flag":
            flag = self.caps.prefix_flag_name
            out[flag] = True
            self.note("prefill.prefix_flag", f"{path}.{flag}",
                      f"Marked the trailing assistant message with {flag}: true (prefix completion).")
            return out
        # "rewrite": the backend cannot continue a message; ask for the continuation instead.
        text = out.get("content") or ""
        self.note("prefill.rewrite", path,
                  "Replaced the trailing assistant message by a user message asking to continue it; "
                  "a repeated prefix is stripped from the reply.")
        return {"role": "user", "content": PREFILL_REWRITE_INSTRUCTION.format(text=text)}

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
        if choice.type == "tool":
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        if choice.disable_parallel_tool_use:
            body["parallel_tool_calls"] = False


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Plain string when the message is text only (what every chat template handles)."""
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _image_url(block: ImageBlock) -> str | None:
    source = block.source
    if isinstance(source, Base64Source):
        return f"data:{source.media_type};base64,{source.data}"
    if isinstance(source, UrlSource):
        return source.url
    return None


def _search_result_text(block: SearchResultBlock) -> str:
    head = "\n".join(x for x in (block.title, block.source) if x)
    body = "\n".join(b.text for b in block.content)
    return f"{head}\n\n{body}" if head else body


def _thinking_apply(req: MessagesRequest, caps: Capabilities, body: dict[str, Any],
                    notes: list[RewriteNote]) -> None:
    """Hook: map Anthropic ``thinking`` / ``output_config.effort`` to the backend's knobs.

    Deliberately a no-op for now: Anthropic's ``thinking`` object is never forwarded (no Chat
    backend understands it), and the backend's default thinking behaviour applies. A later
    change maps it per capability (``chat_template_kwargs``, ``reasoning_effort``,
    ``thinking:{type}``; protocol.md §9.1).
    """


def build_request(req: MessagesRequest, caps: Capabilities, *,
                  upstream_model: str) -> tuple[dict[str, Any], list[RewriteNote]]:
    """The Chat Completions body for ``req`` on a backend with ``caps``, and the rewrite notes."""
    b = _Builder(req, caps)
    body: dict[str, Any] = {"model": upstream_model}
    b.system()
    last = len(req.messages) - 1
    for i, message in enumerate(req.messages):
        if message.role == "system":
            b.system_message(i, message)
        elif message.role == "user":
            b.user(i, message)
        else:
            out = b.assistant(i, message)
            if out is not None and i == last and "tool_calls" not in out:
                out = b.prefill(i, out, body)
            if out is not None:
                b.messages.append(out)
    if b.system_parts:
        b.messages.insert(0, {"role": "system", "content": "\n\n".join(b.system_parts)})
    body["messages"] = b.messages
    body[caps.max_tokens_field] = req.max_tokens
    if req.stop_sequences:
        body["stop"] = list(req.stop_sequences)
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.top_k is not None:
        if caps.top_k:
            body["top_k"] = req.top_k
        else:
            b.note("top_k.drop", "top_k", "Dropped top_k: this backend rejects it.")
    if req.metadata is not None and req.metadata.user_id:
        body["user"] = req.metadata.user_id
    b.tools(body)
    _thinking_apply(req, caps, body, b.notes)
    if req.stream:
        body["stream"] = True
        if caps.stream_usage:
            body["stream_options"] = {"include_usage": True}
    dropped = sorted(k for k in req.model_fields_set | set(req.model_extra or {})
                     if k not in _MAPPED_FIELDS)
    if dropped:
        b.note("fields.drop", ",".join(dropped),
               f"Not forwarded (no Chat Completions equivalent): {', '.join(dropped)}.")
    return body, b.notes
