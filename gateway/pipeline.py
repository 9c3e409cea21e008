"""One request, end to end: authenticate, resolve the route, translate, call the backend,
translate back, record. The views in ``gateway.api`` call exactly one function here."""

from __future__ import annotations

import asyncio
import base64
import logging
import weakref
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from gateway.backends import adapter_for
from gateway.backends.base import BackendAdapter, StreamTranslator, UpstreamCall
from gateway.errors import error_response
from gateway.ids import id_new
from gateway.ratelimit import ratelimit_check
from gateway.snapshot import KeyInfo, RouteInfo, Snapshot, snapshot_get
from gateway.tokencount import TOKENIZE_METHODS, tokens_count, upstream_call_count
from gateway.upstream import client_for, response_or_pending, stream_not_sse, transport_error, upstream_error
from inspector.live import live_publish
from inspector.recorder import (
    ExchangeRecord,
    headers_mask,
    recorder,
    secret_mask,
    secrets_redact,
    usage_merge,
)
from translation.errors import ApiError
from translation.jsonbytes import json_bytes
from translation.outputcap import CappedStream, message_capped
from translation.schemas import (
    CountTokensRequest,
    MessagesRequest,
    count_tokens_request_parse,
    messages_request_parse,
)
from translation.sse import SSEDecoder, sse_encode
from translation.tokens import tokens_estimate_body

log = logging.getLogger(__name__)

_PING = object()

# Every exchange not yet finished (gateway.urls' operator status counts them): weak, so a
# record leaves when its request is done with it, and one that never finishes shows as a leak.
records_live: weakref.WeakValueDictionary[str, ExchangeRecord] = weakref.WeakValueDictionary()


def _record_start(request: HttpRequest, endpoint: str) -> ExchangeRecord:
    record = ExchangeRecord(id=request.request_id, endpoint=endpoint,  # type: ignore[attr-defined]
                            capture=settings.INSPECTOR_CAPTURE)
    records_live[record.id] = record
    record.client_request = {
        "method": request.method, "path": request.get_full_path(), "headers": headers_mask(request.headers),
    }
    request.exchange_recorded = True  # type: ignore[attr-defined]  # the middleware records the rest
    return record


def _body_read(request: HttpRequest, record: ExchangeRecord) -> bytes:
    """The body, never more than the limit: a Content-Length over it is refused unread, a body
    without one (chunked) is read one byte past it. Over the limit, the inspector keeps its head."""
    limit = min(settings.MAX_BODY_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or settings.MAX_BODY_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, f"Content-Length must be a number, not {request.META['CONTENT_LENGTH']!r}") from None
    head_max = settings.INSPECTOR_MAX_BODY_BYTES
    raw = request.read(limit + 1 if declared <= limit else head_max)
    if declared > limit or len(raw) > limit:
        record.client_request["body_raw"] = raw[:head_max]
        record.client_request["body_truncated"] = {
            "_truncated": True, "kept": min(len(raw), head_max), "total": declared or None,
            "reason": f"over the {limit}-byte request limit (DRAGOMAN_MAX_BODY_BYTES)"}
        sent = f" ({declared} bytes)" if declared else ""
        raise ApiError(413, f"Request body{sent} is larger than the limit of {limit} bytes: send less, "
                            "e.g. fewer or smaller images or documents")
    record.client_request["body_raw"] = raw
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:  # body_text would replace the bad bytes: keep them exactly too
            exact = raw[:head_max]
            for secret in keys_presented(request):  # masked as the stored text columns are
                exact = exact.replace(secret.encode(), secret_mask(secret).encode()) if len(secret) >= 8 else exact
            record.client_request["body_base64"] = base64.b64encode(exact).decode()
    content_type = request.headers.get("content-type", "application/json")
    if "json" not in content_type.lower():
        raise ApiError(400, f"Content-Type must be application/json, not {content_type!r}")
    return raw


def keys_presented(request: HttpRequest) -> list[str]:
    """The keys a client sent: ``x-api-key`` and ``Authorization: Bearer`` (Claude Code may send both)."""
    presented = []
    if x_api_key := request.headers.get("x-api-key"):
        presented.append(x_api_key.strip())
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        presented.append(auth[7:].strip())
    return presented


def key_authenticate(request: HttpRequest, snap: Snapshot) -> KeyInfo:
    """The enabled key among those presented (compared by hash in constant time), else 401."""
    presented = keys_presented(request)
    if not presented:
        raise ApiError(401, "Missing API key: send it in the x-api-key header (or Authorization: Bearer)")
    for candidate in presented:
        key = snap.key_find(candidate)
        if key is not None:
            if not key.enabled:
                raise ApiError(401, "This API key is disabled")
            return key
    raise ApiError(401, "Invalid API key")


def route_for(snap: Snapshot, model: str, key: KeyInfo) -> RouteInfo:
    route = snap.route_resolve(model)
    if route is None:
        names = [r.pattern for r in snap.routes][:20]
        raise ApiError(404, f"model: no route for {model!r}. Routable models: {', '.join(names) or '(none)'}")
    if not key.allows(model):
        raise ApiError(403, f"This API key may not use model {model!r}")
    return route


Parsed = TypeVar("Parsed", MessagesRequest, CountTokensRequest)


async def _admit(request: HttpRequest, record: ExchangeRecord,
                 parse: Callable[[bytes], Parsed]) -> tuple[Parsed, RouteInfo]:
    """Body, key, rate limit, schema, route: in that order, so each failure is the one a client
    should fix first."""
    raw = _body_read(request, record)
    snap = await snapshot_get()
    record.secrets.extend(keys_presented(request))
    key = key_authenticate(request, snap)
    record.key_id, record.key_name = key.id, key.name
    ratelimit_check(key_id=key.id, per_minute=key.rate_limit_per_minute)
    req = parse(raw)
    record.client_model = req.model
    route = route_for(snap, req.model, key)
    record.secrets.append(route.backend.api_key)
    record.backend_name, record.route = route.backend.name, route.pattern
    record.upstream_model = route.upstream_model or req.model
    record.preset = route.backend.preset
    record.capture = route.backend.capture or settings.INSPECTOR_CAPTURE
    live_publish(record, state="in-flight", stream=bool(getattr(req, "stream", False)))  # live tail
    return req, route


async def _handle(request: HttpRequest, endpoint: str,
                  serve: Callable[[HttpRequest, ExchangeRecord], Awaitable[HttpResponseBase]]) -> HttpResponseBase:
    """Run ``serve``; every failure becomes the Anthropic envelope and is recorded, never a 500 page."""
    record = _record_start(request, endpoint)
    try:
        return await serve(request, record)
    except asyncio.CancelledError:
        # Django cancels the view when the client disconnects (e.g. an SDK timing out on a slow
        # first byte); the upstream call is abandoned with it. 499 is nginx's "client closed".
        record.status, record.disconnected = 499, True
        record.mark("finished")
        recorder.submit(record)
        raise
    except ApiError as exc:
        return _fail(record, exc)
    except Exception:
        log.exception("unexpected error in request %s", record.id)
        return _fail(record, ApiError(500, "Internal error in the gateway; the request id identifies it in "
                                           "the inspector", source="backend"))


async def messages_create(request: HttpRequest) -> HttpResponseBase:
    return await _handle(request, "messages", _messages_serve)


async def _messages_serve(request: HttpRequest, record: ExchangeRecord) -> HttpResponseBase:
    req, route = await _admit(request, record, messages_request_parse)
    record.stream = req.stream
    if req.stream:
        return await _stream_open(req, route, record)
    return await _complete(req, route, record)


def _fail(record: ExchangeRecord, error: ApiError) -> HttpResponse:
    error.message = secrets_redact(error.message, record.secrets)  # a backend may echo its key
    if error.body is not None:  # a native backend's own error body, forwarded as is unless it holds a secret
        text = error.body.decode("utf-8", "replace")
        if (redacted := secrets_redact(text, record.secrets)) != text:
            error.body = redacted.encode()
    record.status, record.error_type, record.error_message = error.status, error.type, error.message
    record.mark("finished")
    recorder.submit(record)
    return error_response(error, record.id)


def _upstream_prepare(req: MessagesRequest, route: RouteInfo,
                      record: ExchangeRecord) -> tuple[BackendAdapter, UpstreamCall, httpx.AsyncClient]:
    adapter = adapter_for(route.backend)
    # The masked copy is enough: adapters read only protocol headers (anthropic-version, -beta).
    call = adapter.call_build(req=req, route=route, client_headers=record.client_request.get("headers"))
    record.notes.extend(n.as_dict() for n in call.notes)
    record.upstream_request = {"url": call.url, "headers": headers_mask(call.headers), "body": call.body}
    record.secrets.append(route.backend.api_key)
    return adapter, call, client_for(route.backend)


# The prompt count before a call (context_window clamp): a local tokenize is milliseconds; a
# backend slower than this is sent the request unclamped rather than keep the client waiting.
PROMPT_COUNT_TIMEOUT_SECONDS = 2.0


async def _window_fit(call: UpstreamCall, route: RouteInfo, record: ExchangeRecord) -> int | None:
    """Clamp the output limit to what the prompt leaves of the model's context window.

    Only where both are known exactly: ``context_window`` set and a backend that tokenizes the
    translated request (``chat_tokenize``, ``llamacpp_tokenize``). Returns the prompt count (it is
    also the exact ``message_start`` input count), or None. A prompt that fills the window alone
    is answered as Anthropic does, 400 "prompt is too long", before the backend is asked.
    """
    caps = route.capabilities
    if not caps.context_window or caps.token_count not in TOKENIZE_METHODS:
        return None
    try:
        count = await asyncio.wait_for(upstream_call_count(call, route), PROMPT_COUNT_TIMEOUT_SECONDS)
    except (ApiError, httpx.HTTPError, orjson.JSONDecodeError, TimeoutError) as exc:
        record.notes.append({"rule": "context_window.count_failed", "path": "max_tokens",
                             "detail": f"The prompt could not be counted ({type(exc).__name__}); "
                                       "max_tokens was sent unclamped."})
        return None
    if not count:
        return None
    room = caps.context_window - count - 1  # llama.cpp stops one short of the window (truncated)
    if room < 1:
        raise ApiError(400, f"prompt is too long: {count} tokens > {caps.context_window} maximum")
    field = caps.max_tokens_field
    asked = call.body.get(field)
    if isinstance(asked, int) and asked > room:
        call.body[field] = room
        record.notes.append({"rule": "max_tokens.context_window", "path": field,
                             "detail": f"max_tokens {asked} does not fit: the prompt is {count} tokens of a "
                                       f"{caps.context_window}-token context window; sent {room}."})
    return count


def _upstream_trace(record: ExchangeRecord) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """httpcore's trace hook: when a connection is ready and the request starts going out, and
    when the response's status and headers arrived (MockTransport calls no hooks: marked after)."""
    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(".send_request_headers.started"):
            record.mark("upstream_connected")
        elif event.endswith(".receive_response_headers.complete"):
            record.mark("upstream_headers")
    return trace


async def _complete(req: MessagesRequest, route: RouteInfo, record: ExchangeRecord) -> HttpResponse:
    adapter, call, client = _upstream_prepare(req, route, record)
    await _window_fit(call, route, record)
    try:
        resp = await client.post(call.url, content=json_bytes(call.body), headers=call.headers,
                                 extensions={"trace": _upstream_trace(record)})
    except httpx.HTTPError as exc:
        raise transport_error(backend=route.backend.name, exc=exc) from None
    for mark in ("upstream_connected", "upstream_headers", "upstream_done"):  # unless traced already
        record.mark(mark)
    record.timings["upstream_first_byte"] = record.timings["upstream_headers"]
    record.upstream_response = {"status": resp.status_code, "body_raw": resp.content}
    if resp.status_code >= 300:
        raise upstream_error(backend=route.backend.name, status=resp.status_code, body=resp.content,
                             headers=resp.headers)
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        raise ApiError(500, f"backend {route.backend.name} returned a body that is not JSON",
                       source="backend") from None
    if not isinstance(body, dict):
        raise ApiError(500, f"backend {route.backend.name} returned JSON that is not an object", source="backend")
    message, notes = adapter.response_translate(body=body, req=req, route=route, message_id=id_new("msg_"))
    message, notes = message_capped(message, notes, max_tokens=req.max_tokens)  # a backend ignoring max_tokens
    record.notes.extend(n.as_dict() for n in notes)
    usage_merge(record.upstream_usage, body)
    record.status = 200
    record.stop_reason = message.get("stop_reason") or ""
    record.usage = message.get("usage") or {}
    record.client_response = {"body": message}
    record.mark("finished")
    recorder.submit(record)
    return HttpResponse(json_bytes(message), content_type="application/json")


async def _stream_open(req: MessagesRequest, route: RouteInfo, record: ExchangeRecord) -> HttpResponseBase:
    """Send the upstream request and wait for its status: failures before the first byte are real
    HTTP errors (SDKs retry those), failures after it become ``event: error``."""
    adapter, call, client = _upstream_prepare(req, route, record)
    prompt_tokens = await _window_fit(call, route, record)
    upstream = client.build_request("POST", call.url, content=json_bytes(call.body), headers=call.headers,
                                    extensions={"trace": _upstream_trace(record)})
    try:
        # A backend silent beyond three ping intervals gets the client's stream started (pings).
        resp, pending = await response_or_pending(client.send(upstream, stream=True), backend=route.backend.name,
                                                  wait=3 * settings.STREAM_PING_SECONDS)
    except httpx.HTTPError as exc:
        raise transport_error(backend=route.backend.name, exc=exc) from None
    if not pending:  # (else the trace marks them when they happen)
        record.mark("upstream_connected")
        record.mark("upstream_headers")
    if resp.status_code >= 300 or stream_not_sse(resp.headers):
        try:
            body = await resp.aread()
        except httpx.HTTPError:
            body = b""
        finally:
            await resp.aclose()
        record.mark("upstream_first_byte")
        record.upstream_response = {"status": resp.status_code, "body_raw": body}
        raise upstream_error(backend=route.backend.name, status=resp.status_code, body=body, headers=resp.headers)
    # message_start's input count: the backend's exact count where it was taken (_window_fit),
    # else the estimate of what the backend is sent (template, rewrites and hoisted text included).
    input_tokens = prompt_tokens or tokens_estimate_body(call.body, kind=adapter.kind)
    translator = CappedStream(adapter.stream_translator(req=req, route=route, message_id=id_new("msg_"),
                                                        input_tokens=input_tokens),
                              max_tokens=req.max_tokens)  # a backend ignoring max_tokens is cut
    response = _EventStreamResponse(_stream_relay(resp, translator, record, route),
                                    content_type="text/event-stream")
    response["cache-control"] = "no-cache"
    response["x-accel-buffering"] = "no"
    return response


class _EventStreamResponse(StreamingHttpResponse):
    """Closes the relay when the server closes the response.

    On a client disconnect Django cancels the response task; if that lands while the server is
    sending, Django closes only its own iterator (``aclosing(aiter(response))``), leaving the
    relay suspended, its upstream connection open until garbage collection.
    """

    def __init__(self, relay: AsyncGenerator[bytes, None], **kwargs: Any) -> None:
        super().__init__(relay, **kwargs)
        self._relay = relay

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._relay:
                yield part
        finally:
            await self._relay.aclose()


class _ChunksWithPings:
    """The upstream response's byte chunks, with ``_PING`` whenever the backend stays silent
    for ``interval``.

    A reader task per stream reads ahead into a small buffer while the relay translates and
    sends, and one timer per silent interval, re-armed from the latest chunk, adds the pings:
    per chunk that is a future, not a task and a timer as ``asyncio.wait(timeout=…)`` costs —
    half the relay's CPU at 1,000 events (docs/performance.md). When the relay stops early (an
    error event, a native ``message_stop``) the response is closed under the read in flight:
    cancelling a read inside httpcore instead leaves its connection "active" in the pool for good.
    """

    # Chunks read before the relay takes them; then the reader waits, so a client that stops
    # reading stops the upstream reads too (as far as the server's send blocks).
    _AHEAD = 8

    def __init__(self, resp: httpx.Response, interval: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._resp = resp
        self._interval = interval
        self._buffer: deque[Any] = deque()  # chunks and pings the relay has not taken yet
        self._error: BaseException | None = None
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None  # the relay, waiting for a chunk
        self._room: asyncio.Future[None] | None = None  # the reader, waiting for buffer space
        self._last = self._loop.time()
        self._timer = self._loop.call_at(self._last + interval, self._tick)
        self._reader = self._loop.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for chunk in self._resp.aiter_bytes():
                self._buffer.append(chunk)
                self._last = self._loop.time()
                self._wake()
                if len(self._buffer) >= self._AHEAD:
                    self._room = self._loop.create_future()
                    await self._room
        except Exception as exc:  # handed to the relay, which maps it (httpx errors) or re-raises
            self._error = exc
        finally:
            self._eof = True
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _tick(self) -> None:
        due = self._last + self._interval
        if self._loop.time() >= due and not self._eof:
            self._last = self._loop.time()
            self._buffer.append(_PING)
            self._wake()
            due = self._last + self._interval
        self._timer = self._loop.call_at(due, self._tick)

    def __aiter__(self) -> _ChunksWithPings:
        return self

    async def __anext__(self) -> Any:
        while not self._buffer:
            if self._eof:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            await self._waiter
            self._waiter = None
        chunk = self._buffer.popleft()
        if chunk is not _PING and self._buffer and self._buffer[0] is not _PING:
            # Several chunks arrived while the relay was busy: one pass (and one send) for all.
            parts = [chunk]
            while self._buffer and self._buffer[0] is not _PING:
                parts.append(self._buffer.popleft())
            chunk = b"".join(parts)
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)
        return chunk

    async def aclose(self) -> None:
        """Stop reading and close the upstream response; returns when the reader has ended."""
        self._timer.cancel()
        if not self._reader.done():
            room = self._room
            if room is None or room.done():  # a read is in flight: it fails once the response closes
                await self._resp.aclose()
                await asyncio.wait({self._reader}, timeout=0.05)
            if not self._reader.done():  # parked on a full buffer, or a stream that close does not end
                self._reader.cancel()
                await asyncio.wait({self._reader})
        await self._resp.aclose()


async def _stream_relay(resp: httpx.Response, translator: StreamTranslator, record: ExchangeRecord,
                        route: RouteInfo) -> AsyncGenerator[bytes, None]:
    # Upstream chunks are kept at capture level full; the client's events also at metadata, for
    # the stream validator's verdict in the writer thread (they are not stored).
    full, keep_events = record.capture == "full", record.capture != "off"
    upstream_log: list[list[Any]] = []
    client_log: list[list[Any]] = []
    decoder = SSEDecoder()
    chunks = _ChunksWithPings(resp, settings.STREAM_PING_SECONDS)
    ended = False
    chunk_at = 0.0  # arrival of the latest upstream chunk

    def emit(events: list[dict[str, Any]]) -> bytes:
        nonlocal ended
        if keep_events:
            t = record.elapsed_ms()
            client_log.extend([t, len(upstream_log) - 1, e] for e in events)
        if "first_token" not in record.timings and any(e["type"] not in ("message_start", "ping") for e in events):
            record.mark("first_token")
            record.timings["first_token_chunk"] = chunk_at
        for e in events:
            if e["type"] in ("message_stop", "error"):
                ended = True
                if e["type"] == "error":
                    err = e.get("error", {})
                    if record.secrets and isinstance(err.get("message"), str):  # a backend may echo its key
                        err["message"] = secrets_redact(err["message"], record.secrets)
                    record.error_type = err.get("type", "")
                    record.error_message = err.get("message", "")
        return b"".join(sse_encode(e) for e in events)

    try:
        record.mark("first_event")
        yield emit(translator.start())
        async for raw in chunks:
            if raw is _PING:
                yield emit([{"type": "ping"}])
                continue
            chunk_at = record.elapsed_ms()
            record.timings.setdefault("upstream_first_byte", chunk_at)
            if full:
                upstream_log.append([chunk_at, raw.decode("utf-8", "replace")])
            out = []
            for sse in decoder.feed(raw):
                if sse.data == "[DONE]":
                    break
                if not sse.data:
                    continue
                try:
                    chunk = orjson.loads(sse.data)
                except orjson.JSONDecodeError:
                    out.append(emit(translator.fail(ApiError(
                        500, f"backend {route.backend.name} sent a stream chunk that is not JSON",
                        source="backend"))))
                    break
                usage_merge(record.upstream_usage, chunk)
                out.append(emit(translator.feed(chunk)))
                if ended:
                    break
            if out:
                yield b"".join(out)
            if ended:
                break
        if not ended:
            if translator.upstream_finished:
                # A missing "data: [DONE]" after a finish_reason is common and harmless.
                yield emit(translator.finish())
            else:
                yield emit(translator.fail(ApiError(
                    500, f"backend {route.backend.name} ended the stream before finishing the message",
                    source="backend")))
    except httpx.HTTPError as exc:
        if not ended:
            yield emit(translator.fail(transport_error(backend=route.backend.name, exc=exc)))
    except (asyncio.CancelledError, GeneratorExit):
        record.disconnected = True
        raise
    finally:
        await chunks.aclose()
        await resp.aclose()
        record.status = 200
        message = translator.message
        record.notes.extend(n.as_dict() for n in translator.notes)
        record.stop_reason = message.get("stop_reason") or ""
        record.usage = message.get("usage") or {}
        record.upstream_response = {"status": resp.status_code, "chunks": upstream_log}
        record.client_response = {"events": client_log, "message": message} if keep_events else {}
        record.mark("finished")
        recorder.submit(record)


async def count_tokens(request: HttpRequest) -> HttpResponseBase:
    return await _handle(request, "count_tokens", _count_tokens_serve)


async def _count_tokens_serve(request: HttpRequest, record: ExchangeRecord) -> HttpResponseBase:
    req, route = await _admit(request, record, count_tokens_request_parse)
    counted = await tokens_count(req, route, client_headers=request.headers)
    result = {"input_tokens": counted.input_tokens}
    record.status = 200
    record.usage = {"input_tokens": counted.input_tokens, "counted": "exact" if counted.exact else "estimate",
                    "method": counted.method, "detail": counted.detail}
    record.client_response = {"body": result}
    record.mark("finished")
    recorder.submit(record)
    return HttpResponse(orjson.dumps(result), content_type="application/json")


def _model_info(route: RouteInfo, name: str) -> dict[str, Any]:
    info: dict[str, Any] = {"type": "model", "id": name, "display_name": name, "created_at": route.created_at}
    if route.capabilities.context_window > 0:  # Claude Code sizes its context from it
        info["max_input_tokens"] = route.capabilities.context_window
    return info


async def models_list(request: HttpRequest, *, limit: int, after_id: str | None,
                      before_id: str | None) -> HttpResponseBase:
    snap = await snapshot_get()
    key = key_authenticate(request, snap)
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit: must be between 1 and 1000")
    seen: set[str] = set()
    models = []
    for route in snap.routes:
        # A glob route lists its aliases, each only if requests for it really reach this route.
        names = route.aliases if route.is_glob else (route.pattern,)
        for name in names:
            if name not in seen and key.allows(name) and (not route.is_glob or snap.route_resolve(name) is route):
                seen.add(name)
                models.append(_model_info(route, name))
    ids = [m["id"] for m in models]
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else len(ids)
        models = models[start:]
        page, has_more = models[:limit], len(models) > limit
    elif before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        models = models[:end]
        page, has_more = models[-limit:], len(models) > limit
    else:
        page, has_more = models[:limit], len(models) > limit
    body = {"data": page, "has_more": has_more,
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}
    return HttpResponse(orjson.dumps(body), content_type="application/json")


async def model_get(request: HttpRequest, *, model_id: str) -> HttpResponseBase:
    snap = await snapshot_get()
    key = key_authenticate(request, snap)
    if not key.allows(model_id):
        raise ApiError(404, f"model: {model_id!r} not found")  # as if absent, like the list
    for route in snap.routes:
        if not route.is_glob and route.pattern == model_id:
            return HttpResponse(orjson.dumps(_model_info(route, route.pattern)), content_type="application/json")
    matched = snap.route_resolve(model_id)
    if matched is None:
        raise ApiError(404, f"model: {model_id!r} not found")
    return HttpResponse(orjson.dumps(_model_info(matched, model_id)), content_type="application/json")
