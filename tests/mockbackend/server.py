"""A small, fast HTTP/1.1 server that plays an OpenAI-compatible backend from scripts.

Pure asyncio (`asyncio.start_server`) so it has no dependencies beyond orjson and can be the
backend of a benchmark: per request it parses one JSON body, picks a scenario and writes
pre-framed bytes; a stream is written and drained chunk by chunk so pacing (`delay_ms`) and
client back-pressure are real. Endpoints:

    POST   /v1/chat/completions   scripted reply, streamed (SSE, chunked) or not
    POST   /v1/messages           native Anthropic Messages (``native.py``), streamed or not
    POST   /v1/responses          OpenAI Responses API (``responses.py``), streamed or not
    GET    /v1/models             OpenAI list: "mock" and "mock-<scenario>" for each scenario
    POST   /tokenize              vLLM shape {"count", "max_model_len", "tokens"}
    GET    /health, /version
    GET    /_mock/requests        every chat request received (path, headers, body; for a stream
                                  also how and when it ended), oldest first
    DELETE /_mock/requests        forget them
    GET    /_mock/stats           open connections and requests in progress (not counting the
                                  asking connection), for leak checks

No Django here (tests/test_mockbackend_without_django.py checks it), and nothing beyond orjson.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from http import HTTPStatus
from types import TracebackType
from typing import Any

import orjson

from tests.mockbackend.native import anthropic_error, native_respond
from tests.mockbackend.quirks import sglang_tokenize_error
from tests.mockbackend.responses import openai_error_body, responses_respond
from tests.mockbackend.scenarios import (
    MAX_MODEL_LEN,
    REASONING_FIELDS,
    SCENARIOS,
    Completion,
    Delta,
    Knobs,
    MockRequest,
    ScenarioError,
    Script,
    ToolCallFragment,
    chat_template_render,
    knobs_resolve,
    openai_error,
    prompt_tokens_estimate,
    scenario_select,
    tokens_estimate,
)

logger = logging.getLogger(__name__)

HEADER_LIMIT = 1 << 20  # StreamReader limit: the longest request head we accept
DONE = b"data: [DONE]\n\n"
LAST_CHUNK = b"0\r\n\r\n"
_ids = itertools.count(1)


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class _BadRequest(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 framing


async def http_request_read(reader: asyncio.StreamReader) -> HttpRequest | None:
    """Read one request; None when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial.strip():
            raise _BadRequest("truncated request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise _BadRequest("request head too large") from None
    request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    try:
        method, target, version = request_line.split(" ", 2)
    except ValueError:
        raise _BadRequest(f"malformed request line {request_line!r}") from None
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _chunked_body_read(reader)
    else:
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            raise _BadRequest("bad content-length") from None
        body = await reader.readexactly(length) if length > 0 else b""
    return HttpRequest(method.upper(), target.split("?", 1)[0], headers, body, keep_alive)


async def _chunked_body_read(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            raise _BadRequest("bad chunk size") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, ignored
                pass
            return b"".join(parts)
        parts.append((await reader.readexactly(size + 2))[:-2])


def _phrase(status: int) -> str:
    # 529 is Anthropic's "overloaded", which http.HTTPStatus does not know.
    return HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Overloaded"


def http_head(
    status: int, *, content_type: bytes, length: int | None, headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n" % (status, _phrase(status).encode(), content_type)
    ]
    if length is None:
        lines.append(b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n")
    else:
        lines.append(b"content-length: %d\r\n" % length)
    lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers]
    lines.append(b"\r\n")
    return b"".join(lines)


def _json_response(status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    return http_head(status, content_type=b"application/json", length=len(body), headers=headers) + body


def _error_response(
    status: int, message: str, *, type: str = "invalid_request_error", code: Any = None
) -> bytes:
    return _json_response(status, openai_error(message=message, type=type, code=code or status))


async def _pause(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float) -> None:
    """Sleep, but notice a client that went away during a long pause instead of sleeping on."""
    if seconds <= 0.2:
        await asyncio.sleep(seconds)
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        # A plain-TCP StreamReaderProtocol keeps the transport half-open on EOF, so a
        # disconnect shows up as EOF on the reader, not as a closing writer.
        if reader.at_eof() or writer.is_closing():
            raise ConnectionResetError("client went away")
        await asyncio.sleep(min(left, 0.1))


def stream_log_start() -> dict[str, Any]:
    """How one streamed chat reply went, as `/_mock/requests` shows it under `stream`: `started`
    and `ended` in `time.monotonic()` seconds (comparable within the process, e.g. with a
    `MockServerThread` user's clock), `frames` sent, and `outcome`: "streaming", "complete",
    "dropped" (the scenario hung up) or "client_closed" (noticed within 0.1 s during a pause
    longer than 0.2 s, else at the next write)."""
    return {"started": time.monotonic(), "ended": None, "frames": 0, "outcome": "streaming"}


def stream_log_end(log: dict[str, Any], outcome: str) -> None:
    log["ended"] = time.monotonic()
    log["outcome"] = outcome


# ---------------------------------------------------------------------------------------------
# Rendering a Completion (openai-python types/chat/chat_completion_chunk.py)


def _reasoning_keys(reasoning_field: str) -> tuple[str, ...]:
    # vLLM PR #27752 sent both names at once; older vLLM / SGLang / DeepSeek `reasoning_content`;
    # current vLLM / Ollama / OpenRouter `reasoning` (docs/backends.md).
    return ("reasoning", "reasoning_content") if reasoning_field == "both" else (reasoning_field,)


def _fragment_dict(fragment: ToolCallFragment) -> dict[str, Any]:
    if fragment.id is None and fragment.name is None:
        return {"index": fragment.index, "function": {"arguments": fragment.arguments}}
    function = {"name": fragment.name, "arguments": fragment.arguments}
    return {"index": fragment.index, "id": fragment.id, "type": "function", "function": function}


def delta_dict(delta: Delta, reasoning_keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if delta.reasoning is not None:
        for key in reasoning_keys:
            out[key] = delta.reasoning
    if delta.content is not None:
        out["content"] = delta.content
    if delta.tool_calls is not None:
        out["tool_calls"] = [_fragment_dict(fragment) for fragment in delta.tool_calls]
    return out


def usage_render(completion: Completion, *, prompt_tokens: int) -> dict[str, Any]:
    reasoning = "".join(d.reasoning or "" for d in completion.deltas)
    output = "".join(
        (d.content or "") + "".join(f.arguments + (f.name or "") for f in d.tool_calls or ())
        for d in completion.deltas
    )
    completion_tokens = completion.completion_tokens
    if completion_tokens is None:
        completion_tokens = tokens_estimate(reasoning + output) if reasoning or output else 0
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if completion.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": completion.cached_tokens}
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": tokens_estimate(reasoning)}
    return usage


def completion_render(
    completion: Completion, *, id: str, created: int, model: str, reasoning_field: str, usage: dict[str, Any]
) -> dict[str, Any]:
    """The non-streamed `chat.completion`: content joined, tool calls assembled by index."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    saw_tool_calls = False
    for delta in completion.deltas:
        if delta.content is not None:
            content.append(delta.content)
        if delta.reasoning is not None:
            reasoning.append(delta.reasoning)
        if delta.tool_calls is not None:
            saw_tool_calls = True
            for fragment in delta.tool_calls:
                call = calls.setdefault(
                    fragment.index,
                    {"id": None, "type": "function", "function": {"name": None, "arguments": ""}},
                )
                call["id"] = fragment.id or call["id"]
                call["function"]["name"] = fragment.name or call["function"]["name"]
                call["function"]["arguments"] += fragment.arguments
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(content) if content or not calls else None,
    }
    if reasoning:
        for key in _reasoning_keys(reasoning_field):
            message[key] = "".join(reasoning)
    if saw_tool_calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": completion.finish_reason,
    }
    if completion.stop_field:
        choice[completion.stop_field] = completion.stop_reason
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


def stream_render(
    script: Script,
    *,
    id: str,
    created: int,
    model: str,
    reasoning_field: str,
    include_usage: bool,
    usage: dict[str, Any],
) -> Iterator[bytes]:
    """SSE events (`data: …\\n\\n`): role chunk, one chunk per delta, finish, usage, [DONE].

    Everything but the delta is pre-encoded once per stream, so a chunk costs one small
    orjson.dumps.
    """
    completion = script.completion
    prefix = (
        b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b,"choices":[{"index":0,"delta":'
        % (
            orjson.dumps(id),
            created,
            orjson.dumps(model),
        )
    )
    # With include_usage, "all other chunks will also include a usage field, but with a null
    # value" (OAI chat_completion_stream_options_param.py, openai-python types/chat/chat_completion_chunk.py).
    tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"
    suffix = b',"logprobs":null,"finish_reason":null}]' + tail
    keys = _reasoning_keys(reasoning_field)
    inject: dict[int, list[bytes]] = {}
    for position, payload in script.inject:
        inject.setdefault(position, []).append(b"data: " + payload + b"\n\n")

    yield prefix + b'{"role":"assistant","content":""}' + suffix
    for position, delta in enumerate(completion.deltas):
        yield from inject.get(position, ())
        yield prefix + orjson.dumps(delta_dict(delta, keys)) + suffix
    yield from inject.get(len(completion.deltas), ())
    if completion.finish_reason is not None:
        stop = b""
        if completion.stop_field:
            stop = b',"%b":%b' % (completion.stop_field.encode(), orjson.dumps(completion.stop_reason))
        yield (
            prefix
            + b'{},"logprobs":null,"finish_reason":%b%b}]' % (orjson.dumps(completion.finish_reason), stop)
            + tail
        )
        if include_usage:
            chunk = {
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    if script.done:
        yield DONE


# Made up, in the format of fingerprint.py's default ("full") mode: vllm-<version>-<hash8>.
VLLM_FINGERPRINT = "vllm-0.11.1-3f2a9c4e"


def stream_render_vllm(
    script: Script, *, id: str, created: int, model: str, reasoning_field: str, include_usage: bool,
    usage: dict[str, Any],
) -> Iterator[bytes]:
    """The chunks vLLM's OpenAI server writes, field for field: vllm-project/vllm
    vllm/entrypoints/openai/chat_completion/serving.py (commit 006c49d485f9),
    ``chat_completion_stream_generator``, which serializes ``ChatCompletionStreamResponse``
    (chat_completion/protocol.py) with ``model_dump_json(exclude_unset=True)``. The role chunk
    sets ``prompt_token_ids`` (null unless ``return_token_ids``; serving_chat.py at 99c5632fc2d2),
    every token chunk sets ``logprobs``, ``finish_reason`` and ``token_ids`` (null), the last one
    also ``stop_reason``; the usage chunk (``exclude_none``) has ``choices: []`` and carries
    ``system_fingerprint`` (fingerprint.py), which goes on the finish chunk instead when usage
    is not asked for. No ``usage: null`` on the other chunks, unlike OpenAI."""
    completion = script.completion
    head = b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b,"choices":[' % (
        orjson.dumps(id), created, orjson.dumps(model))
    keys = _reasoning_keys(reasoning_field)
    inject: dict[int, list[bytes]] = {}
    for position, payload in script.inject:
        inject.setdefault(position, []).append(b"data: " + payload + b"\n\n")
    yield head + b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],' \
        b'"prompt_token_ids":null}\n\n'
    for position, delta in enumerate(completion.deltas):
        yield from inject.get(position, ())
        yield (head + b'{"index":0,"delta":%b,"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
               % orjson.dumps(delta_dict(delta, keys)))
    yield from inject.get(len(completion.deltas), ())
    if completion.finish_reason is not None:
        fingerprint = b"" if include_usage else b',"system_fingerprint":%b' % orjson.dumps(VLLM_FINGERPRINT)
        yield (head + b'{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":%b,"stop_reason":%b,'
               b'"token_ids":null}]%b}\n\n'
               % (orjson.dumps(completion.finish_reason), orjson.dumps(completion.stop_reason), fingerprint))
        if include_usage:
            counts = {"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["total_tokens"],
                      "completion_tokens": usage["completion_tokens"]}
            counts.update((k, v) for k, v in usage.items() if k.endswith("_details"))
            yield head + b'],"usage":%b,"system_fingerprint":%b}\n\n' % (
                orjson.dumps(counts), orjson.dumps(VLLM_FINGERPRINT))
    if script.done:
        yield DONE


# ---------------------------------------------------------------------------------------------
# The server

Handler = Callable[[HttpRequest, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


class MockServer:
    """One listening socket; `requests` records every chat request (bounded by max_records)."""

    def __init__(
        self,
        *,
        default_scenario: str,
        knobs: Knobs,
        models: tuple[str, ...],
        max_records: int,
        owned_by: str = "dragoman-mock",
        version: str = "mock",
    ) -> None:
        if default_scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {default_scenario!r}")
        if knobs.reasoning_field not in REASONING_FIELDS:
            raise ValueError(f"reasoning_field must be one of {REASONING_FIELDS}")
        self.default_scenario = default_scenario
        self.knobs = knobs
        self.max_records = max_records
        self.requests: list[dict[str, Any]] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # one per open connection
        self._busy = 0  # connections inside a handler (a request in progress)
        created = int(time.time())
        ids = [*models, *(f"mock-{name}" for name in SCENARIOS)]
        self._models_body = orjson.dumps(
            {
                "object": "list",
                "data": [
                    {
                        "id": model,
                        "object": "model",
                        "created": created,
                        "owned_by": owned_by,
                        "max_model_len": MAX_MODEL_LEN,
                    }
                    for model in ids
                ],
            }
        )
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): self._chat_completions,
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/responses"): self._responses,
            ("GET", "/v1/models"): self._static(self._models_body),
            ("GET", "/health"): self._static(b'{"status":"ok"}'),
            ("GET", "/version"): self._static(orjson.dumps({"version": version})),
            ("POST", "/tokenize"): self._tokenize,
            ("POST", "/v1/tokenize"): self._tokenize,
            ("POST", "/apply-template"): self._apply_template,
            ("POST", "/v1/messages/count_tokens"): self._messages_count_tokens,
            ("GET", "/_mock/requests"): self._requests_list,
            ("DELETE", "/_mock/requests"): self._requests_clear,
            ("GET", "/_mock/stats"): self._stats,
        }
        self._paths = {path for _, path in self._routes}

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL (ends in /v1)."""
        return f"{self.origin}/v1"

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._connection, host, port, limit=HEADER_LIMIT, backlog=2048
        )
        self.port = self._server.sockets[0].getsockname()[1]
        # The URL names the host we were given; a wildcard bind is reached via loopback.
        self.host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Keep-alive connections would otherwise outlive the server (and wait_closed waits for
        # them on Python 3.12+).
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> MockServer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- connection loop ---------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    request = await http_request_read(reader)
                except _BadRequest as error:
                    writer.write(_error_response(400, str(error)))
                    await writer.drain()
                    break
                if request is None:
                    break
                handler = self._routes.get((request.method, request.path))
                if handler is None:
                    status = 405 if request.path in self._paths else 404
                    message = f"{HTTPStatus(status).phrase}: {request.method} {request.path}"
                    response = _error_response(status, message, code="not_found" if status == 404 else None)
                    if not await self._reply(writer, request, response):
                        break
                    continue
                self._busy += 1
                try:
                    keep_alive = await handler(request, reader, writer)
                finally:
                    self._busy -= 1
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request or mid-stream: nothing to tell anyone
        except asyncio.CancelledError:
            # close() cancels open connections. This is the connection's top-level task, and
            # asyncio 3.11 logs a cancelled client_connected_cb task as an error, so end quietly.
            pass
        except Exception:
            logger.exception("mock backend: request failed")
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    def _static(self, body: bytes) -> Handler:
        response = _json_response(200, body)

        async def handler(
            request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> bool:
            return await self._reply(writer, request, response)

        return handler

    async def _reply(self, writer: asyncio.StreamWriter, request: HttpRequest, response: bytes) -> bool:
        writer.write(response)
        await writer.drain()
        return request.keep_alive

    # -- endpoints ---------------------------------------------------------------------------

    async def _requests_list(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        return await self._reply(writer, request, _json_response(200, orjson.dumps(self.requests)))

    def stats(self) -> dict[str, int]:
        """Open connections and requests in progress (for a caller outside any connection)."""
        return {"connections": len(self._tasks), "busy": self._busy}

    async def _stats(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        # Not counting the connection that asks, which is open and busy with this request.
        body = {"connections": len(self._tasks) - 1, "busy": self._busy - 1}
        return await self._reply(writer, request, _json_response(200, orjson.dumps(body)))

    async def _requests_clear(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        self.requests.clear()  # in place: MockServerThread users hold this list
        return await self._reply(writer, request, _json_response(200, b'{"cleared":true}'))

    async def _tokenize(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return await self._reply(writer, request, _error_response(400, "Request body is not valid JSON"))
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            text = chat_template_render(
                messages=body["messages"],
                tools=body.get("tools"),
                add_generation_prompt=body.get("add_generation_prompt", True) is not False,
                continue_final_message=body.get("continue_final_message") is True,
            )
        elif isinstance(body, dict) and isinstance(body.get("prompt"), str):
            text = body["prompt"]
        elif isinstance(body, dict) and isinstance(body.get("content"), str):  # llama.cpp
            text = body["content"]
        else:
            return await self._reply(writer, request, _error_response(400, "Expected 'messages' or 'prompt'"))
        self._record({"path": request.path, "headers": dict(request.headers), "body": body})
        if refusal := self._tokenize_refusal(body, request.headers):
            return await self._reply(writer, request, _json_response(400, refusal))
        count = tokens_estimate(text)
        response = {
            "count": count,
            "max_model_len": MAX_MODEL_LEN,
            "tokens": list(range(count)),
            "token_strs": None,
        }
        return await self._reply(writer, request, _json_response(200, orjson.dumps(response)))

    def _tokenize_refusal(self, body: dict[str, Any], headers: dict[str, str]) -> bytes | None:
        """What SGLang's tokenizer refuses, for a request whose scenario is an SGLang one."""
        try:
            name, _ = scenario_select(body=body, headers=headers, default=self.default_scenario)
        except ScenarioError:
            return None
        message = sglang_tokenize_error(body) if name.startswith("sglang_") else None
        if message is None:
            return None
        return orjson.dumps({"object": "error", "message": message, "type": "BadRequestError", "param": None,
                             "code": 400})

    async def _apply_template(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """llama.cpp: render a chat request with the (ChatML-like) template: ``{"prompt": …}``."""
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return await self._reply(writer, request, _error_response(400, "Request body is not valid JSON"))
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return await self._reply(writer, request, _error_response(400, "Expected 'messages'"))
        self._record({"path": request.path, "headers": dict(request.headers), "body": body})
        prompt = chat_template_render(
            messages=body["messages"],
            tools=body.get("tools"),
            add_generation_prompt=body.get("add_generation_prompt", True) is not False,
            continue_final_message=body.get("continue_final_message") is True,
        )
        return await self._reply(writer, request, _json_response(200, orjson.dumps({"prompt": prompt})))

    async def _messages_count_tokens(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Anthropic count_tokens: one token per 4 bytes of the compact request; 400 on max_tokens,
        which the real endpoint refuses."""
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return await self._reply(writer, request, _error_response(400, "Request body is not valid JSON"))
        self._record({"path": request.path, "headers": dict(request.headers), "body": body})
        if not isinstance(body, dict) or "max_tokens" in body or not isinstance(body.get("messages"), list):
            error = {"type": "error", "error": {"type": "invalid_request_error",
                                                "message": "max_tokens: Extra inputs are not permitted"}}
            return await self._reply(writer, request, _json_response(400, orjson.dumps(error)))
        count = tokens_estimate(orjson.dumps(body).decode())
        return await self._reply(writer, request, _json_response(200, orjson.dumps({"input_tokens": count})))

    def _record(self, entry: dict[str, Any]) -> None:
        self.requests.append(entry)
        if len(self.requests) > self.max_records:
            del self.requests[: len(self.requests) - self.max_records]

    async def _messages(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        entry: dict[str, Any] = {"path": request.path, "headers": request.headers, "body": None, "scenario": None}
        self._record(entry)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            entry["body"] = request.body.decode("utf-8", "replace")
            error = anthropic_error("invalid_request_error", "Request body is not valid JSON")
            return await self._reply(writer, request, _json_response(400, error))
        entry["body"] = body
        answer = native_respond(body, request.headers)
        entry["scenario"] = answer.scenario
        if answer.frames is None:
            return await self._reply(writer, request, _json_response(answer.status, answer.body, answer.headers))
        writer.write(http_head(200, content_type=b"text/event-stream", length=None, headers=answer.headers))
        delay = self.knobs.delay_ms / 1000
        for n, frame in enumerate(answer.frames):
            if n and delay:
                await _pause(reader, writer, delay)
            writer.write(b"%x\r\n%b\r\n" % (len(frame), frame))
            await writer.drain()
        writer.write(LAST_CHUNK)
        await writer.drain()
        return request.keep_alive

    async def _responses(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        entry: dict[str, Any] = {"path": request.path, "headers": request.headers, "body": None, "scenario": None}
        self._record(entry)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            entry["body"] = request.body.decode("utf-8", "replace")
            return await self._reply(writer, request, _json_response(400, openai_error_body("Invalid JSON body")))
        entry["body"] = body
        answer = responses_respond(body, request.headers)
        entry["scenario"] = answer.scenario
        if answer.frames is None:
            return await self._reply(writer, request, _json_response(answer.status, answer.body, answer.headers))
        writer.write(http_head(200, content_type=b"text/event-stream", length=None, headers=answer.headers))
        for frame in answer.frames:
            writer.write(b"%x\r\n%b\r\n" % (len(frame), frame))
            await writer.drain()
        writer.write(LAST_CHUNK)
        await writer.drain()
        return request.keep_alive

    async def _chat_completions(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        entry: dict[str, Any] = {
            "path": request.path,
            "headers": request.headers,
            "body": None,
            "scenario": None,
        }
        self._record(entry)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            entry["body"] = request.body.decode("utf-8", "replace")
            return await self._reply(writer, request, _error_response(400, "Request body is not valid JSON"))
        entry["body"] = body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return await self._reply(
                writer, request, _error_response(400, "'messages' is required and must be a list")
            )
        if body.get("continue_final_message") is True and body.get("add_generation_prompt") is True:
            # vLLM's request validator (Anthropic docs, prefill).
            message = "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
            return await self._reply(writer, request, _error_response(400, message))
        try:
            name, args = scenario_select(body=body, headers=request.headers, default=self.default_scenario)
            knobs = knobs_resolve(defaults=self.knobs, headers=request.headers, args=args)
        except ScenarioError as bad:
            return await self._reply(writer, request, _error_response(400, str(bad)))
        entry["scenario"] = name
        mock_request = MockRequest(body, request.headers, knobs, prompt_tokens_estimate(body))
        script = SCENARIOS[name](mock_request)
        scenario_header = (("x-mock-scenario", name),)

        if script.first_byte_delay_s:
            await _pause(reader, writer, script.first_byte_delay_s)
        if script.error is not None:
            error = script.error
            return await self._reply(
                writer, request, _json_response(error.status, error.body, error.headers + scenario_header)
            )

        model = body["model"] if isinstance(body.get("model"), str) else "mock"
        id = f"chatcmpl-mock{next(_ids):08x}"
        created = int(time.time())
        usage = usage_render(script.completion, prompt_tokens=mock_request.prompt_tokens)
        if not mock_request.stream:
            payload = script.raw_body
            if payload is None:
                rendered = completion_render(
                    script.completion,
                    id=id,
                    created=created,
                    model=model,
                    reasoning_field=knobs.reasoning_field,
                    usage=usage,
                )
                payload = orjson.dumps(rendered)
            content_type = script.content_type or b"application/json"
            response = http_head(200, content_type=content_type, length=len(payload), headers=scenario_header)
            response += payload
            if script.drop_after is not None:
                # Promise the whole body, send half of it, hang up.
                writer.write(response[: len(response) - len(payload) // 2])
                await writer.drain()
                return False
            return await self._reply(writer, request, response)

        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        render = stream_render_vllm if knobs.chunks == "vllm" else stream_render
        frames = render(
            script,
            id=id,
            created=created,
            model=model,
            reasoning_field=knobs.reasoning_field,
            include_usage=include_usage,
            usage=usage,
        )
        # The log exists before the head goes out: a reader in another thread may look as soon as it sees 200.
        entry["stream"] = stream_log = stream_log_start()
        content_type = script.content_type or b"text/event-stream"
        writer.write(http_head(200, content_type=content_type, length=None, headers=scenario_header))
        delay = knobs.delay_ms / 1000
        sent = 0
        try:
            for frame in frames:
                if sent and delay:
                    await _pause(reader, writer, delay)
                if script.raw_stream is not None and sent == script.raw_stream_after:
                    writer.write(b"%x\r\n%b\r\n%b" % (len(script.raw_stream), script.raw_stream, LAST_CHUNK))
                    await writer.drain()
                    stream_log_end(stream_log, "complete")
                    return False
                if sent == script.drop_after:
                    await writer.drain()
                    stream_log_end(stream_log, "dropped")
                    return False  # the connection loop closes the socket: no last chunk, no [DONE]
                writer.write(b"%x\r\n%b\r\n" % (len(frame), frame))
                await writer.drain()
                sent = stream_log["frames"] = sent + 1
                if sent == script.stall_after:
                    await _pause(reader, writer, script.stall_s)
            writer.write(LAST_CHUNK)
            await writer.drain()
        except ConnectionError:
            stream_log_end(stream_log, "client_closed")
            raise
        stream_log_end(stream_log, "complete")
        return request.keep_alive


async def mock_server_start(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    scenario: str = "demo",
    delay_ms: float = 0.0,
    reasoning_field: str = "reasoning_content",
    events: int = 20,
    stall_ms: float = 30000.0,
    first_byte_ms: float = 2000.0,
    chunks: str = "openai",
    models: tuple[str, ...] = ("mock",),
    max_records: int = 1000,
    owned_by: str = "dragoman-mock",
    version: str = "mock",
) -> MockServer:
    """Start a mock backend on the running loop. Keyword defaults apply to every request
    unless a request overrides them (x-mock-* headers or directive arguments). `max_records`
    bounds `requests` (oldest dropped first) so a long benchmark does not keep every body.
    `owned_by` (in /v1/models) and `version` (GET /version) let it pass for a given server,
    e.g. owned_by="vllm", version="0.11.0" for the admin's probe."""
    knobs = replace(
        Knobs(),
        delay_ms=delay_ms,
        reasoning_field=reasoning_field,
        events=events,
        stall_ms=stall_ms,
        first_byte_ms=first_byte_ms,
        chunks=chunks,
    )
    server = MockServer(
        default_scenario=scenario,
        knobs=knobs,
        models=models,
        max_records=max_records,
        owned_by=owned_by,
        version=version,
    )
    await server.start(host, port)
    return server


class MockServerThread:
    """A mock backend on its own event loop in a daemon thread, for sync tests and fixtures.

    with MockServerThread() as backend:
        httpx.post(backend.url + "/chat/completions", json=...)
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", **defaults: Any) -> None:
        self._host = host
        self._port = port
        self._defaults = defaults
        self._server: MockServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()

    @property
    def server(self) -> MockServer:
        if self._server is None:
            raise RuntimeError("MockServerThread is not running")
        return self._server

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def origin(self) -> str:
        return self.server.origin

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.server.requests

    def start(self) -> MockServerThread:
        self._thread = threading.Thread(target=self._run, name="mockbackend", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                mock_server_start(self._host, self._port, **self._defaults)
            )
        except BaseException as error:
            self._error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(self._server.close())
        finally:
            loop.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> MockServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
