"""Record exchanges without slowing requests: the request path appends to memory; a writer
thread persists batches. If the store fails, requests still succeed and the loss is counted."""

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
from django.db import close_old_connections

log = logging.getLogger(__name__)

# Header names that carry credentials: the usual ones, and any operator-added header (backend
# capability extra_headers) whose name says it is a key, token, secret or credential.
_SECRET_HEADER_WORDS = ("key", "auth", "token", "secret", "cookie", "password", "credential", "signature")


def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)


def secret_mask(value: str) -> str:
    return "***" + value[-4:] if len(value) > 8 else "***"


def headers_mask(headers: Any) -> dict[str, str]:
    return {k: (secret_mask(v) if _is_secret_header(k) else v) for k, v in headers.items()}


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
    client_model: str = ""
    backend_name: str = ""
    upstream_model: str = ""
    preset: str = ""
    stream: bool = False
    status: int = 0
    stop_reason: str = ""
    error_type: str = ""
    error_message: str = ""
    disconnected: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    client_request: dict[str, Any] = field(default_factory=dict)
    upstream_request: dict[str, Any] = field(default_factory=dict)
    notes: list[dict[str, str]] = field(default_factory=list)
    upstream_response: dict[str, Any] = field(default_factory=dict)
    client_response: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        """Record when something happened, in ms since the request arrived (first time only)."""
        if name not in self.timings:
            self.timings[name] = round((time.perf_counter() - self.started) * 1000, 3)

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    def as_model_kwargs(self) -> dict[str, Any]:
        full = self.capture == "full"
        return {
            "id": self.id, "created_at": self.created_at, "endpoint": self.endpoint,
            "key_name": self.key_name, "client_model": self.client_model[:200],
            "backend_name": self.backend_name, "upstream_model": self.upstream_model[:200],
            "preset": self.preset, "stream": self.stream, "status": self.status,
            "stop_reason": self.stop_reason or "", "error_type": self.error_type,
            "error_message": self.error_message, "disconnected": self.disconnected,
            "input_tokens": self.usage.get("input_tokens"), "output_tokens": self.usage.get("output_tokens"),
            "rewrite_count": len(self.notes),
            "upstream_first_byte_ms": self.timings.get("upstream_first_byte"),
            "first_event_ms": self.timings.get("first_event"),
            "duration_ms": self.timings.get("finished"),
            "client_request": _decode_bodies(self.client_request) if full else {},
            "upstream_request": self.upstream_request if full else {},
            "notes": self.notes,
            "upstream_response": _decode_bodies(self.upstream_response) if full else {},
            "client_response": self.client_response if full else {},
            "timings": self.timings, "usage": self.usage,
        }


def _decode_bodies(part: dict[str, Any]) -> dict[str, Any]:
    """Raw bodies are kept as bytes on the request path and decoded here, in the writer thread."""
    raw = part.get("body_raw")
    if not isinstance(raw, bytes):
        return part
    out = {k: v for k, v in part.items() if k != "body_raw"}
    try:
        out["body"] = orjson.loads(raw)
    except orjson.JSONDecodeError:
        out["body_text"] = raw.decode("utf-8", "replace")
    return out


class Recorder:
    """A queue drained by one daemon thread that writes batches with ``bulk_create``."""

    def __init__(self) -> None:
        self._queue: queue.Queue[ExchangeRecord] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.submitted = 0
        self.persisted = 0
        self.lost = 0
        self.last_error = ""

    def submit(self, record: ExchangeRecord) -> None:
        if record.capture == "off":
            return
        self.submitted += 1
        self._queue.put_nowait(record)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inspector-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            time.sleep(settings.INSPECTOR_FLUSH_SECONDS)  # let a batch gather
            batch = [first]
            while len(batch) < settings.INSPECTOR_BATCH_SIZE:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[ExchangeRecord]) -> None:
        from gateway.services import apikeys_touch
        from inspector.models import Exchange

        try:
            close_old_connections()
            Exchange.objects.bulk_create([Exchange(**r.as_model_kwargs()) for r in batch],
                                         ignore_conflicts=True)
            apikeys_touch(key_ids={r.key_id for r in batch if r.key_id is not None})
            self.persisted += len(batch)
        except Exception as exc:
            self.lost += len(batch)
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("inspector: could not store %d exchanges (%d lost so far): %s",
                      len(batch), self.lost, self.last_error)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.persisted + self.lost >= self.submitted:
                return True
            time.sleep(0.01)
        return False


recorder = Recorder()
