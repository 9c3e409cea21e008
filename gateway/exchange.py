"""One request's mutable context: the inspector's ``ExchangeRecord`` (the plain data it stores)
and the named transitions the pipeline takes, each writing the fields and timing marks that
step owns. ``finish`` hands the record to the recorder, exactly once; an ending after it (the
record may already be in the writer thread) changes nothing."""

from __future__ import annotations

import base64
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from gateway.backends.base import UpstreamCall
from gateway.observe import exchange_observed
from gateway.snapshot import KeyInfo, RouteInfo, Target
from gateway.tracing import tracing
from inspector.live import live_publish
from inspector.recorder import ExchangeRecord, recorder
from translation.errors import ApiError
from translation.masking import headers_mask, key_hint, secret_mask, secrets_redact
from translation.notes import RewriteNote
from translation.usage import usage_merge


def error_sent(error: ApiError, request_id: str) -> dict[str, Any]:
    """What the client received for ``error``, as the inspector stores a response: the status and
    the body (gateway.errors.error_response sends the same)."""
    if error.body is not None:
        return {"status": error.status, "body_raw": error.body}
    return {"status": error.status, "body": error.envelope(request_id)}


class LiveExchanges:
    """Every exchange not yet finished (gateway.urls' operator status counts them): weak, so a
    record leaves when its request is done with it, and one that never finishes shows as a leak."""

    def __init__(self) -> None:
        self._records: weakref.WeakValueDictionary[str, ExchangeRecord] = weakref.WeakValueDictionary()

    def add(self, record: ExchangeRecord) -> None:
        self._records[record.id] = record

    def values(self) -> list[ExchangeRecord]:
        return list(self._records.values())

    def in_flight(self) -> int:
        return sum(1 for record in self.values() if "finished" not in record.timings)

    def __iter__(self) -> Iterator[ExchangeRecord]:
        return iter(self.values())

    def __len__(self) -> int:
        return len(self._records)


records_live = LiveExchanges()


# Attempts kept on a record: a route's attempt limit is smaller in any sane configuration.
ATTEMPTS_RECORDED_MAX = 20
_UPSTREAM_MARKS = ("upstream_connected", "upstream_headers", "upstream_first_byte", "upstream_done")


class Exchange:
    __slots__ = ("_broke", "_failover_until", "_finished", "_notes_base", "_on_end", "record")

    def __init__(self, record: ExchangeRecord) -> None:
        self.record = record
        self._finished = False
        self._notes_base = -1  # the notes made before the first attempt (admission's)
        self._on_end: Callable[[str], None] | None = None  # the chosen target's release (gateway.health)
        self._broke = ""  # why the backend's stream broke after the client's had begun
        self._failover_until: float | None = None  # ms: a silent target is left for the next before it

    @classmethod
    def start(cls, request: HttpRequest, endpoint: str) -> Exchange:
        """The exchange of an API request that reached the pipeline (the middleware records the others)."""
        record = ExchangeRecord(id=request.request_id, endpoint=endpoint,  # type: ignore[attr-defined]
                                capture=settings.INSPECTOR_CAPTURE)
        records_live.add(record)
        record.client_request = {
            "method": request.method, "path": request.get_full_path(), "headers": headers_mask(request.headers),
        }
        request.exchange_recorded = True  # type: ignore[attr-defined]
        tracing.exchange_begin(record, request.headers)  # its trace, for the traceparent sent upstream
        return cls(record)

    # -- admission --------------------------------------------------------------------------

    @property
    def client_headers(self) -> Mapping[str, str] | None:
        """The client's headers as stored (masked: enough for the protocol headers adapters read)."""
        headers: Mapping[str, str] | None = self.record.client_request.get("headers")
        return headers

    @property
    def capture(self) -> str:
        return self.record.capture

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def clock(self) -> Callable[[], float]:
        """Milliseconds since the request arrived (a bound method: the relay calls it per chunk)."""
        return self.record.elapsed_ms

    @property
    def upstream_usage(self) -> dict[str, Any]:
        """Where the usage a backend reports is folded (``usage_merge``), chunk by chunk."""
        return self.record.upstream_usage

    def body_received(self, raw: bytes, *, presented: Callable[[], Iterable[str]]) -> None:
        """The client's body, whole. A body that is not UTF-8 is also kept exactly (base64, its
        head), with the keys the client presented masked as the stored text columns are."""
        client = self.record.client_request
        client["body_raw"] = raw
        if not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:  # body_text would replace the bad bytes: keep them exactly too
                exact = raw[:settings.INSPECTOR_MAX_BODY_BYTES]
                for secret in presented():
                    exact = exact.replace(secret.encode(), secret_mask(secret).encode()) if len(secret) >= 8 else exact
                client["body_base64"] = base64.b64encode(exact).decode()

    def body_over_limit(self, head: bytes, *, declared: int, limit: int) -> None:
        """A body over the request limit: its head only, and why."""
        head_max = settings.INSPECTOR_MAX_BODY_BYTES
        self.record.client_request["body_raw"] = head[:head_max]
        self.record.client_request["body_truncated"] = {
            "_truncated": True, "kept": min(len(head), head_max), "total": declared or None,
            "reason": f"over the {limit}-byte request limit (DRAGOMAN_MAX_BODY_BYTES)"}

    def keys_presented(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self.record.secrets.extend(keys)
        if keys and not self.record.key_hint:
            self.record.key_hint = key_hint(keys[0])

    def authenticated(self, key: KeyInfo) -> None:
        self.record.key_id, self.record.key_name = key.id, key.name

    def parsed(self, model: str) -> None:
        self.record.client_model = model

    def admitted(self, route: RouteInfo, *, model: str, stream: bool) -> None:
        """Routed: the backend, its key (masked wherever echoed) and capture level; the live tail hears of it."""
        record = self.record
        record.secrets.append(route.backend.api_key)
        record.backend_name, record.route = route.backend.name, route.pattern
        record.upstream_model = route.upstream_model or model
        record.preset = route.backend.preset
        record.capture = route.backend.capture or settings.INSPECTOR_CAPTURE
        live_publish(record, state="in-flight", stream=stream)

    def replayed(self, route: RouteInfo, *, model: str, stream: bool) -> None:
        """A stored request sent again (the inspector's replay): what admission would have set."""
        record = self.record
        record.client_model, record.stream = model, stream
        record.backend_name, record.preset = route.backend.name, route.backend.preset
        record.upstream_model = route.upstream_model or model

    def streaming(self, stream: bool) -> None:
        self.record.stream = stream

    # -- attempts (gateway.pipeline.attempts) --------------------------------------------------

    def attempt_started(self, target: Target, reason: str) -> None:
        """A target is tried: the record describes this attempt's call from here on (an earlier
        attempt's upstream request, answer, timings and notes move to its entry in ``attempts``)."""
        record = self.record
        if self._notes_base < 0:
            self._notes_base = len(record.notes)
        del record.notes[self._notes_base:]
        for mark in _UPSTREAM_MARKS:
            record.timings.pop(mark, None)
        record.upstream_request, record.upstream_response = {}, {}
        record.upstream_usage.clear()
        route = target.route
        record.backend_name, record.preset = route.backend.name, route.backend.preset
        record.upstream_model = route.upstream_model or record.client_model
        record.capture = route.backend.capture or settings.INSPECTOR_CAPTURE
        if len(record.attempts) < ATTEMPTS_RECORDED_MAX:
            record.attempts.append({"backend": route.backend.name, "upstream_model": record.upstream_model,
                                    "group": target.group, "weight": target.weight, "reason": reason,
                                    "outcome": "", "status": None, "error": "", "error_type": "",
                                    "started_ms": record.elapsed_ms(), "ended_ms": None})

    def failover_set(self, until_ms: float | None) -> None:
        """Until when (ms since the request arrived) the attempt about to start may fail over
        to another target; None: it is the last one."""
        self._failover_until = until_ms

    def failover_budget(self) -> float | None:
        """Seconds the current attempt may wait for its backend's head before the next target
        is tried; None when no other target is left (then the client's stream starts and pings)."""
        if self._failover_until is None:
            return None
        left = (self._failover_until - self.record.elapsed_ms()) / 1000
        return left if left > 0 else None

    def attempt_failed(self, error: ApiError, *, outcome: str) -> None:
        """The attempt ended in ``error`` before the client's answer began: ``outcome`` "failed"
        (another target may be tried) or "gave up" (the client gets this error)."""
        self._attempt_end(outcome, error)

    def attempt_succeeded(self, on_end: Callable[[str], None]) -> None:
        """The client's answer comes from this attempt; ``on_end`` runs when the exchange ends
        (with why the backend's stream broke, or ''): at once when it has ended already (a
        non-streamed answer is complete, and handed on, before its attempt returns)."""
        self._attempt_end("ok", None)
        if self._finished:
            on_end(self._broke)
        else:
            self._on_end = on_end

    def _attempt_end(self, outcome: str, error: ApiError | None) -> None:
        record = self.record
        if not record.attempts or record.attempts[-1]["outcome"]:  # ended already (``completed``)
            return
        attempt = record.attempts[-1]
        attempt["outcome"], attempt["ended_ms"] = outcome, record.elapsed_ms()
        attempt["status"] = record.upstream_response.get("status")
        if error is not None:
            # A backend may echo its key in an error: masked as the client's error message is.
            attempt["error"] = secrets_redact(error.message, record.secrets)[:2000]
            attempt["error_type"] = error.type

    def attempts_exhausted(self) -> None:
        """No target answered (the attempt limit or the deadline): the last attempt's error is the client's."""
        if self.record.attempts:
            self.record.attempts[-1]["outcome"] = "gave up"

    def upstream_broke(self, message: str) -> None:
        """The backend's stream failed below HTTP after the client's had begun (its health hears)."""
        self._broke = secrets_redact(message, self.record.secrets)

    # -- the upstream call ------------------------------------------------------------------

    def upstream_prepared(self, call: UpstreamCall, route: RouteInfo) -> None:
        record = self.record
        record.notes.extend(n.as_dict() for n in call.notes)
        record.upstream_request = {"url": call.url, "headers": headers_mask(call.headers), "body": call.body}
        record.secrets.append(route.backend.api_key)

    def note(self, rule: str, path: str, detail: str) -> None:
        self.record.notes.append({"rule": rule, "path": path, "detail": detail})

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: when a connection is ready and the request starts going out, and
        when the response's status and headers arrived (MockTransport calls no hooks: marked after)."""
        if event.endswith(".send_request_headers.started"):
            self.record.mark("upstream_connected")
        elif event.endswith(".receive_response_headers.complete"):
            self.record.mark("upstream_headers")

    def upstream_answered(self, status: int, body: bytes) -> None:
        """A non-streamed answer, read whole."""
        record = self.record
        for mark in ("upstream_connected", "upstream_headers", "upstream_done"):  # unless traced already
            record.mark(mark)
        record.timings["upstream_first_byte"] = record.timings["upstream_headers"]
        record.upstream_response = {"status": status, "body_raw": body}

    def upstream_streaming(self, *, pending: bool) -> None:
        """A streamed call's head came (unless ``pending``: then the trace marks it when it does)."""
        if not pending:
            self.record.mark("upstream_connected")
            self.record.mark("upstream_headers")

    def upstream_refused(self, status: int, body: bytes) -> None:
        """A streamed call answered with an error (or not a stream), before the client's stream began."""
        self.record.mark("upstream_first_byte")
        self.record.upstream_response = {"status": status, "body_raw": body}

    # -- the stream ------------------------------------------------------------------------

    def stream_started(self) -> None:
        self.record.mark("first_event")

    def upstream_first_byte(self, at: float) -> None:
        self.record.timings.setdefault("upstream_first_byte", at)

    def first_token(self, chunk_at: float) -> None:
        """The first event after message_start and pings, and when its upstream chunk arrived."""
        self.record.mark("first_token")
        self.record.timings["first_token_chunk"] = chunk_at

    # -- endings ----------------------------------------------------------------------------

    def completed(self, message: dict[str, Any], notes: Iterable[RewriteNote], upstream_body: dict[str, Any]) -> None:
        """A non-streamed message, translated."""
        if self._finished:
            return
        record = self.record
        record.notes.extend(n.as_dict() for n in notes)
        usage_merge(record.upstream_usage, upstream_body)
        record.status = 200
        record.stop_reason = message.get("stop_reason") or ""
        record.usage = message.get("usage") or {}
        record.client_response = {"body": message}
        self._attempt_end("ok", None)  # before the record is handed on (the attempt returns after)
        self.finish()

    def counted(self, result: dict[str, Any], usage: dict[str, Any]) -> None:
        if self._finished:
            return
        self.record.status = 200
        self.record.usage = usage
        self.record.client_response = {"body": result}
        self.finish()

    def failed(self, error: ApiError) -> ApiError:
        """The request fails with ``error`` (its message, and a native backend's own error body,
        with any secret a backend echoed masked); returns it."""
        record = self.record
        error.message = secrets_redact(error.message, record.secrets)  # a backend may echo its key
        if error.body is not None:  # a native backend's own error body, forwarded as is unless it holds a secret
            text = error.body.decode("utf-8", "replace")
            if (redacted := secrets_redact(text, record.secrets)) != text:
                error.body = redacted.encode()
        if not self._finished:
            record.status, record.error_type, record.error_message = error.status, error.type, error.message
            record.client_response = error_sent(error, record.id)
            self.finish()
        return error

    def client_left(self) -> None:
        """The client disconnected before an answer (499 is nginx's "client closed")."""
        if self._finished:
            return
        self.record.status, self.record.disconnected = 499, True
        self.finish()

    def stream_disconnected(self) -> None:
        """The client left during its stream (the stream's end records the rest)."""
        self.record.disconnected = True

    def stream_error(self, error: dict[str, Any]) -> None:
        """The stream's ``error`` event (its message masked where a backend echoed a secret)."""
        record = self.record
        if record.secrets and isinstance(error.get("message"), str):
            error["message"] = secrets_redact(error["message"], record.secrets)
        record.error_type = error.get("type", "")
        record.error_message = error.get("message", "")

    def stream_ended(self, *, upstream_status: int, message: dict[str, Any], notes: Iterable[RewriteNote],
                     upstream_chunks: list[list[Any]], client_events: list[list[Any]] | None) -> None:
        """The stream is over, however it ended: what the client saw, what the backend sent."""
        if self._finished:
            return
        record = self.record
        record.status = 200
        record.notes.extend(n.as_dict() for n in notes)
        record.stop_reason = message.get("stop_reason") or ""
        record.usage = message.get("usage") or {}
        record.upstream_response = {"status": upstream_status, "chunks": upstream_chunks}
        record.client_response = {"events": client_events, "message": message} if client_events is not None else {}
        self.finish()

    def finish(self) -> None:
        """Mark the end and hand the record to the recorder (once; later calls do nothing)."""
        if self._finished:
            return
        self._finished = True
        self.record.mark("finished")
        if self._on_end is not None:
            self._on_end(self._broke)
        exchange_observed(self.record)
        recorder.submit(self.record)
