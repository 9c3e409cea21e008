"""Local token estimates: for ``count_tokens`` when the backend cannot count, and ``message_start``.

Claude Code calls ``count_tokens`` to decide when to compact (field report #19): an estimate
that undercounts lets the context overflow on the backend, one that overcounts only compacts a
little early. So the estimates err high.

``tokens_estimate_body`` estimates the *translated* upstream body (Chat Completions, Responses
or Anthropic): what the backend will really be sent, prefill rewrite and hoisted system text
included, plus what its chat template adds around each message, tool call, tool result and the
tools list. Text is counted by ``text_tokens``, or by a real tokenizer when the caller has one
(``counter``: any ``str -> int``, e.g. ``lambda s: len(tok.encode(s, add_special_tokens=False))``
for a ``tokenizers.Tokenizer`` loaded from the model's own ``tokenizer.json``); only the template
overhead is then estimated.

``text_tokens`` is dependency-free and linear in the text: every UTF-8 byte is classed (ASCII
letter, punctuation, digit, space, newline, and the first byte of a non-ASCII character by its
length) and each class costs a fixed fraction of a token. Byte-level BPE tokenizers split text at letter/digit/punctuation boundaries first, so
punctuation and digits cost far more per character than letters: code and JSON come out near
3-3.5 characters per token, English prose near 4, without telling them apart. The weights are a
least-squares fit of SmolLM2's 49k-token vocabulary (the least efficient of those measured, so
the estimate stays high for larger vocabularies) over 828 samples of 3 kB of English, Python,
JSON Schema and filler, times ``MARGIN``; docs/token-estimate.md has the method and the errors
measured against a real llama.cpp server (0 to +10% on Claude Code requests for SmolLM2, +7 to
+23% for the Qwen2.5 and Llama 3.1 tokenizers). It takes about 2 ms for a 140 kB body (one
``bytes.translate`` and a count per class), so it can run on every request.

``tokens_estimate`` is the older estimate of the *client* request (characters / 3).
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable, Iterator, Mapping
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

# text_tokens: tokens per UTF-8 byte of each class (see the module doc and docs/token-estimate.md).
# A character beyond ASCII costs by its first byte, the others (0x80-0xBF) are free: 2-byte ones
# (accents, Cyrillic, Greek) split words, 3-byte ones (CJK, arrows) are about a token each on
# multilingual vocabularies, 4-byte ones (emoji) more.
_LETTER, _PUNCT, _DIGIT, _SPACE, _NEWLINE, _CONT, _LEAD2, _LEAD3, _LEAD4 = b"aPDsnc234"
_WEIGHTS = {_LETTER: 0.303, _PUNCT: 0.390, _DIGIT: 1.33, _SPACE: 0.049, _NEWLINE: 0.263,
            _LEAD2: 0.8, _LEAD3: 1.0, _LEAD4: 2.0}
MARGIN = 1.05


def _byte_classes() -> bytes:
    table = bytearray([_PUNCT]) * 0x80  # control characters: a byte token each, like punctuation
    for chars, cls in ((string.ascii_letters, _LETTER), (string.digits, _DIGIT), (" \t\r\x0b\x0c", _SPACE),
                       ("\n", _NEWLINE)):
        for c in chars:
            table[ord(c)] = cls
    table += bytes([_CONT]) * 0x40 + bytes([_LEAD2]) * 0x20 + bytes([_LEAD3]) * 0x10 + bytes([_LEAD4]) * 0x10
    return bytes(table)


_CLASSES = _byte_classes()
_ASCII = bytes(range(0x80))

# Chat-template overhead, in tokens, measured on ChatML / Hermes-style templates (Qwen2.5, SmolLM2)
# and rounded up: Llama 3 and Gemma templates add about as much, Mistral's less.
TEMPLATE_PER_MESSAGE = 6      # <|im_start|>role\n … <|im_end|>\n
TEMPLATE_PER_TOOL_CALL = 16   # \n<tool_call>\n{"name": "…", "arguments": …}\n</tool_call>
TEMPLATE_PER_TOOL_RESULT = 12  # \n<tool_response>\n … \n</tool_response>
TEMPLATE_TOOLS = 100          # the "# Tools … <tools></tools> … <tool_call>" preamble
TEMPLATE_PER_TOOL = 2         # the line each tool's JSON takes
TEMPLATE_BASE = 40            # the generation prompt, and a default system prompt if none is sent

FLOOR_BYTES_PER_TOKEN = 10  # tokens_floor_body

TextCounter = Callable[[str], int]


def text_tokens(text: str | bytes) -> float:
    """Estimated tokens of ``text`` on a byte-level BPE tokenizer, erring high (module doc)."""
    data = text.encode() if isinstance(text, str) else text
    classes = data.translate(_CLASSES)
    # Letters are what the other ASCII classes leave, so they need no pass of their own; the
    # multi-byte classes are counted on the non-ASCII bytes alone (a few KB of a Claude Code
    # turn's 160 KB): six passes over the text instead of nine, the same counts.
    counts = {cls: classes.count(cls) for cls in (_PUNCT, _DIGIT, _SPACE, _NEWLINE)}
    ascii_bytes = len(data)
    if not data.isascii():
        wide = data.translate(None, _ASCII).translate(_CLASSES)
        ascii_bytes -= len(wide)
        counts.update({cls: wide.count(cls) for cls in (_LEAD2, _LEAD3, _LEAD4)})
    counts[_LETTER] = ascii_bytes - counts[_PUNCT] - counts[_DIGIT] - counts[_SPACE] - counts[_NEWLINE]
    return MARGIN * sum(_WEIGHTS[cls] * n for cls, n in counts.items())


class _Tally:
    """Texts to count, and the fixed tokens (template, images) and messages seen beside them."""

    def __init__(self) -> None:
        self.texts: list[bytes] = []
        self.fixed = 0
        self.messages = 0
        self.tools: list[Any] = []  # tool definitions, counted as the templates render them

    def message(self) -> None:
        self.messages += 1
        self.fixed += TEMPLATE_PER_MESSAGE

    def text(self, value: Any) -> None:
        if isinstance(value, str):
            if value:
                self.texts.append(value.encode())
        elif value is not None:  # tool inputs, schemas: their compact JSON
            self.texts.append(json_bytes(value))

    def total(self, counter: TextCounter | None) -> int:
        if counter is None:
            tools = [json_bytes(tool) for tool in self.tools]
            spaces = sum(data.count(b":") + data.count(b",") for data in tools)
            return self.fixed + math.ceil(text_tokens(b"\n".join(self.texts + tools))
                                          + MARGIN * _WEIGHTS[_SPACE] * spaces)
        tools_text = [json.dumps(tool, ensure_ascii=False, default=str).encode() for tool in self.tools]
        return self.fixed + counter(b"\n".join(self.texts + tools_text).decode())


def _data_url_bytes(url: str) -> int:
    return (len(url) - url.find(",") - 1) * 3 // 4


def _part(t: _Tally, part: Any) -> None:
    """One content part or block of any of the three APIs."""
    if isinstance(part, str):
        t.text(part)
        return
    if not isinstance(part, Mapping):
        t.text(part)
        return
    kind = part.get("type")
    if kind in ("image_url", "input_image", "image"):
        t.fixed += IMAGE_TOKENS
    elif kind in ("file", "input_file", "document"):
        data = part.get("file", part).get("file_data") if kind == "file" else part.get("file_data")
        source = part.get("source")
        if kind == "document" and isinstance(source, Mapping):
            data = source.get("data") if source.get("type") == "base64" else None
            if data is None:
                t.text(source.get("data") if source.get("type") == "text" else source)
        if isinstance(data, str):
            # Extracted PDF text is denser than its bytes; pages may also cost image tokens.
            t.fixed += _data_url_bytes(data) // 3 if data.startswith("data:") else len(data) // 4
        elif kind != "document":
            t.text({k: v for k, v in part.items() if k != "type"})
    elif "text" in part and isinstance(part["text"], str):
        t.text(part["text"])  # text, input_text, output_text, summary_text, reasoning_text
    elif kind == "thinking":
        t.text(part.get("thinking"))
    elif kind == "redacted_thinking":
        t.fixed += len(str(part.get("data", ""))) // 4
    elif kind == "tool_use":
        t.fixed += TEMPLATE_PER_TOOL_CALL
        t.text(part.get("name"))
        t.text(part.get("input"))
    elif kind == "tool_result":
        t.fixed += TEMPLATE_PER_TOOL_RESULT
        _content(t, part.get("content"))
    elif kind == "search_result":
        t.text(part.get("title"))
        t.text(part.get("source"))
        _content(t, part.get("content"))
    else:  # server tool blocks and anything new: their JSON
        t.text(dict(part))


def _content(t: _Tally, content: Any) -> None:
    if isinstance(content, list):
        for part in content:
            _part(t, part)
    elif content is not None:
        _part(t, content)


def _tools(t: _Tally, tools: Any) -> None:
    # Templates render each tool as JSON with spaces (Hermes ``tool | tojson``, Llama 3
    # ``tool | tojson(indent=4)``), and the spaces cost tokens beside the quotes.
    if isinstance(tools, list) and tools:
        t.fixed += TEMPLATE_TOOLS + TEMPLATE_PER_TOOL * len(tools)
        for tool in tools:
            # Compact JSON (orjson: a tenth of json.dumps's time on Claude Code's 94 KB of tools)
            # plus the space after each separator that the templates' JSON has.
            t.tools.append(tool)


def _chat(t: _Tally, body: Mapping[str, Any]) -> None:
    """Chat Completions: ``messages`` (content, tool_calls, reasoning) and ``tools``."""
    for message in body.get("messages") or []:
        t.message()
        if message.get("role") == "tool":
            t.fixed += TEMPLATE_PER_TOOL_RESULT
        _content(t, message.get("content"))
        for key in ("reasoning_content", "reasoning"):
            t.text(message.get(key))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            t.fixed += TEMPLATE_PER_TOOL_CALL
            t.text(function.get("name"))
            t.text(function.get("arguments"))
    _tools(t, body.get("tools"))


def _responses_items(body: Mapping[str, Any]) -> Iterator[Any]:
    items = body.get("input")
    yield from items if isinstance(items, list) else [{"type": "message", "content": items}]


def _responses(t: _Tally, body: Mapping[str, Any]) -> None:
    """Responses: ``instructions``, ``input`` items and ``tools``."""
    if body.get("instructions"):
        t.message()
        t.text(body["instructions"])
    for item in _responses_items(body):
        kind = item.get("type", "message") if isinstance(item, Mapping) else "message"
        if not isinstance(item, Mapping):
            t.message()
            t.text(item)
        elif kind == "message":
            t.message()
            _content(t, item.get("content"))
        elif kind == "function_call":
            t.fixed += TEMPLATE_PER_TOOL_CALL
            t.text(item.get("name"))
            t.text(item.get("arguments"))
        elif kind == "function_call_output":
            t.message()
            t.fixed += TEMPLATE_PER_TOOL_RESULT
            _content(t, item.get("output"))
        elif kind == "reasoning":
            # encrypted_content is opaque here; the backend decides what of it the model sees
            _content(t, item.get("summary"))
            _content(t, item.get("content"))
        else:
            t.text(dict(item))
    _tools(t, body.get("tools"))


def _anthropic(t: _Tally, body: Mapping[str, Any]) -> None:
    """Anthropic Messages: ``system``, ``messages`` blocks and ``tools``."""
    if body.get("system"):
        t.message()
        _content(t, body["system"])
    for message in body.get("messages") or []:
        t.message()
        _content(t, message.get("content"))
    _tools(t, body.get("tools"))


_KINDS: dict[str, Callable[[_Tally, Mapping[str, Any]], None]] = {
    "openai_chat": _chat, "openai_responses": _responses, "anthropic": _anthropic}


def tokens_estimate_body(body: Mapping[str, Any], *, kind: str, counter: TextCounter | None = None) -> int:
    """Estimated input tokens of an upstream request ``body`` of backend ``kind`` (``openai_chat``,
    ``openai_responses`` or ``anthropic``), chat-template overhead included.

    With ``counter`` (a real tokenizer's ``str -> int``) the text is counted exactly and only
    the overhead is estimated; without it ``text_tokens`` estimates, erring high (module doc).
    """
    t = _tally(body, kind)
    t.fixed += TEMPLATE_BASE
    return t.total(counter)


def tokens_floor_body(body: Mapping[str, Any], *, kind: str) -> int:
    """The fewest tokens any tokenizer could give ``body``: a backend count below it is a failed
    count (llama.cpp's ``/tokenize`` answers ``{"tokens": []}`` to a request it ignores).

    Every message costs at least one token (its role marker), and no BPE vocabulary comes near
    10 bytes of text per token: the most efficient measured (o200k, Llama 3, Qwen 151k) average
    3.7-4.5 on English, code and JSON, and the densest 3 kB sample of 800 (code with long runs of
    spaces) reached 7.5 (docs/token-estimate.md). Images and template text are left out, so the
    floor stays well below any real count while an empty or truncated answer falls under it.
    """
    t = _tally(body, kind)
    size = sum(map(len, t.texts)) + sum(len(json_bytes(tool)) for tool in t.tools)
    return max(t.messages, size // FLOOR_BYTES_PER_TOKEN)


def _tally(body: Mapping[str, Any], kind: str) -> _Tally:
    try:
        walk = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown body kind {kind!r}; choose one of {', '.join(_KINDS)}") from None
    t = _Tally()
    walk(t, body)
    return t


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
    """Estimated input tokens of a *client* request at characters / 3 (``tokens_estimate_body``
    estimates the translated request better)."""
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
