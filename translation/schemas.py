"""The Anthropic Messages API request, as the gateway accepts it (protocol.md §1).

Models are permissive where Anthropic is (unknown top-level fields and block fields are kept,
so passthrough backends see them byte for byte) and strict where a wrong value would otherwise
surface as a backend 500 (roles, block types, max_tokens, required fields).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from translation.errors import ApiError


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Base64Source(_Open):
    type: Literal["base64"]
    media_type: str
    data: str


class UrlSource(_Open):
    type: Literal["url"]
    url: str


class FileSource(_Open):
    type: Literal["file"]
    file_id: str


ImageSource = Annotated[Base64Source | UrlSource | FileSource, Field(discriminator="type")]


class TextBlock(_Open):
    type: Literal["text"]
    text: str


class ImageBlock(_Open):
    type: Literal["image"]
    source: ImageSource


class DocumentBlock(_Open):
    type: Literal["document"]
    source: dict[str, Any]
    title: str | None = None


class SearchResultBlock(_Open):
    type: Literal["search_result"]
    source: str = ""
    title: str = ""
    content: list[TextBlock] = []


class ToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[TextBlock | ImageBlock | DocumentBlock | SearchResultBlock,
                                  Field(discriminator="type")]] | None = None
    is_error: bool | None = None


class ThinkingBlock(_Open):
    type: Literal["thinking"]
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(_Open):
    type: Literal["redacted_thinking"]
    data: str


class ServerToolBlock(_Open):
    """Server tool calls and results (web search, code execution, ...): kept opaque."""

    type: Literal[
        "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
        "code_execution_tool_result", "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result", "tool_search_tool_result", "container_upload",
        "mcp_tool_use", "mcp_tool_result",
    ]


ContentBlock = Annotated[
    TextBlock | ImageBlock | DocumentBlock | SearchResultBlock | ToolUseBlock | ToolResultBlock
    | ThinkingBlock | RedactedThinkingBlock | ServerToolBlock,
    Field(discriminator="type"),
]


class Message(_Open):
    # "system" appears mid-conversation in Claude Code >= 2.1.154 (field reports #1, #2).
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]

    def blocks(self) -> list[Any]:
        """Content as a list of blocks (a string is one text block)."""
        if isinstance(self.content, str):
            return [TextBlock(type="text", text=self.content)]
        return list(self.content)


class Tool(_Open):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None  # "custom" or a server tool version such as web_search_20250305


class ToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(_Open):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None


class Metadata(_Open):
    user_id: str | None = None


class MessagesRequest(_Open):
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=0)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    metadata: Metadata | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: dict[str, Any] | None = None

    def system_text(self) -> str:
        if self.system is None:
            return ""
        if isinstance(self.system, str):
            return self.system
        return "\n\n".join(b.text for b in self.system)

    def has_prefill(self) -> bool:
        return self.messages[-1].role == "assistant"


class CountTokensRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None

    def as_messages_request(self) -> MessagesRequest:
        data = self.model_dump(exclude_none=True)
        return MessagesRequest.model_validate({**data, "max_tokens": 1})


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """Anthropic-style path ("messages.0.content.1.text") from a pydantic location.

    pydantic inserts union tags ("text", "list[...]", "str") into locations; walking the input
    alongside tells a tag from a real key.
    """
    parts: list[str] = []
    node = data
    tag_skipped_at = None
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node:
            if tag_skipped_at is not node and (
                node.get("type") == part or part.startswith(("list[", "str", "function-"))
            ):
                tag_skipped_at = node
                continue
        elif isinstance(node, list) and not isinstance(part, int):
            continue
        elif isinstance(node, str):
            continue
        parts.append(str(part))
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts)


def validation_message(exc: ValidationError, data: Any = None) -> str:
    errors = exc.errors(include_url=False)
    # For a union such as ``content: str | list[block]`` the deepest error is the useful one.
    first = max(errors, key=lambda e: len(e["loc"]))
    where = _location(tuple(first["loc"]), data)
    msg = first["msg"]
    if first["type"] == "union_tag_invalid":
        ctx = first.get("ctx") or {}
        msg = f"unknown block type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    elif first["type"] == "literal_error" and where.endswith("role"):
        msg = (f"Unexpected role {first.get('input')!r}. The input message role must be "
               "'user' or 'assistant' (or 'system')")
    text = f"{where}: {msg}" if where else msg
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return text


def messages_request_parse(raw: bytes | str) -> MessagesRequest:
    """Parse and validate a request body; any problem is a 400 that says what to fix."""
    return _parse(MessagesRequest, raw)


def count_tokens_request_parse(raw: bytes | str) -> CountTokensRequest:
    return _parse(CountTokensRequest, raw)


def _parse(model: type[Any], raw: bytes | str) -> Any:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, f"Request body is not valid JSON: {first['msg']}") from None
        if first["type"] == "model_type" and not first["loc"]:
            raise ApiError(400, "Request body must be a JSON object") from None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        raise ApiError(400, validation_message(exc, data)) from None
