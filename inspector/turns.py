"""Between turns: what a request changed in the prompt compared with the previous request of the
same agent. Pure functions of two decoded bodies (no Django).

A backend caches a prompt by its prefix, so what matters is the first place the new prompt
differs from the old one. The sections are compared in the order a backend builds the prompt:
``tools``, then ``system``, then ``messages`` (Anthropic's documented cache order: "tools, system,
then messages"; OpenAI Chat bodies have no ``system`` key, their system prompt is
``messages[0]``; Responses bodies are ``tools``, ``instructions``, ``input``). Only the last
section may grow: the normal turn re-sends the previous messages and appends new ones. Any other
difference is a prefix break, reported at its path (``system[2].text``,
``messages[3].content[0].text``) and, inside a string, at the character where it starts.

``cache_control`` keys are ignored: Claude Code moves the breakpoint to the last message every
turn, which changes no prompt token. A string ``content`` equals the one text block it is
shorthand for. Other parameters (``max_tokens``, ``temperature``, ``thinking``) are not part of
the compared prefix; a model change is reported beside the outcome.

Cost: equal subtrees are skipped by ``==`` (C speed); only a differing subtree is walked, and a
differing string is measured by a binary search of slice comparisons, so a 30-turn session of
180 KB requests compares in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

ChangeKind = Literal["first", "same", "appended", "prefix_broken", "messages_removed", "unknown"]

# The prompt's sections per body shape, in prompt order; the last one is the growing history.
_SECTIONS_MESSAGES = ("tools", "system", "messages")
_SECTIONS_RESPONSES = ("tools", "instructions", "input")
_IGNORED_KEYS = frozenset({"cache_control"})
_EXCERPT = 40


@dataclass(frozen=True)
class PrefixBreak:
    """Where two prompts first differ: the path, and inside a string the character offset with a
    short excerpt (the common text before it, what it was, what it is now, the common text after)."""

    path: str
    char: int | None = None
    context: str = ""
    was: str = ""
    now: str = ""
    tail: str = ""

    def label(self) -> str:
        return f"{self.path}, char {self.char:,}" if self.char is not None else self.path


@dataclass(frozen=True)
class TurnChange:
    """What one request changed in the prompt compared with the previous one."""

    kind: ChangeKind
    messages_added: int = 0
    bytes_added: int = 0
    messages_removed: int = 0
    broken: PrefixBreak | None = None
    model_before: str = ""
    model_after: str = ""
    tools_added: list[str] = field(default_factory=list)
    tools_removed: list[str] = field(default_factory=list)
    # Names of the tools called in the appended messages (the assistant turns re-sent).
    tool_calls: list[str] = field(default_factory=list)
    reason: str = ""  # why the bodies could not be compared (kind "unknown")

    @property
    def model_changed(self) -> bool:
        return self.model_before != self.model_after

    @property
    def breaks_prefix(self) -> bool:
        return self.broken is not None

    def label(self) -> str:
        """One compact line: "+2 messages (+3,912 bytes)", "prefix broken at system[2].text, char 4,102"."""
        if self.kind == "first":
            return "first turn"
        if self.kind == "unknown":
            return f"not compared: {self.reason}"
        parts: list[str] = []
        if self.kind == "same":
            parts.append("same prompt")
        elif self.kind == "appended":
            parts.append(f"+{self.messages_added} message{'s' if self.messages_added != 1 else ''} "
                         f"(+{self.bytes_added:,} bytes)")
        elif self.kind == "messages_removed":
            parts.append(f"-{self.messages_removed} message{'s' if self.messages_removed != 1 else ''} "
                         "(history compacted or rewound)")
        if self.broken is not None:
            parts.append(f"prefix broken at {self.broken.label()}")
            if self.kind == "prefix_broken" and self.messages_added:
                parts.append(f"+{self.messages_added} message{'s' if self.messages_added != 1 else ''}")
        if self.tools_added:
            parts.append("tools added: " + ", ".join(self.tools_added))
        if self.tools_removed:
            parts.append("tools removed: " + ", ".join(self.tools_removed))
        if self.model_changed:
            parts.append(f"model {self.model_before or '—'} → {self.model_after or '—'}")
        return "; ".join(parts)


def common_prefix_len(a: str, b: str) -> int:
    """The length of the longest common prefix of two strings: a binary search of slice
    comparisons (memcmp), never a per-character loop."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def common_suffix_len(a: str, b: str, limit: int) -> int:
    """The length (at most ``limit``) of the longest common suffix, by the same binary search."""
    lo, hi = 0, min(len(a), len(b), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:len(a) - lo] == b[len(b) - mid:len(b) - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _string_break(path: str, a: str, b: str) -> PrefixBreak:
    """The break inside a string: the differing middle (``was`` → ``now``) between the common
    text before it and the common text after it (``tail``), each cut to a short excerpt."""
    at = common_prefix_len(a, b)
    same_end = common_suffix_len(a, b, min(len(a), len(b)) - at)
    was, now = a[at:len(a) - same_end], b[at:len(b) - same_end]
    return PrefixBreak(path=path, char=at, context=a[max(0, at - _EXCERPT):at], was=_cut(was), now=_cut(now),
                       tail=a[len(a) - same_end:][:_EXCERPT])


def _cut(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def _content_blocks(value: Any) -> Any:
    return [{"type": "text", "text": value}] if isinstance(value, str) else value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def value_difference(a: Any, b: Any, path: str) -> PrefixBreak | None:
    """The first place ``b`` differs from ``a`` (``cache_control`` ignored), or None."""
    if a == b:
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        for key, value in a.items():
            if key in _IGNORED_KEYS:
                continue
            if key not in b:
                return PrefixBreak(path=_join(path, key), was="(present)", now="(removed)")
            other = b[key]
            if key == "content" and isinstance(value, str) != isinstance(other, str):
                value, other = _content_blocks(value), _content_blocks(other)
            found = value_difference(value, other, _join(path, key))
            if found is not None:
                return found
        for key in b:
            if key not in a and key not in _IGNORED_KEYS:
                return PrefixBreak(path=_join(path, key), was="(absent)", now="(added)")
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = value_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        if len(a) != len(b):
            at = min(len(a), len(b))
            return PrefixBreak(path=f"{path}[{at}]", was="(present)" if len(a) > at else "(absent)",
                               now="(added)" if len(b) > at else "(removed)")
        return None
    if isinstance(a, str) and isinstance(b, str):
        return _string_break(path, a, b)
    return PrefixBreak(path=path, was=_short(a), now=_short(b))


def _short(value: Any) -> str:
    return orjson.dumps(value).decode()[:_EXCERPT]


def _tool_name(tool: Any) -> str:
    if not isinstance(tool, dict):
        return "?"
    function = tool.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return str(function["name"])  # OpenAI Chat
    return str(tool.get("name") or tool.get("type") or "?")


def _tool_calls(messages: list[Any]) -> list[str]:
    """Names of the tools called in these messages: Anthropic tool_use blocks, Chat tool_calls,
    Responses function_call items."""
    names: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("type") == "function_call":
            names.append(str(message.get("name", "?")))
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                names.append(_tool_name(call))
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                names.append(str(block.get("name", "?")))
    return names


def _sections(body: dict[str, Any]) -> tuple[str, ...]:
    return _SECTIONS_RESPONSES if "input" in body and "messages" not in body else _SECTIONS_MESSAGES


def turn_change(previous: Any, current: Any) -> TurnChange:
    """What ``current`` (a request body) changed compared with ``previous`` (the same agent's
    request before it; None for an agent's first turn)."""
    if previous is None:
        return TurnChange(kind="first", model_after=_model(current))
    if not isinstance(previous, dict) or not isinstance(current, dict):
        return TurnChange(kind="unknown", reason="a body was not recorded as JSON")
    if previous.get("_truncated") or current.get("_truncated"):
        return TurnChange(kind="unknown", reason="a body was truncated when it was recorded")
    models = {"model_before": _model(previous), "model_after": _model(current)}
    tools = _tools_changed(previous.get("tools"), current.get("tools"))
    *fixed, history = _sections(current)
    for name in fixed:
        broken = value_difference(previous.get(name), current.get(name), name)
        if broken is not None:
            return _with_history(previous.get(history), current.get(history), history, broken=broken,
                                 **models, **tools)
    return _with_history(previous.get(history), current.get(history), history, broken=None, **models, **tools)


def _with_history(before: Any, after: Any, name: str, *, broken: PrefixBreak | None, **extra: Any) -> TurnChange:
    """The outcome given the growing section (messages, input) and a break found before it."""
    if not isinstance(before, list) or not isinstance(after, list):
        found = broken or value_difference(before, after, name)
        return TurnChange(kind="prefix_broken" if found else "same", broken=found, **extra)
    kept = min(len(before), len(after))
    if broken is None:
        broken = value_difference(before[:kept], after[:kept], name)
    if len(after) < len(before):
        if broken is None:
            broken = PrefixBreak(path=f"{name}[{kept}]", was="(present)", now="(removed)")
        return TurnChange(kind="messages_removed", messages_removed=len(before) - len(after), broken=broken, **extra)
    appended = after[len(before):]
    kind: ChangeKind = "prefix_broken" if broken is not None else "appended" if appended else "same"
    return TurnChange(kind=kind, broken=broken, messages_added=len(appended),
                      bytes_added=len(orjson.dumps(appended)) if appended else 0, tool_calls=_tool_calls(appended),
                      **extra)


def _model(body: Any) -> str:
    return str(body.get("model") or "") if isinstance(body, dict) else ""


def _tools_changed(before: Any, after: Any) -> dict[str, list[str]]:
    names_before = [_tool_name(t) for t in before] if isinstance(before, list) else []
    names_after = [_tool_name(t) for t in after] if isinstance(after, list) else []
    return {"tools_added": [n for n in names_after if n not in names_before],
            "tools_removed": [n for n in names_before if n not in names_after]}
