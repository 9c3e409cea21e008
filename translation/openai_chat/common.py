"""Rules shared by the non-streaming and the streaming Chat Completions translators, and the
request rules the Responses translator shares with them (``prompt_cache_key``, usage).

Both translators must build the same Anthropic message from the same completion (a property
test checks it), so every decision that could differ lives here once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from translation.backend_errors import backend_error_reclassify
from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.jsonbytes import json_bytes, json_loads_exact
from translation.notes import RewriteNote
from translation.schemas import MessagesRequest
from translation.session import SESSION_HEADER, header, session_of
from translation.signature import signature_mint

CHAT_SIGNATURE_PAYLOAD: dict[str, Any] = {"src": "chat"}

# Finish reasons that mean the generation failed (README, What is translated): surfaced as errors.
FATAL_FINISH_REASONS: dict[str, tuple[int, str]] = {
    "abort": (502, "the backend aborted the generation (finish_reason=abort)"),
    "insufficient_system_resource": (529, "the backend is out of resources "
                                          "(finish_reason=insufficient_system_resource)"),
}

_ID_INVALID = re.compile(r"[^a-zA-Z0-9_-]")


def chat_signature() -> str:
    return signature_mint(CHAT_SIGNATURE_PAYLOAD)


def reasoning_read(obj: dict[str, Any], fields: tuple[str, ...]) -> str:
    """The first non-empty reasoning field, in capability order.

    vLLM (PR #27752) sends ``reasoning`` and ``reasoning_content`` with the same text in one
    delta: reading only the first present field keeps the text from doubling.
    """
    for field in fields:
        value = obj.get(field)
        if isinstance(value, str) and value:
            return value
    return ""


def content_text(value: Any) -> str:
    """Message ``content``: a string, or (some backends) a list of text parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


# OpenAI answers 400 (string_above_max_length) to a longer prompt_cache_key.
PROMPT_CACHE_KEY_MAX = 64


def prompt_cache_key_set(body: dict[str, Any], *, req: MessagesRequest, caps: Capabilities,
                         client_headers: Mapping[str, str] | None, notes: list[RewriteNote]) -> None:
    """``prompt_cache_key`` from the client's session (capability prompt_cache_key).

    OpenAI routes a request to a cache machine by the prompt's first tokens and this key (OpenAI
    prompt caching guide): one Claude Code session's turns then keep reaching the machine that
    holds their prefix. Called before ``body_extras_apply``, so drop_fields removes the key and
    an operator's extra_body value replaces it.
    """
    if not caps.prompt_cache_key:
        return
    session = session_of(client_headers, req.metadata.model_dump() if req.metadata is not None else None)
    if not session:
        return
    source = (f"the {SESSION_HEADER} header" if header(client_headers, SESSION_HEADER)
              else "the session in metadata.user_id")
    if len(session) > PROMPT_CACHE_KEY_MAX:
        body["prompt_cache_key"] = hashlib.sha256(session.encode()).hexdigest()
        detail = (f"prompt_cache_key is the SHA-256 of {source} (longer than {PROMPT_CACHE_KEY_MAX} "
                  "characters), so the backend's prompt cache keeps this session on one machine.")
    else:
        body["prompt_cache_key"] = session
        detail = f"prompt_cache_key set from {source}, so the backend's prompt cache keeps this session on one machine."
    notes.append(RewriteNote("prompt_cache_key.session", "prompt_cache_key", detail))


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return 0


def usage_from_openai(usage: dict[str, Any] | None, *, input_tokens_estimate: int = 0) -> dict[str, int]:
    """Anthropic usage from Chat Completions usage (README, What is translated).

    OpenAI's ``prompt_tokens`` include cached tokens; Anthropic's ``input_tokens`` exclude them.
    Never negative: some backends report cached tokens with ``prompt_tokens`` already net.
    Without usage (the stream was cut, or the backend sends none) the input estimate is used.
    """
    if not usage:
        return {"input_tokens": input_tokens_estimate, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": 0}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    prompt = _int(usage.get("prompt_tokens"))
    cached = _int(details.get("cached_tokens")) or _int(usage.get("prompt_cache_hit_tokens"))
    written = _int(details.get("cache_write_tokens"))
    if "prompt_cache_miss_tokens" in usage:  # DeepSeek reports the uncached part itself
        uncached = _int(usage.get("prompt_cache_miss_tokens"))
    else:
        uncached = prompt - cached - written
    return {
        "input_tokens": max(0, uncached),
        "cache_creation_input_tokens": max(0, written),
        "cache_read_input_tokens": max(0, cached),
        "output_tokens": max(0, _int(usage.get("completion_tokens"))),
    }


def stop_reason_decide(*, finishes: list[tuple[Any, Any]], tool_calls: bool, refused: bool,
                       stop_sequences: list[str] | None, context_full: bool = False,
                       gateway_stop: str | None = None) -> tuple[str, str | None]:
    """Anthropic ``(stop_reason, stop_sequence)`` from every choice's finish.

    ``finishes`` holds ``(finish_reason, matched_stop)`` per choice, where ``matched_stop`` is
    vLLM's ``stop_reason`` or SGLang's ``matched_stop``. Precedence:

    1. refusal (``content_filter`` or a ``refusal`` message);
    2. ``stop_sequence`` when the gateway cut the text at one (``gateway_stop``: nothing after it
       was kept, so no tool call either);
    3. on ``length``: ``model_context_window_exceeded`` when the context filled up
       (``context_full``: llama.cpp's ``truncated``, or prompt plus output reached the window),
       else ``max_tokens`` — even when tool calls arrived: their arguments may be cut, and
       running a truncated command is worse than telling the client the turn was cut. Claude
       Code compacts on the first and asks to resume on the second;
    4. ``tool_use`` iff a tool call was actually received (never from ``finish_reason`` alone:
       OpenAI and vLLM answer ``stop`` for a named tool_choice, vLLM can say ``tool_calls``
       with none);
    5. ``stop_sequence`` when the matched stop string is one the client asked for;
    6. ``end_turn``.
    """
    reasons = {f for f, _ in finishes}
    if refused or "content_filter" in reasons:
        return "refusal", None
    if gateway_stop is not None:
        return "stop_sequence", gateway_stop
    if "length" in reasons:
        return ("model_context_window_exceeded" if context_full else "max_tokens"), None
    if tool_calls:
        return "tool_use", None
    for reason, matched in finishes:
        if reason == "stop" and isinstance(matched, str) and stop_sequences and matched in stop_sequences:
            return "stop_sequence", matched
    return "end_turn", None


def fatal_finish_error(reason: Any) -> ApiError | None:
    if isinstance(reason, str) and reason in FATAL_FINISH_REASONS:
        status, message = FATAL_FINISH_REASONS[reason]
        return ApiError(status, message, source="transient" if status == 529 else "backend")
    return None


def error_from_openai(error: Any) -> ApiError:
    """An ``error`` object from a body or stream chunk (OpenAI, SGLang, vLLM shapes)."""
    if isinstance(error, dict):
        message = error.get("message") or error.get("msg") or json_bytes(error).decode()
        code = error.get("code")
    else:
        message, code = str(error), None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    status = code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599 else 502
    reclassified = backend_error_reclassify(str(message))
    if reclassified is not None:
        return reclassified
    return ApiError(status, f"backend error: {message}", source="backend")


def body_error(body: dict[str, Any]) -> ApiError | None:
    error = body.get("error")
    if error:
        return error_from_openai(error)
    if body.get("object") == "error":  # SGLang / older vLLM: the body itself is the error
        return error_from_openai(body)
    return None


def tool_id_make(raw: Any, *, message_id: str, ordinal: int, used: set[str]) -> str:
    """A tool_use id Anthropic accepts on replay (``^[a-zA-Z0-9_-]+$``, anthropic-sdk-python types/message_param.py).

    Invalid characters become ``_`` (stable: the same backend id always maps to the same id).
    A missing id is derived from the message id and the tool's position, so the streamed and
    the non-streamed translation of one completion agree. Duplicates get the position appended.
    """
    cid = _ID_INVALID.sub("_", raw) if isinstance(raw, str) else ""
    if not cid:
        cid = f"toolu_{_ID_INVALID.sub('_', message_id.removeprefix('msg_'))}_{ordinal}"
    while cid in used:
        cid = f"{cid}_{ordinal}"
    used.add(cid)
    return cid


def tool_input_parse(arguments: str) -> tuple[dict[str, Any], str | None, str]:
    """Tool input from an ``arguments`` string: ``(input, problem, suffix)``.

    - empty or whitespace-only arguments are ``{}`` (no problem: a tool without parameters);
    - a JSON object is the input;
    - a JSON *string* holding an object (double-encoded, seen from some backends) is decoded;
    - a truncated object (``finish_reason: length``) is closed if a suffix can complete it:
      ``suffix`` is what was appended (the stream translator emits it as a last fragment);
    - anything else is ``{}`` with a problem description (the caller leaves a note).
    """
    text = arguments.strip()
    if not text:
        return {}, None, ""
    try:
        value = json_loads_exact(text)
    except ValueError:
        if text[0] == "{":
            suffix = json_close_suffix(text)
            if suffix is not None:
                return json_loads_exact(text + suffix), f"truncated arguments closed with {suffix!r}", suffix
        return {}, "arguments are not valid JSON; used {}", ""
    if isinstance(value, dict):
        return value, None, ""
    if isinstance(value, str):
        try:
            inner = json_loads_exact(value)
        except ValueError:
            inner = None
        if isinstance(inner, dict):
            return inner, "arguments were a JSON string holding an object; decoded it", ""
    return {}, "arguments are not a JSON object; used {}", ""


_LITERALS = ("true", "false", "null")


def json_close_suffix(text: str) -> str | None:
    """Characters that complete a truncated JSON object, or ``None`` if appending cannot.

    Handles a cut inside a string, after a key, after ``:``, inside ``true``/``false``/``null``
    and open brackets. Runs only on arguments that failed to parse.
    """
    stack: list[str] = []
    in_string = escaped = string_is_key = False
    last = ""  # last significant character outside strings; "k" after a complete key
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                last = "k" if string_is_key else '"'
            continue
        if ch == '"':
            in_string = True
            string_is_key = bool(stack) and stack[-1] == "{" and last in ("{", ",")
        elif ch in "{[":
            stack.append(ch)
            last = ch
        elif ch in "}]":
            if not stack or stack.pop() != ("{" if ch == "}" else "["):
                return None
            last = ch
        elif not ch.isspace():
            last = ch
    suffix = ""
    if in_string:
        if escaped:
            return None
        suffix = '"' + (": null" if string_is_key else "")
    elif last == "k":
        suffix = ": null"
    elif last == ":":
        suffix = "null"
    elif last.isalpha():
        word = re.search(r"[a-z]+$", text.rstrip())
        completion = next((lit[len(word.group()):] for lit in _LITERALS
                           if word and lit.startswith(word.group())), None)
        if completion is None:
            return None
        suffix = completion
    elif last in (",", "-", ".", "e", "E", "+") or not stack:
        return None
    suffix += "".join("}" if b == "{" else "]" for b in reversed(stack))
    try:
        value = json_loads_exact(text + suffix)
    except ValueError:
        return None
    return suffix if isinstance(value, dict) else None


def llamacpp_verbose(chunk: dict[str, Any]) -> tuple[str | None, bool]:
    """(stopping word, context truncated) from llama.cpp's ``__verbose`` object.

    llama.cpp's chat completions say only ``finish_reason: "stop"`` for a stop word and
    ``"length"`` for a full context; asked with ``verbose: true`` (and ``response_fields`` to keep
    it small) its final result carries ``__verbose.stopping_word`` and ``__verbose.truncated``
    (llama.cpp tools/server/server-task.cpp, ``to_json_non_oaicompat``, checked at the build in
    llama-cpp-python 0.3.36).
    """
    verbose = chunk.get("__verbose")
    if not isinstance(verbose, dict):
        return None, False
    word = verbose.get("stopping_word")
    return (word if isinstance(word, str) and word else None), verbose.get("truncated") is True


def context_full(usage: Any, context_window: int) -> bool:
    """Prompt and output filled the model's context (``context_window`` known, usage reported)."""
    if not context_window or not isinstance(usage, dict):
        return False
    return _int(usage.get("prompt_tokens")) + _int(usage.get("completion_tokens")) >= context_window
