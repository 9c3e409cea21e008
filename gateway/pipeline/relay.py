"""A streamed call: open it (failures before the first byte are real HTTP errors, which SDKs
retry), then relay the backend's stream to the client as Anthropic events (failures after it
become ``event: error``), recording what went each way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import orjson
from django.conf import settings
from django.http import StreamingHttpResponse

from gateway.backends.base import BackendAdapter, StreamTranslator
from gateway.exchange import Exchange
from gateway.ids import id_new
from gateway.pipeline.complete import upstream_prepare, window_fit
from gateway.pipeline.pings import PING, ChunksWithPings
from gateway.snapshot import RouteInfo
from translation.errors import ApiError
from translation.outputcap import CappedStream
from translation.schemas import MessagesRequest
from translation.sse import ServerSentEvent, SSEDecoder, SSELineTooLong, sse_encode
from translation.usage import usage_merge


async def stream_open(req: MessagesRequest, route: RouteInfo, exchange: Exchange) -> EventStreamResponse:
    """Send the upstream request and wait for its status; the response relays the stream."""
    adapter, call = upstream_prepare(req, route, exchange)
    prompt_tokens = await window_fit(adapter, call, route, exchange)
    # A backend silent beyond three ping intervals gets the client's stream started (pings);
    # while another target could still answer, one silent until the failover deadline is left.
    budget = exchange.failover_budget()
    wait = 3 * settings.STREAM_PING_SECONDS if budget is None else budget
    resp, pending = await adapter.stream_send(call, route, trace=exchange.trace, wait=wait,
                                              give_up=budget is not None)
    exchange.upstream_streaming(pending=pending)
    if adapter.stream_refused(resp):
        body = await adapter.body_drain(resp)
        exchange.upstream_refused(resp.status_code, body)
        raise adapter.upstream_error(backend=route.backend.name, status=resp.status_code, body=body,
                                     headers=resp.headers)
    # message_start's input count: the backend's exact count where it was taken (window_fit),
    # else the estimate of what the backend is sent (template, rewrites and hoisted text included).
    input_tokens = prompt_tokens or adapter.tokens_estimate(call.body)
    translator = CappedStream(adapter.stream_translator(req=req, route=route, message_id=id_new("msg_"),
                                                        input_tokens=input_tokens),
                              max_tokens=req.max_tokens)  # a backend ignoring max_tokens is cut
    relay = StreamRelay(resp, translator, exchange, adapter, backend=route.backend.name)
    response = EventStreamResponse(relay.events(), content_type="text/event-stream")
    response["cache-control"] = "no-cache"
    response["x-accel-buffering"] = "no"
    return response


class EventStreamResponse(StreamingHttpResponse):
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


class StreamRelay:
    """One stream, upstream bytes in, the client's event bytes out (``events``).

    Each upstream chunk is logged (capture ``full``), cut into SSE events, parsed and fed to the
    translator; the events that come out are encoded and logged (capture ``full`` and
    ``metadata``: the stream validator's verdict in the writer thread reads them; they are not
    stored at ``metadata``). The relay stops at the translator's ``message_stop`` or ``error``.
    """

    __slots__ = ("_adapter", "_backend", "_chunk_at", "_chunks", "_client_log", "_clock", "_decoder", "_ended",
                 "_exchange", "_first_byte", "_first_token", "_full", "_keep_events", "_resp", "_translator",
                 "_upstream_log", "_usage")

    def __init__(self, resp: httpx.Response, translator: StreamTranslator, exchange: Exchange,
                 adapter: BackendAdapter, *, backend: str) -> None:
        self._resp = resp
        self._translator = translator
        self._exchange = exchange
        self._adapter = adapter
        self._backend = backend
        self._full, self._keep_events = exchange.capture == "full", exchange.capture != "off"
        self._upstream_log: list[list[Any]] = []
        self._client_log: list[list[Any]] = []
        self._decoder = SSEDecoder(max_line_bytes=settings.SSE_LINE_MAX_BYTES)
        self._chunks: ChunksWithPings | None = None  # made when the client starts reading
        self._clock = exchange.clock  # ms since the request arrived
        self._usage = exchange.upstream_usage  # what the backend reports, folded chunk by chunk
        self._ended = False  # message_stop or error sent: nothing follows
        self._first_byte = False
        self._first_token = False
        self._chunk_at = 0.0  # arrival of the latest upstream chunk

    async def events(self) -> AsyncGenerator[bytes, None]:
        self._chunks = chunks = ChunksWithPings(self._resp, settings.STREAM_PING_SECONDS)
        try:
            self._exchange.stream_started()
            yield self._emit(self._translator.start())
            async for raw in chunks:
                if raw is PING:
                    yield self._emit([{"type": "ping"}])
                    continue
                out = self._chunk(raw)
                if out:
                    yield out
                if self._ended:
                    break
            if not self._ended:
                yield self._upstream_ended()
        except httpx.HTTPError as exc:
            if not self._ended:
                error = self._adapter.transport_error(backend=self._backend, exc=exc)
                if error.source != "client":
                    self._exchange.upstream_broke(error.message)
                yield self._emit(self._translator.fail(error))
        except SSELineTooLong as exc:  # a backend sending without line endings: bounded, not buffered on
            if not self._ended:
                error = ApiError(500, f"backend {self._backend} sent an event-stream line or event longer than "
                                      f"the limit of {exc.limit} bytes (DRAGOMAN_SSE_LINE_MAX_BYTES)",
                                 source="backend")
                self._exchange.upstream_broke(error.message)
                yield self._emit(self._translator.fail(error))
        except (asyncio.CancelledError, GeneratorExit):
            self._exchange.stream_disconnected()
            raise
        finally:
            await self._close()

    def _chunk(self, raw: bytes) -> bytes:
        """The client's bytes for one upstream chunk (several SSE events, or part of one)."""
        self._chunk_at = self._clock()
        if not self._first_byte:
            self._first_byte = True
            self._exchange.upstream_first_byte(self._chunk_at)
        if self._full:
            self._upstream_log.append([self._chunk_at, raw.decode("utf-8", "replace")])
        return self._translate(self._decoder.feed(raw))

    def _translate(self, events: list[ServerSentEvent], *, tail: bool = False) -> bytes:
        """The client's bytes for decoded upstream events; ``tail``: the event the stream ended
        inside (``SSEDecoder.flush``), which is a chunk only if its data is a whole JSON object."""
        translator = self._translator
        out = []
        for sse in events:
            if sse.data == "[DONE]":
                break
            if not sse.data:
                continue
            try:
                chunk = orjson.loads(sse.data)
                problem = "" if isinstance(chunk, dict) else "a JSON object"  # every kind's chunks are objects
            except orjson.JSONDecodeError:
                problem = "JSON"
            if problem:
                if tail:  # cut off mid-line: the message ends as any stream cut short does
                    self._exchange.note("stream.cut_event", "upstream", "The backend's stream ended inside an "
                                        "event whose data is not a whole JSON object; that event was dropped.")
                    break
                out.append(self._emit(translator.fail(ApiError(
                    500, f"backend {self._backend} sent a stream chunk that is not {problem}", source="backend"))))
                break
            usage_merge(self._usage, chunk)
            out.append(self._emit(translator.feed(chunk)))
            if self._ended:
                break
        return b"".join(out)

    def _upstream_ended(self) -> bytes:
        """The backend's stream ended before the message did: its last event may lack the blank
        line that ends it (servers close after ``data: [DONE]`` or one ``\\n``); then finish the
        message, or fail it if cut off."""
        last = self._translate(self._decoder.flush(), tail=True)
        if self._ended:
            return last
        if self._translator.upstream_finished:
            # A missing "data: [DONE]" after a finish_reason is common and harmless.
            return last + self._emit(self._translator.finish())
        return last + self._emit(self._translator.fail(ApiError(
            500, f"backend {self._backend} ended the stream before finishing the message", source="backend")))

    def _emit(self, events: list[dict[str, Any]]) -> bytes:
        """Encode events for the client, logging them and noting the first token and the end."""
        if self._keep_events:
            t = self._clock()
            at = len(self._upstream_log) - 1
            self._client_log.extend([t, at, e] for e in events)
        if not self._first_token and any(e["type"] not in ("message_start", "ping") for e in events):
            self._first_token = True
            self._exchange.first_token(self._chunk_at)
        for e in events:
            if e["type"] in ("message_stop", "error"):
                self._ended = True
                if e["type"] == "error":
                    self._exchange.stream_error(e.get("error", {}))
        return b"".join(sse_encode(e) for e in events)

    async def _close(self) -> None:
        if self._chunks is not None:
            await self._chunks.aclose()
        await self._resp.aclose()
        message = self._translator.message
        self._exchange.stream_ended(upstream_status=self._resp.status_code, message=message,
                                    notes=self._translator.notes, upstream_chunks=self._upstream_log,
                                    client_events=self._client_log if self._keep_events else None)
