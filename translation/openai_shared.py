"""What the two OpenAI translations (Chat Completions, Responses) share.

``RequestBuilder`` walks one Anthropic request the same way for both protocols: system text,
user turns (tool results first, then the rest of the turn), images, documents, search
results, tool definitions, tool_choice, max_tokens and sampling. The subclasses in
``openai_chat/request.py`` and ``openai_responses/request.py`` give the shapes that differ by
protocol (content parts, messages or input items, tool definitions, tool results) and the
assistant turn, which has little in common between the two.

``message_out`` is the Anthropic Message a complete (non-streamed) answer of either becomes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from translation.capabilities import Capabilities
from translation.notes import RewriteNote
from translation.rewrites import (
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
    SearchResultBlock,
    TextBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
)


class RequestBuilder:
    """Walks one request; collects the hoisted system text, the output items and the notes."""

    api = ""  # the protocol's name in notes ("Chat Completions", "Responses")
    hoisted_into = ""  # where a system message that cannot stay goes, in its note
    # The name of a text/content document source in the document.flatten note.
    document_kinds: dict[str, str] = {"text": "text", "content": "content"}
    # Send parallel_tool_calls even when tool_choice none took the tools away.
    parallel_without_tools = False

    def __init__(self, req: MessagesRequest, caps: Capabilities, backend_name: str) -> None:
        self.req = req
        self.caps = caps
        self.backend = f"backend {backend_name}" if backend_name else "this backend"
        self.notes: list[RewriteNote] = []
        self.system_parts: list[str] = []
        self.items: list[dict[str, Any]] = []

    def note(self, rule: str, path: str, detail: str) -> None:
        self.notes.append(RewriteNote(rule, path, detail))

    # -- protocol shapes (the subclasses) ----------------------------------------------------

    def text_part(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    def image_part(self, url: str) -> dict[str, Any]:
        raise NotImplementedError

    def file_part(self, path: str, data_url: str, filename: str) -> dict[str, Any]:
        """A base64 PDF document."""
        raise NotImplementedError

    def url_document(self, path: str, kind: Any, url: Any, title: str) -> dict[str, Any] | None:
        """A document with any other source; None drops it."""
        raise NotImplementedError

    def system_item(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    def user_item(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def media_item(self, media: list[dict[str, Any]]) -> dict[str, Any]:
        """The user message after the tool results for what they could not carry."""
        return self.user_item(media)

    def tool_result(self, path: str, block: ToolResultBlock, media: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def assistant_turn(self, i: int, message: Message, last: bool, body: dict[str, Any]) -> None:
        """Add assistant message ``i`` to the items (``last``: the trailing one, a prefill)."""
        raise NotImplementedError

    def tool_definition(self, tool: Tool) -> dict[str, Any]:
        raise NotImplementedError

    def tool_choice_named(self, name: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def tool_choice_sendable(self, choice: ToolChoice, tools: list[dict[str, Any]]) -> bool:
        return True

    # -- messages -------------------------------------------------------------------------

    def messages(self, body: dict[str, Any]) -> None:
        """The system prompt, then every message in order."""
        self.system()
        last = len(self.req.messages) - 1
        for i, message in enumerate(self.req.messages):
            if message.role == "system":
                self.system_message(i, message)
            elif message.role == "user":
                self.user(i, message)
            else:
                self.assistant_turn(i, message, i == last, body)

    # -- system ---------------------------------------------------------------------------

    def system(self) -> None:
        self.system_parts.extend(system_texts(self.req, self.caps, self.notes))

    def system_message(self, i: int, message: Message) -> None:
        text = system_message_text(message)
        if system_message_keep(i, self.caps, self.notes, hoisted_into=self.hoisted_into):
            self.items.append(self.system_item(text))
        elif text:
            self.system_parts.append(text)

    # -- user -----------------------------------------------------------------------------

    def user(self, i: int, message: Message) -> None:
        results: list[dict[str, Any]] = []
        media: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        for j, block in enumerate(message.blocks()):
            path = f"messages[{i}].content[{j}]"
            if isinstance(block, ToolResultBlock):
                results.append(self.tool_result(path, block, media))
            else:
                self.user_part(path, block, parts)
        # Tool results first: they answer the calls of the previous turn.
        self.items.extend(results)
        if media:
            self.items.append(self.media_item(media))
        if parts:
            self.items.append(self.user_item(parts))
        elif not results and not media:
            self.note("message.drop_empty", f"messages[{i}]", "Dropped a user message left with no content.")

    def user_part(self, path: str, block: Any, parts: list[dict[str, Any]]) -> None:
        if isinstance(block, TextBlock):
            if block.text:
                parts.append(self.text_part(block.text))
        elif isinstance(block, ImageBlock):
            image = image_policy(path, block, self.caps, self.notes, backend=self.backend)
            if image is not None:
                kind, value = image
                parts.append(self.text_part(value) if kind == "text" else self.image_part(value))
        elif isinstance(block, DocumentBlock):
            self.document(path, block, parts)
        elif isinstance(block, SearchResultBlock):
            parts.append(self.text_part(search_result_text(block)))
            self.note("search_result.flatten", path, "Flattened a search_result block to text.")
        else:  # server tool, thinking, redacted thinking, tool_use
            self.note("block.drop", path, f"Dropped a {block.type} block from a user message.")

    def document_text(self, kind: str, source: dict[str, Any]) -> str:
        content = source.get("data", "") if kind == "text" else source.get("content")
        if isinstance(content, str):
            return content
        return "\n\n".join(str(c.get("text", "")) for c in content or [] if isinstance(c, dict))

    def document(self, path: str, block: DocumentBlock, parts: list[dict[str, Any]]) -> None:
        source = block.source
        kind = source.get("type")
        title = block.title or ""
        if kind in ("text", "content"):
            text = self.document_text(kind, source)
            parts.append(self.text_part(f"{title}\n\n{text}" if title else text))
            self.note("document.flatten", path, f"Sent a {self.document_kinds[kind]} document as text.")
        elif kind == "base64":
            media_type = source.get("media_type", "application/pdf")
            parts.append(self.file_part(path, f"data:{media_type};base64,{source.get('data', '')}",
                                        title or "document.pdf"))
        else:
            part = self.url_document(path, kind, source.get("url"), title)
            if part is not None:
                parts.append(part)
            else:
                self.note("document.drop", path, f"Dropped a document with a {kind!r} source.")

    # -- tools ----------------------------------------------------------------------------

    def tools(self, body: dict[str, Any]) -> None:
        req = self.req
        tools: list[dict[str, Any]] = []
        for k, tool in enumerate(req.tools or []):
            if tool.type not in (None, "custom"):
                self.note("tools.drop_server_tool", f"tools[{k}]",
                          f"Dropped server tool {tool.name!r} ({tool.type}): the backend cannot run it.")
                continue
            tools.append(self.tool_definition(tool))
        choice = req.tool_choice
        if not tools:
            # vLLM 400s on tools: [] and on tool_choice without tools.
            if choice is not None:
                self.note("tool_choice.drop", "tool_choice", "Dropped tool_choice: no tools are sent.")
            return
        body["tools"] = tools
        if choice is None or not self.tool_choice_sendable(choice, tools):
            return
        self.tool_choice(choice.type, choice.name, body)
        if choice.disable_parallel_tool_use and (self.parallel_without_tools or "tools" in body):
            if self.caps.parallel_tool_calls:
                body["parallel_tool_calls"] = False
            else:
                self.note("parallel_tool_calls.drop", "tool_choice.disable_parallel_tool_use",
                          "Not sent: the backend does not accept parallel_tool_calls.")

    def tool_choice(self, kind: str, name: str | None, body: dict[str, Any]) -> None:
        mapped: Any = self.tool_choice_named(name) if kind == "tool" else {
            "auto": "auto", "any": "required", "none": "none"}[kind]
        tool_choice_apply(kind, mapped, body, self.caps, self.notes)

    # -- request fields -------------------------------------------------------------------

    def max_tokens(self, body: dict[str, Any], field: str) -> None:
        max_tokens = self.req.max_tokens
        cap = self.caps.max_tokens_cap
        if cap and max_tokens > cap:
            self.note("max_tokens.clamp", field,
                      f"max_tokens {max_tokens} is above the backend's limit; sent {cap} "
                      "(capability max_tokens_cap).")
            max_tokens = cap
        body[field] = max_tokens

    def sampling(self, body: dict[str, Any]) -> None:
        """temperature and top_p (top_k differs by protocol)."""
        req = self.req
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            if self.caps.sampling_exclusive and req.temperature is not None:
                self.note("top_p.drop", "top_p", "Dropped top_p: the backend rejects it together with temperature.")
            else:
                body["top_p"] = req.top_p

    def unmapped(self) -> None:
        dropped = fields_unmapped(self.req)
        if dropped:
            self.note("fields.drop", ",".join(dropped),
                      f"Not forwarded (no {self.api} equivalent): {', '.join(dropped)}.")


USAGE_MISSING_DETAIL = "The backend reported no usage; input tokens are estimated."


def message_out(*, request: MessagesRequest, message_id: str, content: list[dict[str, Any]],
                stop_reason: str, stop_sequence: str | None, usage: Any,
                usage_map: Callable[..., dict[str, int]], input_tokens_estimate: int,
                notes: list[RewriteNote]) -> dict[str, Any]:
    """The Anthropic Message; ``usage`` is the backend's, mapped by ``usage_map`` (a note when missing)."""
    if not isinstance(usage, dict):
        usage = None
        notes.append(RewriteNote("usage.missing", "usage", USAGE_MISSING_DETAIL))
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_map(usage, input_tokens_estimate=input_tokens_estimate),
    }
