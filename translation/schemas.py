"""The Anthropic Messages API request, as the gateway accepts it (Anthropic Messages API reference).

Models are permissive where Anthropic is (unknown top-level fields and block fields are kept,
so passthrough backends see them byte for byte) and strict where a wrong value would otherwise
surface as a backend 500 (roles, block types, max_tokens, required fields).
"""

from __future__ import annotations

import binascii
import json
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from translation.errors import ApiError

# No model writes more than this; a bigger max_tokens is a client bug (10**12, a token count
# pasted into the wrong field) and would overflow the 32-bit fields of some backends.
MAX_TOKENS_CEILING = 1 << 20
MODEL_NAME_MAX = 256
# Standard base64 with padding, what binascii's strict mode accepts (documented in the schema;
# checked by ``messages_check``, not by the model, so translator tests may use fragments).
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Base64Source(_Open):
    type: Literal["base64"]
    media_type: str
    data: str = Field(json_schema_extra={"pattern": BASE64_PATTERN, "minLength": 1, "contentEncoding": "base64"})


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
    # "between_tools": think only between tool calls (anthropic-sdk-python 2.x
    # ``thinking_config_between_tools_param.py``). ``display`` ("summarized" | "omitted") is kept
    # as an extra field: omitted means thinking blocks carry a signature and no text.
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = None


class Metadata(_Open):
    user_id: str | None = None


class MessagesRequest(_Open):
    model: str = Field(min_length=1, max_length=MODEL_NAME_MAX)
    # 0 is valid: Anthropic answers with no content (a prompt-cache pre-warm, Anthropic Messages API reference).
    max_tokens: int = Field(ge=0, le=MAX_TOKENS_CEILING)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    metadata: Metadata | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    # Anthropic's ranges (Messages API reference: temperature and top_p 0.0-1.0, top_k >= 0);
    # a value outside them is the client's 400 here, never a backend's guess.
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
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
    model: str = Field(min_length=1, max_length=MODEL_NAME_MAX)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None

    def as_messages_request(self) -> MessagesRequest:
        data = self.model_dump(exclude_none=True)
        return MessagesRequest.model_validate({**data, "max_tokens": 1})


# Responses: what the gateway sends back, described for the OpenAPI document (gateway.api) and
# checked against real responses by the schemathesis test. Translators build plain dicts.

ErrorType = Literal[
    "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
    "request_too_large", "rate_limit_error", "api_error", "timeout_error", "overloaded_error",
]
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class ErrorDetail(BaseModel):
    type: ErrorType
    message: str


class ErrorResponse(BaseModel):
    """Anthropic's error envelope; ``request_id`` equals the ``request-id`` header."""

    type: Literal["error"]
    error: ErrorDetail
    request_id: str


class Usage(_Open):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


ResponseBlock = Annotated[
    TextBlock | ThinkingBlock | RedactedThinkingBlock | ToolUseBlock | ServerToolBlock,
    Field(discriminator="type"),
]


class MessageResponse(_Open):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ResponseBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


class MessageStartEvent(BaseModel):
    type: Literal["message_start"]
    message: MessageResponse


class ContentBlockStartEvent(BaseModel):
    type: Literal["content_block_start"]
    index: int = Field(ge=0)
    content_block: ResponseBlock


class TextDelta(_Open):
    type: Literal["text_delta"]
    text: str


class InputJsonDelta(_Open):
    type: Literal["input_json_delta"]
    partial_json: str


class ThinkingDelta(_Open):
    type: Literal["thinking_delta"]
    thinking: str


class SignatureDelta(_Open):
    type: Literal["signature_delta"]
    signature: str


class ContentBlockDeltaEvent(BaseModel):
    type: Literal["content_block_delta"]
    index: int = Field(ge=0)
    delta: Annotated[TextDelta | InputJsonDelta | ThinkingDelta | SignatureDelta, Field(discriminator="type")]


class ContentBlockStopEvent(BaseModel):
    type: Literal["content_block_stop"]
    index: int = Field(ge=0)


class MessageDeltaBody(_Open):
    stop_reason: StopReason | None
    stop_sequence: str | None


class MessageDeltaEvent(BaseModel):
    type: Literal["message_delta"]
    delta: MessageDeltaBody
    usage: dict[str, Any]


class MessageStopEvent(BaseModel):
    type: Literal["message_stop"]


class PingEvent(BaseModel):
    type: Literal["ping"]


class ErrorEvent(BaseModel):
    """A failure after the stream started (HTTP 200 already sent)."""

    type: Literal["error"]
    error: ErrorDetail


# SSE event name -> the JSON in its data line (Anthropic docs, streaming messages: ``event: NAME`` / ``data: JSON``).
STREAM_EVENTS: dict[str, type[BaseModel]] = {
    "message_start": MessageStartEvent, "content_block_start": ContentBlockStartEvent,
    "content_block_delta": ContentBlockDeltaEvent, "content_block_stop": ContentBlockStopEvent,
    "message_delta": MessageDeltaEvent, "message_stop": MessageStopEvent, "ping": PingEvent,
    "error": ErrorEvent,
}


class CountTokensResponse(BaseModel):
    input_tokens: int = Field(ge=0)


class ModelInfo(BaseModel):
    type: Literal["model"]
    id: str
    display_name: str
    created_at: str
    # The route's context_window (prompt and output), when the operator or the probe set one.
    max_input_tokens: int | None = Field(None, ge=1)


class ModelList(BaseModel):
    data: list[ModelInfo]
    has_more: bool
    first_id: str | None
    last_id: str | None


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
    req: MessagesRequest = _parse(MessagesRequest, raw)
    messages_check(req.messages)
    return req


def count_tokens_request_parse(raw: bytes | str) -> CountTokensRequest:
    req: CountTokensRequest = _parse(CountTokensRequest, raw)
    messages_check(req.messages)
    return req


def _parse(model: type[Any], raw: bytes | str) -> Any:
    if not raw:
        raise ApiError(400, "Request body is empty: send the request as a JSON object")
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, _json_problem(raw, first["msg"])) from None
        if first["type"] == "model_type" and not first["loc"]:
            raise ApiError(400, "Request body must be a JSON object") from None
        _nan_check(raw)  # a NaN temperature is bad JSON first, out of range second
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        raise ApiError(400, validation_message(exc, data)) from None
    _nan_check(raw)
    return parsed


def _nan_check(raw: bytes | str) -> None:
    """pydantic reads NaN and Infinity, which are not JSON (RFC 8259 §6) and would reach the
    backend as null; the substring test keeps the exact check off the common path."""
    if (b"NaN" in raw or b"Infinity" in raw) if isinstance(raw, bytes) else ("NaN" in raw or "Infinity" in raw):
        try:
            pydantic_core.from_json(raw, allow_inf_nan=False)
        except ValueError as exc:
            raise ApiError(400, f"Request body is not valid JSON: {exc} (NaN and Infinity are not JSON "
                                "numbers)") from None


def _json_problem(raw: bytes | str, detail: str) -> str:
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return (f"Request body is not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}; "
                    "send JSON encoded as UTF-8")
    if "recursion limit" in detail:
        return "Request body is nested too deeply: JSON may nest at most 200 arrays and objects"
    return f"Request body is not valid JSON: {detail}"


def messages_check(messages: list[Message]) -> None:
    """What the schema cannot say (Anthropic enforces both): base64 data must decode, and each
    ``tool_result`` answers a ``tool_use`` of the assistant message before it."""
    offered: set[str] = set()
    for i, message in enumerate(messages):
        if message.role == "assistant":
            offered = {b.id for b in message.blocks() if isinstance(b, ToolUseBlock)}
        if isinstance(message.content, str):
            continue
        for j, block in enumerate(message.content):
            path = f"messages.{i}.content.{j}"
            _base64_check(block, path)
            if isinstance(block, ToolResultBlock):
                if message.role != "user" or block.tool_use_id not in offered:
                    raise ApiError(400, f"{path}: unexpected `tool_use_id` found in `tool_result` blocks: "
                                        f"{block.tool_use_id}. Each `tool_result` block must have a corresponding "
                                        "`tool_use` block in the previous assistant message")
                if isinstance(block.content, list):
                    for k, inner in enumerate(block.content):
                        _base64_check(inner, f"{path}.content.{k}")


def _base64_check(block: Any, path: str) -> None:
    source = getattr(block, "source", None)
    if isinstance(source, Base64Source):
        data: Any = source.data
    elif isinstance(source, dict) and source.get("type") == "base64":
        data = source.get("data")
    else:
        return
    problem = "is empty" if data == "" else None
    if problem is None:
        try:
            binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError, AttributeError) as exc:
            problem = f"is not valid base64 ({exc})"
    if problem:
        raise ApiError(400, f"{path}.source.data: {problem}; send the raw bytes base64-encoded "
                            "(standard alphabet, padded, no data: URL prefix)")
