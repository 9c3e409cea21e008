"""A local, deliberately generous token estimate for ``count_tokens`` and ``message_start``.

Claude Code calls ``count_tokens`` to decide when to compact (field report #19): an estimate
that undercounts lets the context overflow on the backend, one that overcounts only compacts a
little early. So the estimate errs high:

- text (system, message text, thinking, tool results, tool names, descriptions, schemas as
  compact JSON, tool inputs as compact JSON): ``ceil(chars / 3)``. BPE tokenizers average about
  4 characters per token on English and 3-3.5 on code and JSON; 3 covers both, and non-ASCII
  text (often one token per 1-2 characters) is counted by UTF-8 bytes / 3 instead of chars / 3;
- 4 tokens per message and 3 per content block (role markers, block separators);
- 10 tokens per tool plus its JSON, and 10 for the tools preamble;
- images: 1,600 tokens each (Anthropic's documented ceiling for a resized image);
- base64 documents: decoded bytes / 3 (PDF text is far denser, but pages also cost image
  tokens on some backends).

Exact counts need the backend's tokenizer (vLLM ``/tokenize``); that is the gateway's job.
"""

from __future__ import annotations

from typing import Any

from translation.jsonbytes import json_bytes
from translation.schemas import (
    CountTokensRequest,
    DocumentBlock,
    ImageBlock,
    MessagesRequest,
    SearchResultBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)

CHARS_PER_TOKEN = 3
PER_MESSAGE = 4
PER_BLOCK = 3
PER_TOOL = 10
IMAGE_TOKENS = 1600


def _chars(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _json_chars(value: Any) -> int:
    return len(json_bytes(value))


def _block_chars(block: Any) -> tuple[int, int]:
    """(characters, fixed tokens) of one content block."""
    if isinstance(block, TextBlock):
        return _chars(block.text), 0
    if isinstance(block, ThinkingBlock):
        return _chars(block.thinking), 0
    if isinstance(block, ToolUseBlock):
        return _chars(block.name) + _json_chars(block.input), 0
    if isinstance(block, ImageBlock):
        return 0, IMAGE_TOKENS
    if isinstance(block, SearchResultBlock):
        return _chars(block.title) + _chars(block.source) + sum(_chars(b.text) for b in block.content), 0
    if isinstance(block, DocumentBlock):
        data = block.source.get("data")
        if block.source.get("type") == "base64" and isinstance(data, str):
            return len(data) * 3 // 4, 0
        return _json_chars(block.source), 0
    if isinstance(block, ToolResultBlock):
        content = block.content
        if isinstance(content, str):
            return _chars(content), 0
        chars = fixed = 0
        for item in content or []:
            c, f = _block_chars(item)
            chars, fixed = chars + c, fixed + f + PER_BLOCK
        return chars, fixed
    # redacted thinking and server tool blocks: their JSON
    return _json_chars(block.model_dump(exclude_none=True)), 0


def tokens_estimate(req: MessagesRequest | CountTokensRequest) -> int:
    """Estimated input tokens of a request; never lower than typical real counts (see module doc)."""
    system = req.system
    if isinstance(system, str):
        chars = _chars(system)
    else:
        chars = sum(_chars(b.text) for b in system or [])
    fixed = PER_MESSAGE if system else 0
    for message in req.messages:
        fixed += PER_MESSAGE
        for block in message.blocks():
            c, f = _block_chars(block)
            chars += c
            fixed += f + PER_BLOCK
    if req.tools:
        fixed += PER_TOOL
        for tool in req.tools:
            fixed += PER_TOOL
            chars += _chars(tool.name) + _chars(tool.description or "")
            if tool.input_schema is not None:
                chars += _json_chars(tool.input_schema)
    return fixed + -(-chars // CHARS_PER_TOKEN)
