"""The mock backend's native Anthropic endpoint, ``POST /v1/messages`` (Anthropic Messages API reference).

It answers like a Claude model, streamed (SSE with ``event:`` lines) or not, and checks the
request the way the real API does where the gateway has something to get right: a trailing
assistant message is refused like Claude 4.6+ (model ``mock-no-prefill`` or scenario
``reject_prefill``), gateway-made thinking signatures, invalid tool ids and temperature with
top_p are 400s. The scenario comes from the ``x-mock-scenario`` header, a ``[[mock:NAME]]``
directive in the last user message, a ``mock-NAME`` model, else ``text``.

No Django here; ``server.py`` frames the bytes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.mockbackend.scenarios import (
    DIRECTIVE,
    PREFILL_REJECTED,
    directive_find,
    message_text,
    tokens_estimate,
)

NATIVE_REPLY = "Hello from the mock Anthropic backend!"
CONTINUATION = " world."
THINKING_TEXT = "The user wants a short answer. Let me think it through."
THINKING_REPLY = "The answer is 42."
# Shaped like a real Anthropic signature (opaque base64, starts with "Eq"); the gateway must pass
# it back byte for byte.
THINKING_SIGNATURE = (
    "EqQBCkgIBxABGAIqQNxqGbSGRiIlG0Ov2hWZ9JxWpDn0ZlbmvK3x8Y0yQpWuN7bY9m1xQ2gT6cS4dF8hJ0kL3mN5pR7tV9wX1zA"
    "EgwMockSigAAAAAAAAAAGgxNb2NrU2lnbmF0dXJlIjBNb2NrIHNpZ25hdHVyZSBmb3IgZHJhZ29tYW4gdGVzdHMgb25seQ=="
)
TOOL_ID = "toolu_01MockNativeBash000001"
TOOL_INPUT = {"command": "echo hello", "description": "Print a greeting"}
NO_PREFILL_MODEL = "mock-no-prefill"
_REPLY_SO_FAR = re.compile(r"<reply_so_far>\n(.*)\n</reply_so_far>", re.S)
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class NativeReply:
    content: tuple[dict[str, Any], ...] = ()
    stop_reason: str = "end_turn"
    # Answer with this HTTP status and Anthropic error (type, message) instead of the message.
    error: tuple[int, str, str] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # Streams: after this many events, an `event: error` (overloaded) ends the stream.
    stream_error_after: int | None = None


@dataclass(frozen=True, slots=True)
class NativeResponse:
    """What the server writes: a JSON body, or SSE frames."""

    status: int
    scenario: str | None
    body: bytes = b""
    frames: tuple[bytes, ...] | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())


NativeScenario = Callable[[dict[str, Any]], NativeReply]
NATIVE_SCENARIOS: dict[str, NativeScenario] = {}


def native_scenario(name: str) -> Callable[[NativeScenario], NativeScenario]:
    def register(function: NativeScenario) -> NativeScenario:
        NATIVE_SCENARIOS[name] = function
        return function

    return register


def anthropic_error(error_type: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(_messages(body)):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _reply_so_far(body: dict[str, Any]) -> str | None:
    found = _REPLY_SO_FAR.search(_last_user_text(body))
    return found.group(1) if found else None


def _prefilled(body: dict[str, Any]) -> bool:
    messages = _messages(body)
    return bool(messages) and messages[-1].get("role") == "assistant"


# -- scenarios -----------------------------------------------------------------------------


@native_scenario("text")
def text(body: dict[str, Any]) -> NativeReply:
    """Continues a prefill (or a gateway-rewritten one) with CONTINUATION; otherwise greets and
    quotes the last user message."""
    if _prefilled(body) or _reply_so_far(body) is not None:
        return NativeReply((_text(CONTINUATION),))
    said = DIRECTIVE.sub("", _last_user_text(body)).strip()[:200]
    return NativeReply((_text(f'{NATIVE_REPLY} You said: "{said}".'),))


@native_scenario("reject_prefill")
def reject_prefill(body: dict[str, Any]) -> NativeReply:
    """400 like Claude 4.6+ when the last message is assistant (Anthropic docs, prefill); else `text`."""
    if _prefilled(body):
        return NativeReply(error=(400, "invalid_request_error", PREFILL_REJECTED))
    return text(body)


@native_scenario("repeat_prefix")
def repeat_prefix(body: dict[str, Any]) -> NativeReply:
    """Asked to continue a reply (the gateway's prefill rewrite), repeats it before going on."""
    so_far = _reply_so_far(body)
    if so_far is None:
        return text(body)
    return NativeReply((_text(so_far + CONTINUATION),))


@native_scenario("thinking")
def thinking(body: dict[str, Any]) -> NativeReply:
    """A thinking block with an Anthropic-shaped signature, then THINKING_REPLY."""
    block = {"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE}
    return NativeReply((block, _text(THINKING_REPLY)))


@native_scenario("tool_use")
def tool_use(body: dict[str, Any]) -> NativeReply:
    """Text and a Bash tool_use; after a tool_result, text quoting it."""
    messages = _messages(body)
    last = messages[-1].get("content") if messages else None
    results = [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"] if isinstance(
        last, list) else []
    if results:
        return NativeReply((_text(f"The tool returned: {message_text(results[0].get('content'))[:200]}"),))
    call = {"type": "tool_use", "id": TOOL_ID, "name": "Bash", "input": TOOL_INPUT}
    return NativeReply((_text("I'll run a tool."), call), stop_reason="tool_use")


@native_scenario("echo")
def echo(body: dict[str, Any]) -> NativeReply:
    """The reply text is the compact JSON of the request body received."""
    return NativeReply((_text(orjson.dumps(body).decode()),))


@native_scenario("error_mid_stream")
def error_mid_stream(body: dict[str, Any]) -> NativeReply:
    """Streamed: a text block starts, then `event: error` overloaded_error. Not streamed: HTTP 529."""
    if not body.get("stream"):
        return NativeReply(error=(529, "overloaded_error", "Overloaded"))
    return NativeReply((_text("Partial answer that never finishes"),), stream_error_after=4)


@native_scenario("overloaded")
def overloaded(body: dict[str, Any]) -> NativeReply:
    """HTTP 529 overloaded_error, as Anthropic answers under load."""
    return NativeReply(error=(529, "overloaded_error", "Overloaded"))


@native_scenario("rate_limited")
def rate_limited(body: dict[str, Any]) -> NativeReply:
    """HTTP 429 rate_limit_error with retry-after: 3."""
    return NativeReply(error=(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit "
                                                       "(mock)."), headers=(("retry-after", "3"),))


# -- request checks the real API makes (anthropic-sdk-python message_create_params.py, message_param.py) -----


def request_check(body: dict[str, Any]) -> str | None:
    """The real API's 400 message for what this request gets wrong, or None."""
    if not isinstance(body.get("model"), str) or not isinstance(body.get("max_tokens"), int):
        return "model: Field required" if "model" not in body else "max_tokens: Field required"
    if body.get("temperature") is not None and body.get("top_p") is not None:
        return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    for i, message in enumerate(_messages(body)):
        content = message.get("content")
        if message.get("role") not in ("user", "assistant", "system"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if btype == "text" and block.get("text") == "":
                return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
            if btype == "thinking" and not str(block.get("signature", "")).startswith("Eq"):
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            for key in ("id", "tool_use_id"):
                if btype in ("tool_use", "tool_result") and key in block and not _TOOL_ID.match(str(block[key])):
                    return (f"messages.{i}.content.{j}.{btype}.{key}: String should match pattern "
                            "'^[a-zA-Z0-9_-]+$'")
    return None


# -- rendering (anthropic-sdk-python types/message.py; Anthropic docs, streaming messages) -------------------


def _usage(body: dict[str, Any], content: tuple[dict[str, Any], ...]) -> tuple[int, int]:
    output = "".join(b.get("text") or b.get("thinking") or orjson.dumps(b.get("input", {})).decode() for b in content)
    return tokens_estimate(orjson.dumps(body.get("messages")).decode()), tokens_estimate(output) if content else 1


def message_render(reply: NativeReply, *, id: str, model: str, usage: tuple[int, int]) -> dict[str, Any]:
    return {"id": id, "type": "message", "role": "assistant", "model": model, "content": list(reply.content),
            "stop_reason": reply.stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": usage[1], "service_tier": "standard"}}


def _pieces(text: str, size: int = 12) -> list[str]:
    return [text[i: i + size] for i in range(0, len(text), size)] or [""]


def events_render(reply: NativeReply, *, id: str, model: str, usage: tuple[int, int]) -> Iterator[dict[str, Any]]:
    """The stream of ``reply`` as Anthropic sends it: message_start, ping, blocks, delta, stop."""
    start = message_render(reply, id=id, model=model, usage=(usage[0], 1))
    start.update(content=[], stop_reason=None)
    yield {"type": "message_start", "message": start}
    yield {"type": "ping"}
    for index, block in enumerate(reply.content):
        btype = block["type"]
        if btype == "text":
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            for piece in _pieces(block["text"]):
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
        elif btype == "thinking":
            yield {"type": "content_block_start", "index": index,
                   "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
            for piece in _pieces(block["thinking"]):
                yield {"type": "content_block_delta", "index": index,
                       "delta": {"type": "thinking_delta", "thinking": piece}}
            yield {"type": "content_block_delta", "index": index,
                   "delta": {"type": "signature_delta", "signature": block["signature"]}}
        else:
            yield {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
            for piece in ["", *_pieces(orjson.dumps(block["input"]).decode())]:
                yield {"type": "content_block_delta", "index": index,
                       "delta": {"type": "input_json_delta", "partial_json": piece}}
        yield {"type": "content_block_stop", "index": index}
    yield {"type": "message_delta", "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
           "usage": {"input_tokens": usage[0], "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                     "output_tokens": usage[1]}}
    yield {"type": "message_stop"}


def sse_frame(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def native_scenario_select(body: dict[str, Any], headers: Mapping[str, str]) -> str | None:
    directive, _args = directive_find(body.get("messages"))
    model = body.get("model")
    if name := headers.get("x-mock-scenario", ""):
        return name
    if directive:
        return directive
    if isinstance(model, str) and model.startswith("mock-") and model[5:] in NATIVE_SCENARIOS:
        return model[5:]
    return "text"


def native_respond(body: Any, headers: Mapping[str, str]) -> NativeResponse:
    """The whole answer to one ``POST /v1/messages``."""
    if not isinstance(body, dict):
        return NativeResponse(400, None, anthropic_error("invalid_request_error", "Request body must be an object"))
    name = native_scenario_select(body, headers)
    if name not in NATIVE_SCENARIOS:
        message = f"Unknown mock scenario {name!r}; native scenarios: {', '.join(sorted(NATIVE_SCENARIOS))}"
        return NativeResponse(400, name, anthropic_error("invalid_request_error", message))
    if problem := request_check(body):
        return NativeResponse(400, name, anthropic_error("invalid_request_error", problem))
    if body.get("model") == NO_PREFILL_MODEL and _prefilled(body):
        return NativeResponse(400, name, anthropic_error("invalid_request_error", PREFILL_REJECTED))
    reply = NATIVE_SCENARIOS[name](body)
    scenario_header = (("x-mock-scenario", name),)
    if reply.error is not None:
        status, error_type, message = reply.error
        return NativeResponse(status, name, anthropic_error(error_type, message), headers=reply.headers + scenario_header)
    model = body["model"]
    id = f"msg_mock{next(_ids):016x}"
    usage = _usage(body, reply.content)
    if not body.get("stream"):
        return NativeResponse(200, name, orjson.dumps(message_render(reply, id=id, model=model, usage=usage)),
                              headers=scenario_header)
    events = list(events_render(reply, id=id, model=model, usage=usage))
    if reply.stream_error_after is not None:
        events = events[: reply.stream_error_after]
        events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    return NativeResponse(200, name, frames=tuple(sse_frame(e) for e in events), headers=scenario_header)
