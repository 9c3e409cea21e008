"""Scripted replies of the mock OpenAI-compatible backend, as data.

A scenario is a function `MockRequest -> Script`. A `Script` carries one `Completion` (an
ordered list of deltas, a finish reason, an optional vLLM `stop_reason` and usage overrides)
plus optional faults (an HTTP error instead of a reply, a slow first byte, a stall, a dropped
connection, raw frames injected into the stream). `server.py` renders the completion as one
`chat.completion` or as a stream of `chat.completion.chunk`s, so every scenario works both
ways. The shapes imitate openai-python types/chat/chat_completion_chunk.py; docs/backends.md (cited where a quirk is copied).

No Django here: the server is used by tests that run without settings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import orjson

REASONING_FIELDS = ("reasoning", "reasoning_content", "both")
# How stream chunks are shaped (server.py): "openai", the fields every server sends; "vllm", every
# field vLLM's serializer writes (token_ids, stop_reason, prompt_token_ids, system_fingerprint).
CHUNK_SHAPES = ("openai", "vllm")
MAX_MODEL_LEN = 32768

TEXT_REPLY = "Hello! This is the mock backend speaking."
TOOL_CALL_TEXT = "I'll run a tool."
BASH_ARGUMENTS = '{"command":"echo hello","description":"Print a greeting"}'
REASONING_TEXT = "The user wants an answer. Let me think it through step by step."
REASONING_REPLY = "The answer is 42."
PREFILL_REJECTED = (
    "This model does not support assistant message prefill. The conversation must end with a user message."
)


# ---------------------------------------------------------------------------------------------
# The data model


@dataclass(frozen=True, slots=True)
class ToolCallFragment:
    """One entry of a delta's `tool_calls`: `id`/`name` only on a call's first fragment (openai-python chat_completion_chunk.py)."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """What one stream chunk adds. `tool_calls=None` omits the key; `()` sends `"tool_calls": []`."""

    content: str | None = None
    reasoning: str | None = None
    tool_calls: tuple[ToolCallFragment, ...] | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    deltas: tuple[Delta, ...]
    # None ends the stream without a finish chunk (and without usage), as a backend that fails
    # mid-generation does.
    finish_reason: str | None = "stop"
    stop_reason: str | int | None = None  # vLLM's matched stop string / token id (docs/backends.md)
    # The choice field that carries `stop_reason`: "stop_reason" (vLLM), "matched_stop" (SGLang),
    # or "" for a server that never says which stop matched (Ollama).
    stop_field: str = "stop_reason"
    completion_tokens: int | None = None  # default: estimated from the deltas
    cached_tokens: int | None = None  # sets usage.prompt_tokens_details.cached_tokens


@dataclass(frozen=True, slots=True)
class HttpError:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Script:
    completion: Completion
    error: HttpError | None = None  # answer with this instead of the completion
    raw_body: bytes | None = None  # non-streamed: send these bytes instead of rendered JSON
    # Streamed: send these bytes (as they are, not SSE) instead of the frames from number
    # `raw_stream_after` + 1 on, end the body and close: a backend or proxy that stops speaking SSE.
    raw_stream: bytes | None = None
    raw_stream_after: int = 0
    content_type: bytes | None = None  # instead of application/json / text/event-stream
    first_byte_delay_s: float = 0.0  # sleep before the status line
    # Stream frames are numbered 1.. in sending order (1 = the role chunk).
    stall_after: int | None = None  # sleep `stall_s` after this many frames
    stall_s: float = 0.0
    drop_after: int | None = None  # close the connection after this many frames
    # Raw SSE `data:` payloads sent just before delta number i (0-based; len(deltas) = after the
    # last delta, before the finish chunk).
    inject: tuple[tuple[int, bytes], ...] = ()
    done: bool = True  # end the stream with `data: [DONE]`


@dataclass(frozen=True, slots=True)
class Knobs:
    """Per-request settings: header `x-mock-<name>` > directive arg > server default."""

    delay_ms: float = 0.0  # pause between stream frames
    reasoning_field: str = "reasoning_content"  # reasoning | reasoning_content | both
    events: int = 20  # text deltas in `bench`
    stall_ms: float = 30000.0  # pause in `stall`
    first_byte_ms: float = 2000.0  # pause before headers in `slow_first_byte`
    chunks: str = "openai"  # stream chunk shape, one of CHUNK_SHAPES


KNOB_NAMES = tuple(Knobs.__dataclass_fields__)


@dataclass(slots=True)
class MockRequest:
    body: dict[str, Any]
    headers: Mapping[str, str]
    knobs: Knobs = field(default_factory=Knobs)
    prompt_tokens: int = 0

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[Any]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def last_role(self) -> str | None:
        last = self.messages[-1] if self.messages else None
        return last.get("role") if isinstance(last, dict) else None

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return message_text(message.get("content"))
        return ""


class ScenarioError(ValueError):
    """A bad scenario name or knob value; the server answers 400."""


Scenario = Callable[[MockRequest], Script]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[name] = function
        return function

    return register


# ---------------------------------------------------------------------------------------------
# Selection: header, then a `[[mock:NAME k=v ...]]` directive in the last user message, then a
# `mock-NAME` model, then the server default.

DIRECTIVE = re.compile(r"\[\[mock:([A-Za-z0-9_]+)((?:\s+[a-z_]+=[^\s\]]+)*)\s*\]\]")


def message_text(content: Any) -> str:
    """The text of a message's `content`: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def directive_find(messages: Any) -> tuple[str | None, dict[str, str]]:
    """The `[[mock:NAME k=v ...]]` directive of the last user message: name and arguments."""
    history: list[Any] = messages if isinstance(messages, list) else []
    for message in reversed(history):
        if isinstance(message, dict) and message.get("role") == "user":
            match = DIRECTIVE.search(message_text(message.get("content")))
            if match is None:
                return None, {}
            return match.group(1), dict(pair.split("=", 1) for pair in match.group(2).split())
    return None, {}


def scenario_select(
    *, body: dict[str, Any], headers: Mapping[str, str], default: str
) -> tuple[str, dict[str, str]]:
    """Return the scenario name and the directive's knob arguments (maybe empty)."""
    directive, args = directive_find(body.get("messages"))
    model = body.get("model")
    if name := headers.get("x-mock-scenario", ""):
        pass
    elif directive:
        name = directive
    elif isinstance(model, str) and model.startswith("mock-") and model[5:] in SCENARIOS:
        name = model[5:]
    else:
        name = default
    if name not in SCENARIOS:
        raise ScenarioError(f"Unknown mock scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return name, args


def knobs_resolve(*, defaults: Knobs, headers: Mapping[str, str], args: Mapping[str, str]) -> Knobs:
    if unknown := set(args) - set(KNOB_NAMES):
        raise ScenarioError(f"Unknown mock directive argument(s): {', '.join(sorted(unknown))}")
    changes: dict[str, Any] = {}
    for name in KNOB_NAMES:
        raw = headers.get("x-mock-" + name.replace("_", "-"), args.get(name))
        if raw is None:
            continue
        if name == "reasoning_field":
            if raw not in REASONING_FIELDS:
                raise ScenarioError(f"reasoning_field must be one of {', '.join(REASONING_FIELDS)}")
            changes[name] = raw
            continue
        if name == "chunks":
            if raw not in CHUNK_SHAPES:
                raise ScenarioError(f"chunks must be one of {', '.join(CHUNK_SHAPES)}")
            changes[name] = raw
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ScenarioError(f"Mock knob {name} must be a number, got {raw!r}") from None
        if value < 0 or not math.isfinite(value):
            raise ScenarioError(f"Mock knob {name} must be a finite number >= 0")
        changes[name] = int(value) if name == "events" else value
    return replace(defaults, **changes) if changes else defaults


# ---------------------------------------------------------------------------------------------
# Token estimate, shared by /tokenize and usage.prompt_tokens so the two agree.
#
# The request is rendered with a ChatML-like template:
#     <|im_start|>tools\n{compact JSON of tools}<|im_end|>\n          (only if tools are given)
#     <|im_start|>{role}\n{text}{compact JSON of tool_calls}<|im_end|>\n   (per message)
#     <|im_start|>assistant\n                                           (add_generation_prompt)
# where {text} is the string content or the text parts joined (other parts count as their
# compact JSON). With continue_final_message the last message is left open. The count is one
# token per 4 UTF-8 bytes of that rendering, rounded up.


def _render_content(content: Any) -> str:
    if isinstance(content, str) or content is None:
        return content or ""
    if isinstance(content, list):
        return "".join(
            part["text"]
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            else orjson.dumps(part).decode()
            for part in content
        )
    return orjson.dumps(content).decode()


def chat_template_render(
    *,
    messages: Iterable[Any],
    tools: Any = None,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
) -> str:
    parts: list[str] = []
    if tools:
        parts.append(f"<|im_start|>tools\n{orjson.dumps(tools).decode()}<|im_end|>\n")
    for message in messages:
        if not isinstance(message, dict):
            continue
        text = _render_content(message.get("content"))
        if message.get("tool_calls"):
            text += orjson.dumps(message["tool_calls"]).decode()
        parts.append(f"<|im_start|>{message.get('role', '')}\n{text}<|im_end|>\n")
    if continue_final_message and parts:
        parts[-1] = parts[-1].removesuffix("<|im_end|>\n")
    elif add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def tokens_estimate(text: str) -> int:
    return max(1, math.ceil(len(text.encode()) / 4))


def prompt_tokens_estimate(body: Mapping[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list):
        prompt = body.get("prompt")
        return tokens_estimate(prompt if isinstance(prompt, str) else "")
    return tokens_estimate(
        chat_template_render(
            messages=messages,
            tools=body.get("tools"),
            add_generation_prompt=body.get("add_generation_prompt", True) is not False,
            continue_final_message=body.get("continue_final_message") is True,
        )
    )


# ---------------------------------------------------------------------------------------------
# Helpers to build completions


def openai_error(*, message: str, type: str, code: str | int | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def text_deltas(text: str, *, words_per_delta: int = 3) -> tuple[Delta, ...]:
    """Split text into deltas of a few words each, spaces kept at the start of a piece."""
    words = re.findall(r"\s*\S+", text) or [text]
    return tuple(
        Delta(content="".join(words[i : i + words_per_delta])) for i in range(0, len(words), words_per_delta)
    )


def tool_call_deltas(*, index: int, id: str, name: str, arguments: str, pieces: int = 4) -> list[Delta]:
    """A call as OpenAI streams it: id+name with empty arguments, then argument fragments (openai-python chat_completion_chunk.py)."""
    size = max(1, math.ceil(len(arguments) / pieces))
    deltas = [Delta(tool_calls=(ToolCallFragment(index=index, id=id, name=name),))]
    deltas += [
        Delta(tool_calls=(ToolCallFragment(index=index, arguments=arguments[i : i + size]),))
        for i in range(0, len(arguments), size)
    ]
    return deltas


def _tool_result_reply(request: MockRequest) -> Script | None:
    """Answer a tool result with text, so an agent loop (Claude Code) stops calling the tool."""
    if request.last_role != "tool":
        return None
    result = message_text(request.messages[-1].get("content"))
    return Script(Completion(text_deltas(f"The tool returned: {_clip(result, 200)}")))


def _clip(text: str, limit: int) -> str:
    text = DIRECTIVE.sub("", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Replies


@scenario("demo")
def demo(request: MockRequest) -> Script:
    """A friendly reply that quotes the last user message."""
    quote = _clip(request.last_user_text(), 200) or "(nothing)"
    return Script(
        Completion(
            text_deltas(
                f'Hello from the Dragoman mock backend! You said: "{quote}". '
                "This reply is scripted; add [[mock:NAME]] to a message to pick another scenario."
            )
        )
    )


@scenario("text")
def text(request: MockRequest) -> Script:
    """A fixed short text (TEXT_REPLY) in four deltas."""
    return Script(Completion(text_deltas(TEXT_REPLY, words_per_delta=2)))


@scenario("tool_calls_empty")
def tool_calls_empty(request: MockRequest) -> Script:
    """Text chunks that carry an empty `tool_calls: []`: older vLLM did this (openai-python chat_completion_chunk.py); it is text."""
    return Script(Completion(tuple(Delta(content=piece, tool_calls=()) for piece in ("1\n", "2\n", "3"))))


@scenario("tool_call")
def tool_call(request: MockRequest) -> Script:
    """Text, then one Bash call with its arguments over several chunks; finish tool_calls."""
    return _bash_call(request, call_id="call_mock_0", arguments=BASH_ARGUMENTS)


@scenario("parallel_tools")
def parallel_tools(request: MockRequest) -> Script:
    """Two calls; the second starts in the chunk that carries the first's last fragment."""
    if reply := _tool_result_reply(request):
        return reply
    first = tool_call_deltas(
        index=0, id="call_mock_0", name="Bash", arguments='{"command":"ls","description":"List files"}'
    )
    second = tool_call_deltas(
        index=1, id="call_mock_1", name="Read", arguments='{"file_path":"/tmp/notes.txt"}', pieces=2
    )
    assert first[-1].tool_calls is not None and second[0].tool_calls is not None
    merged = Delta(tool_calls=first[-1].tool_calls + second[0].tool_calls)
    return Script(Completion((*first[:-1], merged, *second[1:]), finish_reason="tool_calls"))


@scenario("reasoning")
def reasoning(request: MockRequest) -> Script:
    """Reasoning deltas, then text (field chosen by the reasoning_field knob)."""
    thinking = tuple(Delta(reasoning=d.content) for d in text_deltas(REASONING_TEXT))
    return Script(Completion(thinking + text_deltas(REASONING_REPLY)))


@scenario("reasoning_tool")
def reasoning_tool(request: MockRequest) -> Script:
    """Reasoning deltas, then a Bash tool call."""
    if reply := _tool_result_reply(request):
        return reply
    thinking = tuple(Delta(reasoning=d.content) for d in text_deltas("I should run a command to check."))
    call = tool_call_deltas(index=0, id="call_mock_0", name="Bash", arguments=BASH_ARGUMENTS)
    return Script(Completion((*thinking, *call), finish_reason="tool_calls"))


@scenario("echo")
def echo(request: MockRequest) -> Script:
    """The reply text is the compact JSON of the request body the backend received."""
    dumped = orjson.dumps(request.body).decode()
    return Script(Completion(tuple(Delta(content=dumped[i : i + 200]) for i in range(0, len(dumped), 200))))


@scenario("continuation")
def continuation(request: MockRequest) -> Script:
    """Reply ' world.' after a trailing assistant message (a prefill), else 'hello world.'."""
    reply = " world." if request.last_role == "assistant" else "hello world."
    return Script(Completion((Delta(content=reply),)))


@scenario("stop_sequence")
def stop_sequence(request: MockRequest) -> Script:
    """Text, finish stop, vLLM `stop_reason` = the request's first stop string (docs/backends.md)."""
    stop = request.body.get("stop")
    matched = stop[0] if isinstance(stop, list) and stop else stop if isinstance(stop, str) else None
    return Script(Completion(text_deltas("Counting: 1, 2, 3"), stop_reason=matched))


@scenario("length")
def length(request: MockRequest) -> Script:
    """Text cut off with finish_reason length; completion_tokens = the request's max tokens."""
    limit = request.body.get("max_completion_tokens") or request.body.get("max_tokens")
    return Script(
        Completion(
            text_deltas("This reply stops early because it ran out of"),
            finish_reason="length",
            completion_tokens=limit if isinstance(limit, int) else None,
        )
    )


@scenario("usage_cached")
def usage_cached(request: MockRequest) -> Script:
    """Text with prompt_tokens_details.cached_tokens = prompt_tokens // 2."""
    return Script(Completion(text_deltas(TEXT_REPLY), cached_tokens=request.prompt_tokens // 2))


@lru_cache(maxsize=64)
def _bench_completion(events: int) -> Completion:
    return Completion(tuple(Delta(content=" tok") for _ in range(events)), completion_tokens=events)


@scenario("bench")
def bench(request: MockRequest) -> Script:
    """`events` tiny text deltas (" tok"), for benchmarks; cached per count."""
    return Script(_bench_completion(request.knobs.events))


# ---------------------------------------------------------------------------------------------
# Faults


def _http_error(status: int, message: str, type: str, code: str | int, *headers: tuple[str, str]) -> Script:
    error = HttpError(status, openai_error(message=message, type=type, code=code), headers)
    return Script(Completion(()), error=error)


@scenario("http_429")
def http_429(request: MockRequest) -> Script:
    """429 with `retry-after: 2` and an OpenAI rate-limit error body."""
    return _http_error(
        429, "Rate limit reached (mock).", "requests", "rate_limit_exceeded", ("retry-after", "2")
    )


@scenario("http_500")
def http_500(request: MockRequest) -> Script:
    """500 with an OpenAI server_error body."""
    return _http_error(500, "Internal server error (mock).", "server_error", "internal_error")


@scenario("http_503")
def http_503(request: MockRequest) -> Script:
    """503, as an overloaded or loading server answers."""
    return _http_error(503, "The server is overloaded (mock).", "server_error", "service_unavailable")


@scenario("http_400")
def http_400(request: MockRequest) -> Script:
    """400 with an OpenAI invalid_request_error body."""
    return _http_error(400, "Invalid request (mock).", "invalid_request_error", "invalid_request")


@scenario("auth_echo_401")
def auth_echo_401(request: MockRequest) -> Script:
    """401 whose error message quotes the credentials it got, as some proxies do."""
    return _http_error(401, f"Invalid credentials: {_credentials(request)}", "invalid_request_error",
                       "invalid_api_key")


@scenario("auth_echo_500")
def auth_echo_500(request: MockRequest) -> Script:
    """500 whose error message dumps the credentials it got, like a debug page."""
    return _http_error(500, f"Upstream failed; request had {_credentials(request)}", "server_error",
                       "internal_error")


@scenario("auth_echo_stream")
def auth_echo_stream(request: MockRequest) -> Script:
    """Two text chunks, then an error chunk quoting the credentials it got (non-streamed: `auth_echo_500`)."""
    if not request.stream:
        return auth_echo_500(request)
    body = orjson.dumps({"error": {"message": f"Upstream failed; request had {_credentials(request)}",
                                   "type": "server_error", "code": 500}})
    deltas = text_deltas(TEXT_REPLY, words_per_delta=2)[:2]
    return Script(Completion(deltas, finish_reason=None), inject=((len(deltas), body),))


def _credentials(request: MockRequest) -> str:
    return (f"Authorization: {request.headers.get('authorization', '')!r}, "
            f"x-api-key: {request.headers.get('x-api-key', '')!r}")


@scenario("reject_prefill")
def reject_prefill(request: MockRequest) -> Script:
    """400 like Claude 4.6+ when the last message is assistant (Anthropic docs, prefill); else `text`."""
    if request.last_role == "assistant":
        return _http_error(400, PREFILL_REJECTED, "invalid_request_error", "invalid_request")
    return text(request)


@scenario("drop_mid_stream")
def drop_mid_stream(request: MockRequest) -> Script:
    """A few chunks (or half the JSON body), then the connection closes: no [DONE], no last chunk."""
    return Script(text(request).completion, drop_after=3)


@scenario("stall")
def stall(request: MockRequest) -> Script:
    """Headers and the first chunk, then a pause of `stall_ms` (non-streamed: before replying)."""
    seconds = request.knobs.stall_ms / 1000
    if not request.stream:
        return Script(text(request).completion, first_byte_delay_s=seconds)
    return Script(text(request).completion, stall_after=1, stall_s=seconds)


@scenario("slow_first_byte")
def slow_first_byte(request: MockRequest) -> Script:
    """A pause of `first_byte_ms` before the status line, then `text`."""
    return Script(text(request).completion, first_byte_delay_s=request.knobs.first_byte_ms / 1000)


@scenario("garbage")
def garbage(request: MockRequest) -> Script:
    """A `data:` line that is not JSON mid-stream, then the rest (non-streamed: a non-JSON body)."""
    return Script(
        text(request).completion, inject=((1, b"{this is not json"),), raw_body=b"{this is not json"
    )


BINARY_JUNK = bytes(range(256)) * 4 + b"\ndata: \x80\x81\xfe\x00{\n\n"
HTML_PAGE = (b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
             b"</center><hr><center>nginx</center></body></html>\n")


@scenario("garbage_binary")
def garbage_binary(request: MockRequest) -> Script:
    """Streamed: the role chunk and two text chunks, then binary junk (NULs, invalid UTF-8, a
    `data:` line that is not JSON) and the connection closes. Non-streamed: the junk as the body."""
    return Script(text(request).completion, raw_body=BINARY_JUNK, raw_stream=BINARY_JUNK, raw_stream_after=3)


@scenario("html_page")
def html_page(request: MockRequest) -> Script:
    """A 200 whose body is a proxy's HTML error page (`text/html`), streamed or not: no SSE, no JSON."""
    return Script(Completion(()), raw_body=HTML_PAGE, raw_stream=HTML_PAGE, content_type=b"text/html")


OVERLONG_WORDS = ("Once", "more,", "the", "backend", "keeps", "writing", "as", "if", "it", "had", "no",
                  "limit", "at", "all.")


@scenario("overlong")
def overlong(request: MockRequest) -> Script:
    """A backend that ignores the request's max tokens: 100 times as many words as it asked for
    (at least 2,000), four per delta, finish `stop`, usage counting what was sent. Pace it with
    `delay_ms` to see the gateway hang up early."""
    limit = request.body.get("max_completion_tokens") or request.body.get("max_tokens")
    words = max(2000, 100 * limit if isinstance(limit, int) else 0)
    deltas = tuple(
        Delta(content="".join(" " + OVERLONG_WORDS[(i + j) % len(OVERLONG_WORDS)] for j in range(4)))
        for i in range(0, words, 4)
    )
    return Script(Completion(deltas))


@scenario("error_chunk")
def error_chunk(request: MockRequest) -> Script:
    """Two text chunks, a `data: {"error": …}` chunk, then [DONE] (non-streamed: HTTP 500)."""
    body = orjson.dumps({"error": {"message": "boom", "type": "server_error", "code": 500}})
    if not request.stream:
        return Script(Completion(()), error=HttpError(500, body))
    # vLLM reports a failure after the stream started as an error data chunk followed by [DONE].
    deltas = text_deltas(TEXT_REPLY, words_per_delta=2)[:2]
    return Script(Completion(deltas, finish_reason=None), inject=((len(deltas), body),))


@scenario("no_done")
def no_done(request: MockRequest) -> Script:
    """A normal stream that ends without `data: [DONE]` (the HTTP body still ends cleanly)."""
    return Script(text(request).completion, done=False)


REPEATED_PREFILL_CONTINUATION = "B) no."
_REPLY_SO_FAR = re.compile(r"<reply_so_far>\n(.*)\n</reply_so_far>", re.S)


@scenario("repeats_prefill")
def repeats_prefill(request: MockRequest) -> Script:
    """A model that rejects prefill like Claude 4.6 (400 on a trailing assistant message) and, asked
    to continue a reply (the gateway's prefill rewrite), repeats the reply so far before going on:
    ``<reply so far>B) no.``. Anything else: `text`."""
    if request.last_role == "assistant":
        return _http_error(400, PREFILL_REJECTED, "invalid_request_error", "invalid_request")
    found = _REPLY_SO_FAR.search(request.last_user_text())
    if found is None:
        return text(request)
    return Script(Completion(text_deltas(found.group(1) + REPEATED_PREFILL_CONTINUATION, words_per_delta=1)))


# ---------------------------------------------------------------------------------------------
# For the real Claude Code CLI (tests/cli): a Bash call whose output is easy to find in the
# next request, and streaming faults whose non-streamed retry succeeds, because Claude Code
# answers a broken stream by sending the same request again without `stream`.

CLI_TOOL_OUTPUT = "hello-from-mock-tool"
CLI_BASH_ARGUMENTS = f'{{"command":"echo {CLI_TOOL_OUTPUT}","description":"Print a marker"}}'


@scenario("bash_echo")
def bash_echo(request: MockRequest) -> Script:
    """One Bash call `echo hello-from-mock-tool`; the tool result is then quoted back as text."""
    return _bash_call(request, call_id="call_mock_echo", arguments=CLI_BASH_ARGUMENTS)


def _bash_call(request: MockRequest, *, call_id: str, arguments: str) -> Script:
    """Text, then one Bash call (its arguments over several chunks); the tool result, once it
    comes back, is quoted as text."""
    if reply := _tool_result_reply(request):
        return reply
    deltas = [Delta(content=TOOL_CALL_TEXT)]
    deltas += tool_call_deltas(index=0, id=call_id, name="Bash", arguments=arguments)
    return Script(Completion(tuple(deltas), finish_reason="tool_calls"))


def _stream_breaks(request: MockRequest, *, drop_after: int) -> Script:
    if not request.stream:
        return text(request)
    return Script(text(request).completion, drop_after=drop_after)


@scenario("stream_drop_then_ok")
def stream_drop_then_ok(request: MockRequest) -> Script:
    """Streamed: the role chunk, then the connection closes before any content. Non-streamed: the
    whole `text` reply, so a client's non-streaming fallback gets an answer."""
    return _stream_breaks(request, drop_after=1)


@scenario("stream_drop_partial_then_ok")
def stream_drop_partial_then_ok(request: MockRequest) -> Script:
    """Streamed: two text chunks, then the connection closes (as `drop_mid_stream`). Non-streamed:
    the whole `text` reply."""
    return _stream_breaks(request, drop_after=3)


@scenario("stream_error_then_ok")
def stream_error_then_ok(request: MockRequest) -> Script:
    """Streamed: the role chunk, then a vLLM error chunk (`data: {"error": …}`) and [DONE], before
    any content. Non-streamed: the whole `text` reply."""
    if not request.stream:
        return text(request)
    body = orjson.dumps({"error": {"message": "boom", "type": "server_error", "code": 500}})
    return Script(Completion((), finish_reason=None), inject=((0, body),))



@scenario("context_limit")
def context_limit(request: MockRequest) -> Script:
    """Older vLLM's context check: 400 when prompt tokens + the requested output tokens exceed
    MAX_MODEL_LEN, before generating; else `text`. vLLM v0.34.0 no longer refuses this (it lowers
    max_tokens, see `vllm_max_tokens_over_max_model_len_400` in quirks.py)."""
    limit = request.body.get("max_completion_tokens") or request.body.get("max_tokens")
    if isinstance(limit, int) and request.prompt_tokens + limit > MAX_MODEL_LEN:
        message = (
            f"'max_tokens' or 'max_completion_tokens' is too large: {limit}. This model's maximum context "
            f"length is {MAX_MODEL_LEN} tokens and your request has {request.prompt_tokens} input tokens "
            f"({limit} > {MAX_MODEL_LEN} - {request.prompt_tokens})."
        )
        return _http_error(400, message, "BadRequestError", 400)
    return text(request)


# One scenario per vLLM / SGLang / Ollama behaviour, copied from their serving code.
from tests.mockbackend import quirks as _quirks  # noqa: E402,F401  (registers its scenarios)
