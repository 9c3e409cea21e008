"""Record exchanges without slowing requests: the request path appends to memory; a writer
thread persists batches. If the store fails, requests still succeed and the loss is counted.

The request path only appends (raw bodies as bytes, events and chunks as they pass); everything
costly happens in the writer thread: decoding bodies, the stream validator's verdict, caps with
their truncation markers, summary columns, and retention (``inspector.retention``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import DataError, close_old_connections, connections, transaction

from inspector.facts import exchange_facts
from inspector.hooks import hooks
from inspector.live import live_publish
from inspector.storage import PieceCache, pieces_present, pieces_store, row_split
from translation.jsonbytes import json_bytes, json_loads_exact
from translation.masking import secrets_redact
from translation.usage import overhead_ms
from translation.validate import stream_validate

log = logging.getLogger(__name__)

CAPTURE_LEVELS = ("full", "metadata", "off")


@dataclass
class ExchangeRecord:
    """Everything known about one request; filled in along the way, persisted once at the end."""

    id: str
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    endpoint: str = "messages"
    capture: str = "full"
    key_id: int | None = None
    key_name: str = ""
    key_hint: str = ""  # the key presented, masked (translation.masking.key_hint)
    client_model: str = ""
    backend_name: str = ""
    route: str = ""
    upstream_model: str = ""
    preset: str = ""
    stream: bool = False
    status: int = 0
    stop_reason: str = ""
    error_type: str = ""
    error_message: str = ""
    disconnected: bool = False
    # Every upstream attempt, in order (gateway.pipeline.attempts): {"backend", "upstream_model",
    # "group", "weight", "reason" (why this target: "only target", "affinity", "least in-flight",
    # "fallback", "last resort"), "outcome" ("ok", "failed", "gave up"), "status" (the backend's,
    # or None when it never answered), "error", "error_type", "started_ms", "ended_ms"}. More than
    # one: the exchange failed over.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    upstream_usage: dict[str, Any] = field(default_factory=dict)
    client_request: dict[str, Any] = field(default_factory=dict)
    upstream_request: dict[str, Any] = field(default_factory=dict)
    notes: list[dict[str, str]] = field(default_factory=list)
    upstream_response: dict[str, Any] = field(default_factory=dict)
    client_response: dict[str, Any] = field(default_factory=dict)
    # The client's key and the backend's: never stored, and masked wherever a body echoes them.
    secrets: list[str] = field(default_factory=list, repr=False)
    # ms since received: upstream_connected (request about to go out on a connection),
    # upstream_headers, upstream_first_byte (streams: first body chunk), upstream_done
    # (non-streaming), first_event, first_token (first event after message_start and pings),
    # first_token_chunk (arrival of the upstream chunk that produced it), finished.
    timings: dict[str, float] = field(default_factory=dict)
    # OpenTelemetry (gateway.tracing; empty when it is off): the trace, and the W3C traceparent
    # naming this exchange's span (what upstream requests carry; not stored).
    trace_id: str = ""
    traceparent: str = ""

    def mark(self, name: str) -> None:
        """Record when something happened, in ms since the request arrived (first time only)."""
        if name not in self.timings:
            self.timings[name] = round((time.perf_counter() - self.started) * 1000, 3)

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    def ttft_ms(self) -> float | None:
        """When the client got its first token: the first content event of a stream, or the
        whole message otherwise."""
        if self.status != 200:
            return None
        return self.timings.get("first_token" if self.stream else "finished")

    def overhead_ms(self) -> float | None:
        """Time the gateway added before the client's first token (``translation.usage.overhead_ms``)."""
        return overhead_ms(self.timings, self.stream)

    def as_model_kwargs(self) -> dict[str, Any]:
        """The Exchange row; runs in the writer thread (decoding, validation and caps are here)."""
        full = self.capture == "full"
        valid, validation_error = self._verdict()
        max_body, max_events = settings.INSPECTOR_MAX_BODY_BYTES, settings.INSPECTOR_MAX_EVENTS
        client_request = (_part_capped(self.client_request, max_body, max_events) if full
                          else _part_meta(self.client_request))
        attempts = attempts_capped(self.attempts)
        row = {
            "id": self.id, "created_at": self.created_at, "endpoint": self.endpoint,
            "key_name": self.key_name[:100], "client_model": self.client_model[:200],
            "backend_name": self.backend_name[:100], "route": self.route[:200],
            "upstream_model": self.upstream_model[:200],
            "preset": self.preset, "stream": self.stream, "status": self.status,
            "stop_reason": (self.stop_reason or "")[:40], "error_type": self.error_type[:40],
            "error_message": self.error_message, "disconnected": self.disconnected,
            "input_tokens": self.usage.get("input_tokens"), "output_tokens": self.usage.get("output_tokens"),
            "rewrite_count": len(self.notes), "capture": self.capture,
            "valid": valid, "validation_error": validation_error,
            "upstream_first_byte_ms": self.timings.get("upstream_first_byte"),
            "first_event_ms": self.timings.get("first_event"),
            "duration_ms": self.timings.get("finished"),
            "ttft_ms": self.ttft_ms(), "overhead_ms": self.overhead_ms(),
            "client_request": client_request,
            "upstream_request": _part_capped(self.upstream_request, max_body, max_events) if full
            else _part_meta(self.upstream_request),
            "notes": self.notes,
            "upstream_response": _part_capped(self.upstream_response, max_body, max_events) if full
            else _part_meta(self.upstream_response),
            "client_response": _part_capped(self.client_response, max_body, max_events) if full else {},
            "timings": self.timings, "usage": self.usage, "upstream_usage": self.upstream_usage,
            "attempts": attempts, "failed_over": len(attempts) > 1, "trace_id": self.trace_id[:32],
        }
        row["key_hint"] = self.key_hint[:40]
        row.update(exchange_facts(
            client_request=client_request if full else self.client_request,
            client_response=self.client_response, usage=self.usage, error_message=self.error_message,
            client_model=self.client_model, backends_tried=_backends_tried(attempts)))
        if self.secrets:
            row.update(secrets_redact({k: row[k] for k in _REDACTED_COLUMNS}, self.secrets))
        return row

    def _verdict(self) -> tuple[bool | None, str]:
        """The stream validator on every event the client received (before any cap)."""
        events = self.client_response.get("events")
        if not self.stream or events is None:
            return None, ""
        violation = stream_validate(e[2] for e in events)
        return violation is None, violation or ""


# Columns that hold what clients and backends sent: where an echoed secret could hide.
_REDACTED_COLUMNS = ("error_message", "validation_error", "client_request", "upstream_request",
                     "upstream_response", "client_response", "notes", "search_text", "user_id", "path",
                     "client_agent", "attempts")

# The gateway records at most this many attempts; the cap here keeps a row small whatever it sends.
ATTEMPTS_MAX = 20
# An attempt's error is what a backend said (an HTML error page, at worst): its start is enough.
ATTEMPT_ERROR_MAX = 2000


def attempts_capped(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The attempts as stored: the first ``ATTEMPTS_MAX``, each error cut at ``ATTEMPT_ERROR_MAX``."""
    out = []
    for attempt in attempts[:ATTEMPTS_MAX]:
        error = attempt.get("error")
        if isinstance(error, str) and len(error) > ATTEMPT_ERROR_MAX:
            attempt = {**attempt, "error": error[:ATTEMPT_ERROR_MAX] + f"… ({len(error)} chars)"}
        out.append(attempt)
    return out


def _backends_tried(attempts: list[dict[str, Any]]) -> list[str]:
    """The backends an exchange that failed over tried, for search (none when it did not)."""
    if len(attempts) < 2:
        return []
    return list(dict.fromkeys(str(a.get("backend") or "") for a in attempts if a.get("backend")))


_NUL_COLUMNS = (*_REDACTED_COLUMNS, "key_name", "client_model", "backend_name", "route", "upstream_model",
                "stop_reason", "error_type", "timings", "usage", "upstream_usage", "session_id", "agent_id",
                "parent_agent_id", "client_agent", "message_id", "path", "key_hint")


def _nul_replace(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\u2400")
    if isinstance(value, dict):
        return {_nul_replace(k): _nul_replace(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nul_replace(v) for v in value]
    return value


def truncation_marker(*, kept: int, total: int) -> dict[str, Any]:
    return {"_truncated": True, "kept": kept, "total": total}


def _body_capped(raw: bytes, limit: int) -> dict[str, Any]:
    """``{"body": …}`` (or ``body_text`` when not JSON); over ``limit`` bytes, ``body`` is a
    truncation marker holding the first ``limit`` bytes as ``head``."""
    if len(raw) > limit:
        return {"body": {**truncation_marker(kept=limit, total=len(raw)),
                         "head": raw[:limit].decode("utf-8", "ignore")}}
    try:
        return {"body": json_loads_exact(raw)}
    except (orjson.JSONDecodeError, ValueError, RecursionError):  # RecursionError: json.loads, very deep
        return {"body_text": raw.decode("utf-8", "replace")}


def _log_capped(entries: list[Any], limit: int) -> tuple[list[Any], dict[str, Any] | None]:
    """At most ``limit`` entries: the first ones and the last few (how a stream ended matters)."""
    if len(entries) <= limit:
        return entries, None
    tail = min(20, limit // 2)
    head = limit - tail
    marker = {**truncation_marker(kept=limit, total=len(entries)), "omitted_after": head}
    return entries[:head] + (entries[-tail:] if tail else []), marker


def _part_capped(part: dict[str, Any], max_body: int, max_events: int) -> dict[str, Any]:
    """A request/response part as stored at capture level full. Raw bodies are kept as bytes on
    the request path and decoded here; parsed bodies are measured as the JSON they become."""
    out: dict[str, Any] = {}
    for key, value in part.items():
        if key == "body_raw" and isinstance(value, bytes):
            out.update(_body_capped(value, max_body))
        elif key in ("body", "message") and value is not None:
            raw = json_bytes(value)
            if len(raw) > max_body:
                out[key] = {**truncation_marker(kept=max_body, total=len(raw)),
                            "head": raw[:max_body].decode("utf-8", "ignore")}
            else:
                out[key] = value
        elif key in ("events", "chunks") and isinstance(value, list):
            out[key], marker = _log_capped(value, max_events)
            if marker is not None:
                out[f"{key}_truncated"] = marker
        else:
            out[key] = value
    return out


def _part_meta(part: dict[str, Any]) -> dict[str, Any]:
    """Capture level metadata: everything but bodies and logs (URL, status, masked headers)."""
    return {k: v for k, v in part.items() if k not in ("body_raw", "body", "message", "events", "chunks")}


class _Stop:
    """Put on the queue by ``Recorder.stop``: the writer writes what came before it and ends."""


_STOP = _Stop()


class Recorder:
    """A queue drained by one daemon thread that writes batches with ``bulk_create``; the server
    and the test setup start it (``start``) and stop it (``stop``: what was submitted is written
    first) through ``gateway.runtime``.

    Counters (read them with ``stats()``): ``submitted`` records queued, ``persisted`` and
    ``lost`` (the store failed) by the writer, ``dropped`` (queue full: the store is down or too
    slow) by the request path, ``skipped`` at capture level off — which is not a loss. A batch
    still gathering counts as queued (``INSPECTOR_QUEUE_MAX`` bounds both together).
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[ExchangeRecord | _Stop] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._written = threading.Condition()  # notified after every batch: ``flush`` waits on it
        self._gathering = 0  # records taken off the queue into a batch not yet being written
        self._not_running_warned = False
        self.started_at = datetime.now(UTC)
        self.submitted = 0
        self.persisted = 0
        self.lost = 0
        self.dropped = 0
        self.skipped = 0
        self.pruned = 0
        self.last_error = ""
        self.last_error_at: datetime | None = None
        self._next_prune: float | None = None
        self._prune_interval = 0.0
        self._pieces = PieceCache()  # the writer thread's own

    def submit(self, record: ExchangeRecord) -> None:
        if record.capture == "off":
            self.skipped += 1
            return
        live_publish(record, state="done")  # live tail (inspector.live): a fire-and-forget task
        if self._queue.qsize() + self._gathering >= settings.INSPECTOR_QUEUE_MAX:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("inspector: writer queue full (%d), %d exchanges dropped so far",
                          settings.INSPECTOR_QUEUE_MAX, self.dropped)
            return
        self.submitted += 1
        self._queue.put_nowait(record)
        if self._thread is None and not self._not_running_warned:
            self._not_running_warned = True
            log.warning("inspector: exchanges are queued but the writer is not running (Recorder.start)")

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inspector-writer", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Write everything submitted so far, then end the writer thread; False if it was still
        writing after ``timeout`` seconds (it is a daemon: it does not hold the process)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return True
        self._queue.put(_STOP)
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        try:
            while True:
                try:
                    if not self._step():
                        return
                except Exception:  # the writer must outlive any bug in one step
                    log.exception("inspector: writer step failed")
                    time.sleep(1.0)
        finally:
            connections.close_all()  # this thread's own: a stopped writer holds no database session

    def _step(self) -> bool:
        """Wait for a record, gather a batch until it is full or ``INSPECTOR_FLUSH_SECONDS``
        have passed since its first record, write it; False once ``stop`` was asked for."""
        try:
            first = self._queue.get(timeout=0.5)
        except queue.Empty:
            self._prune_if_due()
            return True
        go_on = not isinstance(first, _Stop)
        batch: list[ExchangeRecord] = []
        if isinstance(first, ExchangeRecord):
            batch.append(first)
            self._gathering = 1
            deadline = time.monotonic() + settings.INSPECTOR_FLUSH_SECONDS
            while len(batch) < settings.INSPECTOR_BATCH_SIZE:
                try:
                    more = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if isinstance(more, _Stop):
                    go_on = False
                    break
                batch.append(more)
                self._gathering += 1
        if not go_on:  # stopping: what is still queued goes in too, without waiting
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(more, ExchangeRecord):
                    batch.append(more)
        self._gathering = 0
        try:
            for start in range(0, len(batch), max(1, settings.INSPECTOR_BATCH_SIZE)):
                self._write(batch[start:start + max(1, settings.INSPECTOR_BATCH_SIZE)])
        finally:
            with self._written:
                self._written.notify_all()
        if go_on:
            self._prune_if_due()
        return go_on

    def _write(self, batch: list[ExchangeRecord]) -> None:
        from inspector.models import Exchange

        rows = []
        pieces: dict[str, bytes] = {}
        split = settings.INSPECTOR_STORE_PIECES
        for record in batch:
            try:
                row = record.as_model_kwargs()
                if split:
                    pieces.update(row_split(row))
                rows.append(Exchange(**row))
            except Exception as exc:
                self._failed(1, exc)
        if not rows:
            return
        # Pieces are marked used as of the newest exchange that holds them (retention keeps a
        # piece as long as an exchange that late or later is kept, inspector.retention).
        used_at = max(r.created_at for r in rows)
        began = time.time_ns()
        try:
            close_old_connections()
            present = pieces_present(pieces)
            with transaction.atomic():
                stored = pieces_store(pieces, present=present, used_at=used_at, cache=self._pieces)
                Exchange.objects.bulk_create(rows, ignore_conflicts=True)
            self._pieces.remember(stored, used_at)
            self.persisted += len(rows)
        except (DataError, ValueError):  # a row the store refuses (NUL on PostgreSQL) must not cost the others
            self._write_one_by_one(rows, pieces, used_at)
        except Exception as exc:  # the store is down, locked or slow: the whole batch is lost
            self._pieces.forget()  # what it remembers may have been pruned meanwhile
            self._failed(len(rows), exc)
            return
        on_stored = hooks.on_stored
        if on_stored is not None:
            try:
                on_stored(batch, began, time.time_ns())
            except Exception:
                log.warning("inspector: the stored-batch hook failed", exc_info=True)
        on_written = hooks.on_written
        if on_written is None:
            return
        try:
            on_written({r.key_id for r in batch if r.key_id is not None})
        except Exception:
            log.warning("inspector: could not update API keys' last use", exc_info=True)

    def _write_one_by_one(self, rows: list[Any], pieces: dict[str, bytes], used_at: datetime) -> None:
        from inspector.models import Exchange

        try:  # pieces are bytes (no NUL problem): all of them at once, then each row on its own
            present = pieces_present(pieces)
            with transaction.atomic():
                stored = pieces_store(pieces, present=present, used_at=used_at, cache=self._pieces)
            self._pieces.remember(stored, used_at)
        except Exception as exc:
            self._pieces.forget()
            self._failed(len(rows), exc)
            return
        for row in rows:
            try:
                Exchange.objects.bulk_create([row], ignore_conflicts=True)
            except Exception:
                # PostgreSQL refuses NUL in text and jsonb (a backend's junk, a client's "\u0000"):
                # store the exchange with each NUL shown as U+2400 rather than lose it.
                try:
                    for name in _NUL_COLUMNS:
                        setattr(row, name, _nul_replace(getattr(row, name)))
                    Exchange.objects.bulk_create([row], ignore_conflicts=True)
                except Exception as exc:
                    self._failed(1, exc)
                    continue
            self.persisted += 1

    def _failed(self, count: int, exc: Exception) -> None:
        self.lost += count
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_error_at = datetime.now(UTC)
        log.error("inspector: could not store %d exchanges (%d lost so far): %s",
                  count, self.lost + self.dropped, self.last_error)

    def _prune_if_due(self) -> None:
        interval = settings.INSPECTOR_PRUNE_SECONDS
        if interval <= 0:
            self._next_prune = None
            return
        now = time.monotonic()
        if self._next_prune is None or interval != self._prune_interval:  # first pass, or the setting changed
            self._next_prune, self._prune_interval = now + interval, interval
        if now < self._next_prune:
            return
        self._next_prune = now + interval
        from inspector.retention import exchanges_prune

        try:
            close_old_connections()
            self.pruned += exchanges_prune()
        except Exception:
            log.exception("inspector: pruning old exchanges failed")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (tests and shutdown)."""
        with self._written:
            return self._written.wait_for(lambda: self.persisted + self.lost >= self.submitted, timeout)

    def stats(self) -> dict[str, Any]:
        """Counters since this process started; ``lost`` = store failures + queue overflow."""
        return {
            "started_at": self.started_at, "submitted": self.submitted, "persisted": self.persisted,
            "lost": self.lost + self.dropped, "store_failed": self.lost, "dropped": self.dropped,
            "skipped": self.skipped, "queued": self._queue.qsize() + self._gathering, "pruned": self.pruned,
            "last_error": self.last_error, "last_error_at": self.last_error_at,
        }


recorder = Recorder()


def recorder_stats() -> dict[str, Any]:
    """The inspector's counters for this process (shown at the top of the Exchange list)."""
    return recorder.stats()
