"""A Messages request or message read as the conversation it is: the system prompt, the tools
as a short list, each turn's blocks (text, tool calls and results, thinking, images, documents).

Pure functions of the stored body, building plain dicts the exchange page's templates loop over
(``exchange_conversation.html``, ``exchange_blocks.html``): no per-character work in templates, and
every string stays text (the templates autoescape; bodies are untrusted).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

# A text longer than this is folded behind its first lines.
LONG_TEXT = 1500
PREVIEW = 300
# Inline images up to this many base64 characters (about 1.5 MB decoded); larger ones are named only.
IMAGE_INLINE_MAX = 2_000_000
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def _size(n: int) -> str:
    return f"{n} chars" if n < 10_000 else f"{n / 1000:.1f} k chars"


def text_item(text: str) -> dict[str, Any]:
    long = len(text) > LONG_TEXT
    return {"kind": "text", "text": text, "long": long, "size": _size(len(text)),
            "preview": text[:PREVIEW].split("\n\n", 1)[0] if long else ""}


def _source(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    return source if isinstance(source, dict) else {}


def _image(block: dict[str, Any]) -> dict[str, Any]:
    source = _source(block)
    kind = source.get("type")
    if kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
        return {"kind": "image", "url": url if url.startswith(("https://", "http://")) else "", "label": url}
    data, media = source.get("data"), source.get("media_type")
    if kind == "base64" and isinstance(data, str):
        label = f"{media}, {len(data) * 3 // 4 // 1024} KB"
        if media in _IMAGE_TYPES and len(data) <= IMAGE_INLINE_MAX and _BASE64.fullmatch(data):
            return {"kind": "image", "src": f"data:{media};base64,{data}", "label": label}
        return {"kind": "image", "label": f"{label} (not shown inline)"}
    return {"kind": "other", "type": "image", "json": _pretty(block)}


def _document(block: dict[str, Any]) -> dict[str, Any]:
    source = _source(block)
    item: dict[str, Any] = {"kind": "document", "title": str(block.get("title") or ""),
                            "source_type": str(source.get("type") or ""), "media_type": str(source.get("media_type") or "")}
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        item["text_list"] = [text_item(source["data"])]
    elif isinstance(source.get("data"), str):
        item["size"] = f"{len(source['data']) * 3 // 4 // 1024} KB"
    elif isinstance(source.get("url"), str):
        item["url"] = source["url"]
    elif isinstance(source.get("content"), list):
        item["blocks"] = content_blocks(source["content"])
    return item


def block_item(block: Any) -> dict[str, Any]:
    """One content block as the page shows it."""
    if isinstance(block, str):
        return text_item(block)
    if not isinstance(block, dict):
        return {"kind": "other", "type": type(block).__name__, "json": _pretty(block)}
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return text_item(block["text"])
    if kind in ("tool_use", "server_tool_use"):
        return {"kind": "tool_use", "name": str(block.get("name", "")), "id": str(block.get("id", "")),
                "input": _pretty(block.get("input"))}
    if kind == "tool_result" or str(kind).endswith("_tool_result"):
        content = block.get("content")
        return {"kind": "tool_result", "id": str(block.get("tool_use_id", "")), "is_error": bool(block.get("is_error")),
                "blocks": content_blocks(content) if content is not None else []}
    if kind == "thinking":
        thinking = str(block.get("thinking", ""))
        return {"kind": "thinking", "text": thinking, "size": _size(len(thinking)),
                "signature": len(str(block.get("signature") or ""))}
    if kind == "redacted_thinking":
        return {"kind": "redacted_thinking", "size": _size(len(str(block.get("data") or "")))}
    if kind == "image":
        return _image(block)
    if kind == "document":
        return _document(block)
    return {"kind": "other", "type": str(kind), "json": _pretty(block)}


def content_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [block_item(b) for b in content]
    return [block_item(content)] if content is not None else []


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict):
        return {"name": "?", "summary": "", "params": [], "schema": _pretty(tool)}
    schema = tool.get("input_schema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    required = set(schema.get("required") or []) if isinstance(schema, dict) else set()
    params = [f"{name}{'' if name in required else '?'}" for name in properties] if isinstance(properties, dict) else []
    description = str(tool.get("description") or "")
    return {"name": str(tool.get("name") or tool.get("type") or "?"), "summary": description.strip().split("\n", 1)[0][:200],
            "size": _size(len(description)), "params": params, "schema": _pretty(tool)}


def request_conversation(body: Any) -> dict[str, Any] | None:
    """A Messages (or count_tokens) request body as its conversation; None when it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    system = body.get("system")
    messages = [{"role": str(m.get("role", "?")) if isinstance(m, dict) else "?",
                 "blocks": content_blocks(m.get("content") if isinstance(m, dict) else m)} for m in body["messages"]]
    tools = body.get("tools")
    params = [(k, v if isinstance(v, str | int | float | bool) else orjson.dumps(v, default=str).decode()[:300])
              for k, v in body.items() if k not in ("system", "messages", "tools")]
    return {"system": content_blocks(system) if system is not None else [],
            "system_size": _size(len(system) if isinstance(system, str) else
                                 sum(len(str(b.get("text", ""))) for b in system if isinstance(b, dict))
                                 if isinstance(system, list) else 0),
            "tools": [_tool(t) for t in tools] if isinstance(tools, list) else [],
            "messages": messages, "params": params}


def message_conversation(message: Any) -> dict[str, Any] | None:
    """A response message (or what the stream's events folded into) as one assistant turn."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return None
    return {"role": str(message.get("role", "assistant")), "blocks": content_blocks(message["content"]),
            "stop_reason": str(message.get("stop_reason") or ""), "model": str(message.get("model") or "")}
