"""Anthropic Messages request -> a native Anthropic backend (README, Native Anthropic backends).

The body is the client's own JSON (unknown fields kept, thinking blocks and signatures byte for
byte); only the rewrites ``Capabilities`` call for are applied, each leaving a ``RewriteNote``:
gateway-minted thinking never reaches Claude (it rejects foreign signatures), replayed tool ids
from other backends are made valid, prefill is shaped for models that reject it (Claude 4.6+),
and request details some endpoints refuse (temperature with top_p, cache_control extensions,
large max_tokens, mid-conversation system messages) are fixed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from translation.body import body_extras_apply
from translation.capabilities import Capabilities
from translation.notes import RewriteNote
from translation.prefill import BILLING_HEADER_PREFIX, PREFILL_TRIM_DETAIL, PrefillPlan, prefill_plan
from translation.rewrites import system_message_keep
from translation.schemas import MessagesRequest
from translation.signature import SIGNATURE_PREFIX, signature_read

ANTHROPIC_VERSION = "2023-06-01"

# Anthropic validates replayed ids (anthropic-sdk-python types/message_param.py): client tool ids, and server tool ids.
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_TOOL_ID_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
SERVER_TOOL_ID_PREFIX = "srvtoolu_"
# Server tool result blocks (web_search_tool_result, ...); MCP blocks carry their own ids.
_SERVER_RESULT_SUFFIX = "_tool_result"
_MCP_TYPES = ("mcp_tool_use", "mcp_tool_result")


def tool_ids_map(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Invalid client tool ids -> valid ones, the same for a tool_use and its tool_result.

    Invalid characters become ``_``; a result that collides with another id in the request gets
    ``_2``, ``_3``, ... so two different calls never share an id.
    """
    ids: list[str] = []
    for message in messages:
        content = message.get("content")
        for block in content if isinstance(content, list) else ():
            if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                ids.append(block["id"])
            elif block.get("type") == "tool_result" and isinstance(block.get("tool_use_id"), str):
                ids.append(block["tool_use_id"])
    used = {i for i in ids if _TOOL_ID.match(i)}
    mapping: dict[str, str] = {}
    for original in ids:
        if original in used or original in mapping:
            continue
        base = _TOOL_ID_INVALID.sub("_", original) or "toolu"
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        mapping[original] = candidate
    return mapping


def _gateway_thinking(block: dict[str, Any]) -> bool:
    """A thinking block Claude would reject: signed by the gateway (or not signed at all)."""
    if block.get("type") == "thinking":
        signature = block.get("signature")
        return not isinstance(signature, str) or not signature or signature_read(signature) is not None
    if block.get("type") == "redacted_thinking":
        data = block.get("data")
        return isinstance(data, str) and data.startswith(SIGNATURE_PREFIX)
    return False


def _foreign_server_block(block: dict[str, Any]) -> bool:
    btype = block.get("type")
    if not isinstance(btype, str) or btype in _MCP_TYPES:
        return False
    if btype == "server_tool_use":
        return not str(block.get("id", "")).startswith(SERVER_TOOL_ID_PREFIX)
    if btype.endswith(_SERVER_RESULT_SUFFIX) and btype != "tool_result":
        return not str(block.get("tool_use_id", "")).startswith(SERVER_TOOL_ID_PREFIX)
    return False


def _empty_text(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text" and block.get("text") == ""


class _Rewriter:
    def __init__(self, req: MessagesRequest, caps: Capabilities) -> None:
        self.req = req
        self.caps = caps
        self.notes: list[RewriteNote] = []

    def note(self, rule: str, path: str, detail: str) -> None:
        self.notes.append(RewriteNote(rule, path, detail))

    # -- messages ---------------------------------------------------------------------------

    def blocks(self, i: int, message: dict[str, Any], ids: dict[str, str]) -> None:
        content = message.get("content")
        if not isinstance(content, list):
            return
        out: list[Any] = []
        for j, block in enumerate(content):
            path = f"messages[{i}].content[{j}]"
            if _gateway_thinking(block):
                self.thinking_foreign(path, block, out)
            elif _foreign_server_block(block):
                self.note("server_tool.drop_foreign", path,
                          f"Dropped a {block.get('type')} block that Anthropic did not produce "
                          f"(its id does not start with {SERVER_TOOL_ID_PREFIX}).")
            elif _empty_text(block):
                self.note("text.drop_empty", path, "Dropped an empty text block (Anthropic rejects them).")
            else:
                key = {"tool_use": "id", "tool_result": "tool_use_id"}.get(block.get("type"))
                if key is not None and block.get(key) in ids:
                    old = block[key]
                    block[key] = ids[old]
                    self.note("tool_id.sanitize", f"{path}.{key}",
                              f"Replaced tool id {old!r} by {ids[old]!r}: Anthropic requires ids matching "
                              "^[a-zA-Z0-9_-]+$ (the id came from another backend).")
                out.append(block)
        message["content"] = out

    def thinking_foreign(self, path: str, block: dict[str, Any], out: list[Any]) -> None:
        text = block.get("thinking")
        if block.get("type") == "thinking" and self.caps.foreign_thinking == "to_text" and text:
            out.append({"type": "text", "text": text})
            self.note("thinking.foreign_to_text", path,
                      "Sent thinking made by the gateway from another backend's reasoning as a text block "
                      "(Claude rejects signatures it did not make; capability foreign_thinking=to_text).")
            return
        self.note("thinking.foreign_drop", path,
                  f"Dropped a {block.get('type')} block without an Anthropic signature (made by the gateway "
                  "from another backend's reasoning); Claude would reject it.")

    def system_message(self, i: int, message: dict[str, Any], body: dict[str, Any]) -> bool:
        """Apply ``system_messages``; True when the message stays in ``messages``."""
        if system_message_keep(i, self.caps, self.notes, hoisted_into="the system prompt"):
            return True
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        blocks = [b for b in blocks if isinstance(b, dict) and b.get("type") == "text" and b.get("text")]
        system = body.get("system")
        if blocks:
            if isinstance(system, list):
                system.extend(blocks)
            else:
                text = "\n\n".join(b["text"] for b in blocks)
                body["system"] = f"{system}\n\n{text}" if system else text
        return False

    # -- prefill (Anthropic docs, prefill) ----------------------------------------------------------

    def prefill(self, entries: list[tuple[int, dict[str, Any]]], body: dict[str, Any]) -> None:
        plan = prefill_plan(request=self.req, caps=self.caps, kind="anthropic")
        if plan is None or not entries or entries[-1][0] != plan.index:
            return
        self.notes.extend(plan.notes)
        if plan.strategy == "rewrite":
            self.prefill_rewrite(entries, plan)
            return
        self.prefill_trim(plan.path, entries[-1][1])
        if plan.thinking_note is not None:
            body.pop("thinking", None)
            self.notes.append(plan.thinking_note)

    def prefill_trim(self, path: str, message: dict[str, Any]) -> None:
        """Anthropic answers 400 to "final assistant content cannot end with trailing whitespace":
        the client's own blocks are trimmed (the trailing text ones), the rest kept byte for byte."""
        if not self.caps.prefill_trim_whitespace:
            return
        content = message.get("content")
        changed = False
        if isinstance(content, str):
            changed = content != content.rstrip()
            message["content"] = content.rstrip()
        elif isinstance(content, list):
            while content and isinstance(content[-1], dict) and content[-1].get("type") == "text":
                text = content[-1].get("text", "")
                if text == text.rstrip():
                    break
                changed = True
                if text.rstrip():
                    content[-1]["text"] = text.rstrip()
                    break
                content.pop()
        if changed:
            self.note("prefill.trim_whitespace", f"{path}.content", PREFILL_TRIM_DETAIL)

    def prefill_rewrite(self, entries: list[tuple[int, dict[str, Any]]], plan: PrefillPlan) -> None:
        """Drop the prefill and ask, in the user turn before it, for its continuation."""
        entries.pop()
        path = plan.path
        if not plan.text:
            self.note("prefill.rewrite", path, "Dropped an empty trailing assistant message (prefill=rewrite).")
            return
        instruction = {"type": "text", "text": plan.instruction}
        previous = entries[-1][1] if entries else None
        if previous is not None and previous.get("role") == "user":
            content = previous.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
            previous["content"] = [*blocks, instruction]
            where = "appended to the user message before it"
        else:
            entries.append((plan.index, {"role": "user", "content": [instruction]}))
            where = "sent as a user message"
        self.note("prefill.rewrite", path,
                  f"Replaced the trailing assistant message (prefill; this backend rejects it) by an instruction "
                  f"to continue it, {where}; a repeated prefix is stripped from the reply.")

    # -- top-level fields -------------------------------------------------------------------

    def system_billing(self, body: dict[str, Any]) -> None:
        system = body.get("system")
        if not self.caps.strip_billing_header or not isinstance(system, list):
            return
        for k, block in enumerate(system):
            if isinstance(block, dict) and str(block.get("text", "")).startswith(BILLING_HEADER_PREFIX):
                del system[k]
                self.note("system.strip_billing_header", f"system[{k}]",
                          "Removed Claude Code's per-request x-anthropic-billing-header block "
                          "(capability strip_billing_header).")
                return

    def system_empty(self, body: dict[str, Any]) -> None:
        system = body.get("system")
        if isinstance(system, list) and any(_empty_text(b) for b in system):
            body["system"] = [b for b in system if not _empty_text(b)]
            self.note("text.drop_empty", "system", "Dropped empty system text blocks (Anthropic rejects them).")

    def sampling(self, body: dict[str, Any]) -> None:
        if self.caps.sampling_exclusive and body.get("temperature") is not None and body.get("top_p") is not None:
            del body["top_p"]
            self.note("sampling.exclusive", "top_p",
                      "Dropped top_p: this backend rejects temperature and top_p together "
                      "(capability sampling_exclusive); temperature is kept.")

    def max_tokens(self, body: dict[str, Any]) -> None:
        cap = self.caps.max_tokens_cap
        if not cap or body.get("max_tokens", 0) <= cap:
            return
        self.note("max_tokens.cap", "max_tokens",
                  f"Lowered max_tokens from {body['max_tokens']} to {cap} (capability max_tokens_cap).")
        body["max_tokens"] = cap
        thinking = body.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(thinking, dict) and isinstance(budget, int) and budget >= cap:
            thinking["budget_tokens"] = cap - 1
            self.note("max_tokens.cap", "thinking.budget_tokens",
                      f"Lowered thinking.budget_tokens from {budget} to {cap - 1}: it must stay below max_tokens.")

    def cache_control(self, body: dict[str, Any]) -> None:
        """Without ``cache_control_extensions`` only ``{"type": "ephemeral"}`` reaches the backend."""
        if self.caps.cache_control_extensions:
            return
        paths: list[str] = []

        def strip(holder: Any, path: str) -> None:
            control = holder.get("cache_control") if isinstance(holder, dict) else None
            if isinstance(control, dict) and ("ttl" in control or "scope" in control):
                holder["cache_control"] = {k: v for k, v in control.items() if k not in ("ttl", "scope")}
                paths.append(f"{path}.cache_control")

        def strip_all(items: Any, path: str) -> None:
            for k, item in enumerate(items if isinstance(items, list) else ()):
                strip(item, f"{path}[{k}]")
                if isinstance(item, dict) and item.get("type") == "tool_result":
                    strip_all(item.get("content"), f"{path}[{k}].content")

        strip(body, "")
        strip_all(body.get("system"), "system")
        strip_all(body.get("tools"), "tools")
        for i, message in enumerate(body.get("messages", ())):
            strip_all(message.get("content"), f"messages[{i}].content")
        if paths:
            self.note("cache_control.extensions", ",".join(p.lstrip(".") for p in paths),
                      "Removed cache_control ttl/scope, which this endpoint rejects "
                      "(capability cache_control_extensions=false).")


def build_request(req: MessagesRequest, caps: Capabilities, *,
                  upstream_model: str) -> tuple[dict[str, Any], list[RewriteNote]]:
    """The native Anthropic body for ``req`` on a backend with ``caps``, and the rewrite notes."""
    r = _Rewriter(req, caps)
    # exclude_unset: exactly the fields the client sent, with unknown ones kept; strings (thinking
    # text, signatures) are the client's bytes.
    body: dict[str, Any] = req.model_dump(exclude_unset=True)
    body["model"] = upstream_model
    messages: list[dict[str, Any]] = body["messages"]
    ids = tool_ids_map(messages)
    entries: list[tuple[int, dict[str, Any]]] = []
    for i, message in enumerate(messages):
        if message.get("role") == "system" and not r.system_message(i, message, body):
            continue
        r.blocks(i, message, ids)
        entries.append((i, message))
    r.prefill(entries, body)
    kept = []
    for i, message in entries:
        if message.get("content") in ("", []):
            r.note("message.drop_empty", f"messages[{i}]",
                   "Dropped a message left with no content (Anthropic requires non-empty content).")
        else:
            kept.append(message)
    body["messages"] = kept
    r.system_billing(body)
    r.system_empty(body)
    r.sampling(body)
    r.max_tokens(body)
    r.cache_control(body)
    body_extras_apply(body, caps, r.notes)
    return body, r.notes


def _betas(header: str) -> list[str]:
    """The values of an ``anthropic-beta`` header (comma-separated)."""
    return [b.strip() for b in header.split(",") if b.strip()]


def headers_build(client_headers: Mapping[str, str] | None,
                  caps: Capabilities) -> tuple[dict[str, str], list[RewriteNote]]:
    """The client's ``anthropic-version`` (any version, unchanged) and its ``anthropic-beta``:
    unchanged when the backend takes every beta (``caps.betas`` ``*``), else only the listed ones.

    Claude Code's gateway protocol reference asks gateways to forward both unchanged; the
    filter exists for Anthropic-compatible endpoints that refuse betas they do not know.
    """
    lower = {k.lower(): v for k, v in (client_headers or {}).items()}
    headers = {"anthropic-version": lower.get("anthropic-version", "").strip() or ANTHROPIC_VERSION}
    sent = lower.get("anthropic-beta", "")
    requested = list(dict.fromkeys(_betas(sent)))
    if "*" in caps.betas:
        if requested:
            headers["anthropic-beta"] = sent
        return headers, []
    kept = [b for b in requested if b in caps.betas]
    notes = []
    if dropped := [b for b in requested if b not in kept]:
        notes.append(RewriteNote("betas.filter", "headers.anthropic-beta",
                                 f"Not forwarded to this backend: {', '.join(dropped)} (capability betas)."))
    if kept:
        headers["anthropic-beta"] = ",".join(kept)
    return headers, notes


# Request fields that exist only under a beta (anthropic-sdk-python 2.x has them in
# ``types/beta/message_create_params.py`` alone): a backend sent the field without its beta
# refuses the whole request ("Extra inputs are not permitted").
BETA_FIELDS = {"context_management": "context-management-", "mcp_servers": "mcp-client-"}


def beta_fields_drop(body: dict[str, Any], client_headers: Mapping[str, str] | None,
                     headers: Mapping[str, str]) -> list[RewriteNote]:
    """Drop a beta-only field whose beta the client sent but ``headers_build`` filtered out.
    A field sent without its beta is left alone: that is the client's contract with the backend."""
    lower = {k.lower(): v for k, v in (client_headers or {}).items()}
    requested = _betas(lower.get("anthropic-beta", ""))
    forwarded = _betas(headers.get("anthropic-beta", ""))
    notes = []
    for name, prefix in BETA_FIELDS.items():
        if name not in body:
            continue
        if any(b.startswith(prefix) for b in requested) and not any(b.startswith(prefix) for b in forwarded):
            del body[name]
            notes.append(RewriteNote("betas.field_drop", name,
                                     f"Dropped {name}: its beta ({prefix}*) is not forwarded to this backend "
                                     "(capability betas), and without it the backend rejects the field."))
    return notes
