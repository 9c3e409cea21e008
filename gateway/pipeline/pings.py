"""The upstream stream's byte chunks, read ahead by one task, with a ping marker whenever the
backend stays silent: the asyncio buffering under the stream relay (``gateway.pipeline.relay``)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import httpx

# Stands for "send a ping now" among the chunks (compared by identity).
PING = object()


class ChunksWithPings:
    """The upstream response's byte chunks, with ``PING`` whenever the backend stays silent
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
            self._buffer.append(PING)
            self._wake()
            due = self._last + self._interval
        self._timer = self._loop.call_at(due, self._tick)

    def __aiter__(self) -> ChunksWithPings:
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
        if chunk is not PING and self._buffer and self._buffer[0] is not PING:
            # Several chunks arrived while the relay was busy: one pass (and one send) for all.
            parts = [chunk]
            while self._buffer and self._buffer[0] is not PING:
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
