"""The load generator: a raw asyncio HTTP/1.1 client, run as its own process.

It shares the two cores with the servers it measures, so it does as little as it can: one
``asyncio.Protocol`` per keep-alive connection, a request pre-encoded once, responses parsed
only as far as needed (status, ``content-length`` or chunked framing, and a byte search for
the first token and the end of the stream). No JSON is decoded.

    python -m tests.bench.loadgen < spec.json > result.json

The spec (one JSON object) names ``host``, ``port``, ``path``, ``headers``, ``body`` (a
string), ``concurrency``, ``requests`` (total), ``time_limit_s``, ``token`` (bytes that mark
content: the first occurrence is the time to first token) and ``end`` (bytes every complete
response contains). Each of ``concurrency`` workers sends requests one after another on its
own connection until ``requests`` have been started or the time limit passes. The result
holds per-request latencies (µs) and counts; percentiles are left to the harness so rounds
can be merged.

Sessions (``sessions.py``): with ``bodies`` (the turns of one session) and ``placeholder``,
each worker replays whole sessions one after another instead, turn by turn on its connection,
every session with the placeholder (in the headers and the bodies) replaced by a tag of its
own. With ``cpu_pid`` (one worker only), the CPU that process spent while each request ran
is read from ``/proc/<pid>/task/*/schedstat`` (nanoseconds, every thread) around it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

REQUEST_TIMEOUT_S = 120.0


@dataclass
class Outcome:
    ok: bool
    status: int = 0
    ttfb_us: int = 0
    ttft_us: int = 0
    total_us: int = 0
    body_bytes: int = 0
    error: str = ""
    req_bytes: int = 0  # the request's body
    cpu_ns: int = 0  # with cpu_pid: the measured process's CPU while the request ran
    start_ms: int = 0  # when it was sent, since the run began (where in a run the tail is)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; ``request()`` sends and resolves when the response is done."""

    def __init__(self, token: bytes, end: bytes) -> None:
        self.token, self.end = token, end
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()
        self._waiter: asyncio.Future[Outcome] | None = None
        self._reset()

    def _reset(self) -> None:
        self._buf = b""
        self._head_done = False
        self._status = 0
        self._length: int | None = None  # content-length, or None when chunked
        self._chunk_left = -1  # chunked: bytes left of the current chunk (+2 for CRLF); -1 = size line next
        self._close_after = False
        self._seen_token = self._seen_end = False
        self._tail = b""
        self._t0 = self._ttfb = self._ttft = 0.0
        self._bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self._finish(error="connection closed mid-response")

    def request(self, raw: bytes) -> asyncio.Future[Outcome]:
        assert self.transport is not None
        self._reset()
        self._waiter = asyncio.get_running_loop().create_future()
        self._t0 = time.perf_counter()
        self.transport.write(raw)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            return
        now = time.perf_counter()
        if not self._head_done:
            self._buf += data
            cut = self._buf.find(b"\r\n\r\n")
            if cut < 0:
                return
            head, data = self._buf[:cut].decode("latin-1"), self._buf[cut + 4:]
            self._buf = b""
            self._head_done = True
            lines = head.split("\r\n")
            self._status = int(lines[0].split(" ", 2)[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "content-length":
                    self._length = int(value)
                elif name == "transfer-encoding" and "chunked" in value:
                    self._length = None
                elif name == "connection" and value == "close":
                    self._close_after = True
            if not data and self._length != 0:
                return
        if not self._ttfb:
            self._ttfb = now
        self._bytes += len(data)
        probe = self._tail + data
        if not self._seen_token and self.token in probe:
            self._seen_token, self._ttft = True, now
        if not self._seen_end and self.end in probe:
            self._seen_end = True
        self._tail = probe[-64:]
        if self._length is not None:
            self._length -= len(data)
            if self._length <= 0:
                self._finish()
        elif self._chunks_done(data):
            self._finish()

    def _chunks_done(self, data: bytes) -> bool:
        """Advance the chunked framing over ``data``; True at the terminating zero-size chunk."""
        buf = self._buf + data if self._buf else data
        pos = 0
        while pos < len(buf):
            if self._chunk_left >= 0:
                step = min(self._chunk_left, len(buf) - pos)
                pos += step
                self._chunk_left -= step
                if self._chunk_left == 0:
                    self._chunk_left = -1
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            pos = eol + 2
            if size == 0:
                self._buf = b""
                return True  # trailers are not used by any server here
            self._chunk_left = size + 2
        self._buf = buf[pos:]
        return False

    def _finish(self, error: str = "") -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        end = time.perf_counter()
        if not error and self._status != 200:
            error = f"status {self._status}"
        if not error and not self._seen_end:
            error = "response incomplete (end marker missing)"
        t0 = self._t0
        waiter.set_result(Outcome(
            ok=not error, status=self._status, error=error, body_bytes=self._bytes,
            ttfb_us=int(((self._ttfb or end) - t0) * 1e6), ttft_us=int(((self._ttft or end) - t0) * 1e6),
            total_us=int((end - t0) * 1e6)))


def cpu_ns(pid: int) -> dict[str, int]:
    """CPU time of each thread of ``pid`` so far, in ns (schedstat's first field: time on CPU)."""
    out: dict[str, int] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
                out[task] = int(f.read().split(None, 1)[0])
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_ns_since(pid: int, before: dict[str, int]) -> int:
    """CPU of ``pid``'s threads since ``before``: a thread started since counts whole, one that
    ended since is left out (its last moments are lost: a server that starts a thread per request
    reads a little low, never negative)."""
    return sum(ns - before.get(task, 0) for task, ns in cpu_ns(pid).items())


@dataclass
class _Run:
    spec: dict[str, Any]
    raw: bytes
    deadline: float
    t0: float = field(default_factory=time.perf_counter)
    turns: list[bytes] = field(default_factory=list)  # a session's requests, placeholder in them
    started: int = 0
    sessions: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    # Sessions of this run differ from every other run's (other rounds, other targets).
    nonce: int = field(default_factory=lambda: random.getrandbits(32))

    def next_requests(self) -> list[bytes]:
        """The requests a worker sends next: one, or a whole session's turns."""
        if not self.turns:
            self.started += 1
            return [self.raw]
        if self.started + len(self.turns) > self.spec["requests"]:
            return []
        self.started += len(self.turns)
        self.sessions += 1
        tag = f"{self.nonce:08x}-0000-4000-8000-{self.sessions:012x}".encode()
        placeholder = self.spec["placeholder"].encode()
        return [turn.replace(placeholder, tag) for turn in self.turns]


async def _worker(run: _Run) -> None:
    loop = asyncio.get_running_loop()
    spec = run.spec
    token, end = spec["token"].encode(), spec["end"].encode()
    pid = spec.get("cpu_pid")
    conn: _Connection | None = None
    pending: list[bytes] = []
    try:
        while time.monotonic() < run.deadline:
            if not pending:
                if run.started >= spec["requests"] or not (pending := run.next_requests()):
                    break
            raw = pending.pop(0)
            cpu0 = cpu_ns(pid) if pid else {}
            sent_at = time.perf_counter()
            try:
                if conn is None or conn.transport is None or conn.transport.is_closing():
                    _, conn = await loop.create_connection(lambda: _Connection(token, end),
                                                           spec["host"], spec["port"])
                outcome = await asyncio.wait_for(conn.request(raw), REQUEST_TIMEOUT_S)
                outcome.req_bytes = len(raw) - raw.index(b"\r\n\r\n") - 4
                outcome.start_ms = int((sent_at - run.t0) * 1000)
                if pid:
                    outcome.cpu_ns = cpu_ns_since(pid, cpu0)
            except (OSError, TimeoutError) as exc:
                outcome = Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:120])
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
            run.outcomes.append(outcome)
            if not outcome.ok:
                run.errors[outcome.error] = run.errors.get(outcome.error, 0) + 1
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
            elif conn is not None and conn._close_after:
                assert conn.transport is not None
                conn.transport.close()
                conn = None
    finally:
        if conn is not None and conn.transport is not None:
            conn.transport.close()


def request_encode(spec: dict[str, Any], body_text: str | None = None) -> bytes:
    body = (spec["body"] if body_text is None else body_text).encode()
    headers = {"host": f"{spec['host']}:{spec['port']}", "content-type": "application/json",
               "content-length": str(len(body)), **spec.get("headers", {})}
    head = f"POST {spec['path']} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


async def load_run(spec: dict[str, Any]) -> dict[str, Any]:
    turns = [request_encode(spec, body) for body in spec.get("bodies", ())]
    run = _Run(spec=spec, raw=request_encode(spec), turns=turns, deadline=time.monotonic() + spec["time_limit_s"])
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(_worker(run) for _ in range(spec["concurrency"])))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    ok = [o for o in run.outcomes if o.ok]
    return {
        "sent": len(run.outcomes), "ok": len(ok), "errors": len(run.outcomes) - len(ok),
        "error_kinds": run.errors, "wall_s": wall,
        "loadgen_cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "ttft_us": [o.ttft_us for o in ok], "total_us": [o.total_us for o in ok],
        "ttfb_us": [o.ttfb_us for o in ok], "body_bytes": sum(o.body_bytes for o in ok),
        "req_bytes": [o.req_bytes for o in ok], "cpu_ns": [o.cpu_ns for o in ok] if spec.get("cpu_pid") else [],
        "start_ms": [o.start_ms for o in ok], "sessions": run.sessions,
    }


def main() -> None:
    spec = json.load(sys.stdin)
    result = asyncio.run(load_run(spec))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
