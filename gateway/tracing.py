"""OpenTelemetry traces and metrics over OTLP (HTTP/protobuf), off unless an OTLP endpoint is set.

``tracing.start`` (from ``gateway.runtime``) does nothing unless ``OTEL_EXPORTER_OTLP_ENDPOINT``
is set (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` for traces alone,
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` for metrics alone); ``OTEL_SDK_DISABLED=true`` turns it
off again, ``OTEL_TRACES_EXPORTER=none`` or ``OTEL_METRICS_EXPORTER=none`` one signal. The SDK reads every other standard variable itself: ``OTEL_SERVICE_NAME`` (here
"dragoman" unless it or ``OTEL_RESOURCE_ATTRIBUTES`` names the service), ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_INTERVAL``, … Export runs in the SDK's
own threads (``BatchSpanProcessor``, ``PeriodicExportingMetricReader``), never on the event loop.

A request's trace is chosen when it arrives (``exchange_begin``, from ``Exchange.start``): the
client's W3C ``traceparent`` continued, else a new trace; the exchange span's id and the sampler's
verdict are fixed then, so every upstream request carries a ``traceparent`` naming that span
(``upstream_headers``, from the backend adapters). The spans are built after the fact, when the
exchange is observed (``gateway.observe``), from the marks its record already holds, with explicit
start and end times: nothing runs per chunk. Under the server span ``POST /v1/messages``:
``admission`` (arrival to the first attempt), one ``chat {model}`` client span per upstream attempt
and, under the attempt that answered, ``upstream connect``, ``upstream first byte`` and ``upstream
stream`` (``upstream body`` when not streamed); ``inspector write`` (handed to the recorder to
stored) is ended from the inspector's writer thread.

Attributes follow the OpenTelemetry GenAI semantic conventions as of semconv **1.37.0** (status
"development", ``SCHEMA_URL``): ``gen_ai.provider.name`` (1.37 renamed ``gen_ai.system``), message
content as the JSON attributes ``gen_ai.system_instructions``, ``gen_ai.input.messages`` and
``gen_ai.output.messages``, the metrics ``gen_ai.client.token.usage``,
``gen_ai.server.request.duration`` and ``gen_ai.server.time_to_first_token`` with their advised
buckets. The installed opentelemetry-semantic-conventions (0.66b2, schema 1.44.0) defines every one
of these names unchanged; it marks them as moved to the semantic-conventions-genai repository.

Content is recorded only with ``DRAGOMAN_OTEL_CAPTURE_CONTENT`` (the client's and the backend's
keys redacted from it, each attribute cut at ``CONTENT_MAX_CHARS``); no header is ever recorded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from django.conf import settings

from gateway.observe import observer_add, observer_remove
from inspector.hooks import hooks
from inspector.recorder import ExchangeRecord
from translation.masking import secrets_redact

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import SpanContext

log = logging.getLogger(__name__)

SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
SCOPE = "dragoman"
CONTENT_MAX_CHARS = 16_000

# The headers an upstream request of this exchange carries (traceparent, tracestate), set when it
# arrives; each request runs in its own task, so each sees its own.
_upstream: ContextVar[dict[str, str] | None] = ContextVar("dragoman_upstream_trace_headers", default=None)

# The HTTP routes of the API, by the recorder's endpoint names (span names and ``http.route``).
_ROUTES = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens",
           "messages/count_tokens": "/v1/messages/count_tokens", "models": "/v1/models"}

# gen_ai.provider.name by preset: the well-known values of semconv 1.37 where one fits, else the
# preset's own name (the attribute is an open enum).
_PROVIDERS = {"anthropic": "anthropic", "anthropic-no-prefill": "anthropic", "openai": "openai",
              "openai-responses": "openai", "deepseek": "deepseek"}

# Buckets advised by semconv 1.37 (gen-ai-metrics.md).
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _enabled(environ: Mapping[str, str], signal: str) -> bool:
    """Whether ``signal`` (TRACES, METRICS) is exported: an OTLP endpoint for it, and neither the
    SDK disabled nor its exporter set to none (``OTEL_METRICS_EXPORTER=none``: traces only)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if "none" in environ.get(f"OTEL_{signal}_EXPORTER", "").lower().split(","):
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))


def _provider(preset: str) -> str:
    return _PROVIDERS.get(preset, preset or "_OTHER")


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    """The trace headers of a stored (masked) header dict, by lower-case name."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")}


def _route(record: ExchangeRecord) -> str:
    return _ROUTES.get(record.endpoint, "")


def _server_name(record: ExchangeRecord) -> str:
    method = str(record.client_request.get("method") or "POST")
    route = _route(record)
    return f"{method} {route}" if route else method


class Tracing:
    """The process's OpenTelemetry pipeline: started and stopped with the runtime, an observer of
    finished exchanges while it runs. ``traces``/``metrics`` say which signals are exported.

    An exchange's spans are complete when they are built (ids, times, attributes all known), so
    they are handed to the batch processor as finished ``ReadableSpan``s rather than opened and
    ended through a ``Tracer``, whose live spans (a lock each, bounded attributes, the sampler
    asked again per span) cost about ten times as much for nothing here; the sampler is asked
    once, when the request arrives. Attributes are bounded here (``CONTENT_MAX_CHARS``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracer_provider: TracerProvider | None = None
        self._processor: SpanProcessor | None = None
        self._sampler: Sampler | None = None
        self._resource: Any = None
        self._scope: Any = None
        self._meter_provider: MeterProvider | None = None
        self._instruments: dict[str, Any] = {}
        self._ids: Any = None
        self._propagator: Any = None

    @property
    def traces(self) -> bool:
        return self._processor is not None

    @property
    def metrics(self) -> bool:
        return self._meter_provider is not None

    def start(self, environ: Mapping[str, str] | None = None) -> bool:
        """Start exporting when an OTLP endpoint is set (idempotent); whether anything is exported."""
        environ = os.environ if environ is None else environ
        with self._lock:
            if self.traces or self.metrics:
                return True
            traces, metrics = _enabled(environ, "TRACES"), _enabled(environ, "METRICS")
            if not (traces or metrics):
                return False
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource

            resource = Resource.create({})
            if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
                resource = resource.merge(Resource({SERVICE_NAME: "dragoman"}))
            if traces:
                self._traces_start(resource)
            if metrics:
                self._metrics_start(resource)
        observer_add(self.exchange_observed)
        log.info("OpenTelemetry: exporting %s over OTLP", " and ".join(
            name for name, on in (("traces", traces), ("metrics", metrics)) if on))
        return True

    def _traces_start(self, resource: Any) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        provider = TracerProvider(resource=resource, shutdown_on_exit=False)  # the sampler from OTEL_TRACES_SAMPLER
        processor = BatchSpanProcessor(OTLPSpanExporter())
        provider.add_span_processor(processor)
        self._tracer_provider, self._processor, self._sampler = provider, processor, provider.sampler
        self._resource, self._scope = provider.resource, InstrumentationScope(SCOPE, None, SCHEMA_URL)
        self._ids, self._propagator = RandomIdGenerator(), TraceContextTextMapPropagator()
        hooks.on_stored = self.records_stored

    def _metrics_start(self, resource: Any) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        provider = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())],
                                 shutdown_on_exit=False)
        meter = provider.get_meter(SCOPE, schema_url=SCHEMA_URL)
        self._instruments = {
            "tokens": meter.create_histogram("gen_ai.client.token.usage", unit="{token}",
                                             description="Number of input and output tokens used.",
                                             explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS),
            "duration": meter.create_histogram("gen_ai.server.request.duration", unit="s",
                                               description="Generative AI server request duration.",
                                               explicit_bucket_boundaries_advisory=_DURATION_BUCKETS),
            "ttft": meter.create_histogram("gen_ai.server.time_to_first_token", unit="s",
                                           description="Time to generate first token for successful responses.",
                                           explicit_bucket_boundaries_advisory=_TTFT_BUCKETS),
        }
        self._meter_provider = provider

    def flush(self, timeout: float = 10.0) -> bool:
        """Export what is pending now (tests; shutdown does it too)."""
        done = True
        if self._tracer_provider is not None:
            done = self._tracer_provider.force_flush(int(timeout * 1000)) and done
        if self._meter_provider is not None:
            done = self._meter_provider.force_flush(int(timeout * 1000)) and done
        return done

    def stop(self) -> None:
        """Export what is pending and end the exporters' threads."""
        with self._lock:
            tracer_provider, meter_provider = self._tracer_provider, self._meter_provider
            self._tracer_provider = self._processor = self._sampler = self._meter_provider = None
            self._instruments = {}
        observer_remove(self.exchange_observed)
        if hooks.on_stored == self.records_stored:
            hooks.on_stored = None
        for provider in (tracer_provider, meter_provider):
            if provider is not None:
                try:
                    provider.shutdown()
                except Exception:
                    log.exception("OpenTelemetry: shutting down %s failed", type(provider).__name__)

    # -- the request path ----------------------------------------------------------------------

    def exchange_begin(self, record: ExchangeRecord, headers: Mapping[str, str]) -> None:
        """Choose the exchange's trace (the client's ``traceparent`` continued, else a new one)
        and its span's id, ask the sampler, and set what upstream requests will carry."""
        if self._sampler is None:
            return
        try:
            self._begin(record, headers)
        except Exception:  # a request never fails for its trace (a custom sampler that raises)
            log.exception("OpenTelemetry: no trace for exchange %s", record.id)

    def _begin(self, record: ExchangeRecord, headers: Mapping[str, str]) -> None:
        sampler = self._sampler
        assert sampler is not None
        from opentelemetry import trace

        parent = self._propagator.extract(headers)
        remote = trace.get_current_span(parent).get_span_context()
        trace_id = remote.trace_id if remote.is_valid else self._ids.generate_trace_id()
        verdict = sampler.should_sample(parent, trace_id, _server_name(record), trace.SpanKind.SERVER)
        flags = trace.TraceFlags.SAMPLED if verdict.decision.is_sampled() else trace.TraceFlags.DEFAULT
        ours = trace.SpanContext(trace_id, self._ids.generate_span_id(), is_remote=False,
                                 trace_flags=trace.TraceFlags(flags), trace_state=verdict.trace_state)
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(trace.NonRecordingSpan(ours)))
        record.trace_id, record.traceparent = format(trace_id, "032x"), carrier["traceparent"]
        _upstream.set(carrier)

    # -- after the fact: the observer, and the inspector's writer --------------------------------

    def exchange_observed(self, record: ExchangeRecord) -> None:
        if self._processor is not None:
            self._spans(record)
        if self._instruments:
            self._measure(record)

    def _emit(self, name: str, *, context: SpanContext, parent: SpanContext | None, start: int, end: int,
              kind: Any = None, attributes: dict[str, Any] | None = None, events: tuple[Any, ...] = (),
              error: str | None = None) -> None:
        """One finished span, to the batch processor (which exports it from its own thread)."""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan

        processor = self._processor
        if processor is None:
            return
        status = trace.Status(trace.StatusCode.ERROR, error or None) if error is not None else trace.Status()
        processor.on_end(ReadableSpan(
            name, context=context, parent=parent, resource=self._resource, attributes=attributes or {},
            events=events, kind=kind or trace.SpanKind.INTERNAL, status=status, start_time=start,
            end_time=max(start, end), instrumentation_scope=self._scope))

    def _child(self, of: SpanContext) -> SpanContext:
        from opentelemetry import trace

        return trace.SpanContext(of.trace_id, self._ids.generate_span_id(), is_remote=False,
                                 trace_flags=of.trace_flags, trace_state=of.trace_state)

    def _spans(self, record: ExchangeRecord) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import Event

        headers = _lower(record.client_request.get("headers") or {})
        if not record.traceparent:  # refused before the pipeline (gateway.middleware)
            self.exchange_begin(record, headers)
        ours = _span_context(record.traceparent)
        if ours is None or not ours.trace_flags.sampled:
            return
        remote = trace.get_current_span(self._propagator.extract(headers)).get_span_context() if headers else None
        parent = remote if remote is not None and remote.is_valid and remote.trace_id == ours.trace_id else None
        t0 = time.time_ns() - int((time.perf_counter() - record.started) * 1e9)

        def at(ms: float) -> int:
            return t0 + int(ms * 1e6)

        timings = record.timings
        finished = timings.get("finished") or record.elapsed_ms()
        attempts = record.attempts
        admitted = attempts[0]["started_ms"] if attempts else finished
        self._emit("admission", context=self._child(ours), parent=ours, start=t0, end=at(admitted))
        for number, attempt in enumerate(attempts, 1):
            self._attempt_span(record, attempt, last=number == len(attempts), parent=ours, at=at, finished=finished)
        failed = record.status >= 500 or (record.status == 200 and bool(record.error_type))
        attributes = self._server_attributes(record)
        error = record.error_message[:500] if failed else None
        if record.secrets:  # what the client named (its path, its model) could hold a key
            attributes, error = secrets_redact([attributes, error], record.secrets)
        self._emit(_server_name(record), context=ours, parent=parent, start=t0, end=at(finished),
                   kind=trace.SpanKind.SERVER, attributes=attributes,
                   events=tuple(Event(name.replace("_", " "), timestamp=at(timings[name]))
                                for name in ("first_event", "first_token") if name in timings),
                   error=error)

    def _attempt_span(self, record: ExchangeRecord, attempt: dict[str, Any], *, last: bool, parent: SpanContext,
                      at: Any, finished: float) -> None:
        from opentelemetry import trace

        model = str(attempt.get("upstream_model") or record.upstream_model)
        start = float(attempt.get("started_ms") or 0.0)
        end = attempt.get("ended_ms") or finished
        outcome = str(attempt.get("outcome") or "")
        if last and outcome == "ok":  # the answer streams on after the attempt succeeded (its head)
            end = max(end, record.timings.get("upstream_done") or finished)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
            "dragoman.backend": str(attempt.get("backend") or ""), "dragoman.attempt.outcome": outcome,
            "dragoman.attempt.reason": str(attempt.get("reason") or ""),
        }
        if attempt.get("status") is not None:
            attributes["http.response.status_code"] = int(attempt["status"])
        if attempt.get("error_type"):
            attributes["error.type"] = str(attempt["error_type"])
        if last:  # only the last attempt's preset and URL are on the record
            attributes["gen_ai.provider.name"] = _provider(record.preset)
            attributes.update(_server_address(record.upstream_request.get("url")))
        context = self._child(parent)
        if last:
            self._upstream_spans(record, context, start=start, end=end, at=at)
        self._emit(f"chat {model}", context=context, parent=parent, start=at(start), end=at(end),
                   kind=trace.SpanKind.CLIENT, attributes=attributes,
                   error=str(attempt.get("error") or "")[:500] if outcome not in ("ok", "") else None)

    def _upstream_spans(self, record: ExchangeRecord, attempt: SpanContext, *, start: float, end: float,
                        at: Any) -> None:
        """The answering attempt's phases, from the marks only it left on the record."""
        timings = record.timings
        connected, first_byte = timings.get("upstream_connected"), timings.get("upstream_first_byte")
        if connected is not None:
            self._emit("upstream connect", context=self._child(attempt), parent=attempt, start=at(start),
                       end=at(connected))
        if first_byte is not None:
            self._emit("upstream first byte", context=self._child(attempt), parent=attempt,
                       start=at(connected if connected is not None else start), end=at(first_byte))
            done = timings.get("upstream_done") or end
            self._emit("upstream stream" if record.stream else "upstream body", context=self._child(attempt),
                       parent=attempt, start=at(first_byte), end=at(max(done, first_byte)))

    def _server_attributes(self, record: ExchangeRecord) -> dict[str, Any]:
        route = _route(record)
        attributes: dict[str, Any] = {
            "http.request.method": str(record.client_request.get("method") or "POST"),
            "http.response.status_code": record.status,
            "url.path": str(record.client_request.get("path") or "").split("?", 1)[0][:300],
            "dragoman.request_id": record.id, "dragoman.endpoint": record.endpoint,
            "dragoman.attempts": len(record.attempts), "dragoman.stream": record.stream,
        }
        if route:
            attributes["http.route"] = route
        error = record.error_type or (str(record.status) if record.status >= 400 else "")
        if error:
            attributes["error.type"] = error
        if record.backend_name:
            attributes["dragoman.backend"] = record.backend_name
        if record.route:
            attributes["dragoman.route"] = record.route
        if record.disconnected:
            attributes["dragoman.client_disconnected"] = True
        if record.endpoint != "messages":
            return attributes
        attributes["gen_ai.operation.name"] = "chat"
        if record.client_model:
            attributes["gen_ai.request.model"] = record.client_model
        if record.upstream_model:
            attributes["gen_ai.response.model"] = record.upstream_model
        if record.backend_name:
            attributes["gen_ai.provider.name"] = _provider(record.preset)
        for kind in ("input_tokens", "output_tokens"):
            if isinstance(record.usage.get(kind), int):
                attributes[f"gen_ai.usage.{kind}"] = record.usage[kind]
        if record.stop_reason:
            attributes["gen_ai.response.finish_reasons"] = (record.stop_reason,)
        message = _message_of(record)
        if isinstance(message, dict) and isinstance(message.get("id"), str):
            attributes["gen_ai.response.id"] = message["id"]
        ttft = record.ttft_ms()
        if ttft is not None:
            attributes["dragoman.ttft_ms"] = ttft
        if settings.TRACE_CAPTURE_CONTENT:
            attributes.update(_content(record, message))
        return attributes

    def records_stored(self, records: list[ExchangeRecord], began: int, ended: int) -> None:
        """The inspector's writer stored ``records`` (one batch, ``began`` to ``ended``, ns since the
        epoch): each sampled exchange's ``inspector write`` span, from its hand-over to the store."""
        if self._processor is None:
            return
        from opentelemetry.sdk.trace import Event

        now_wall, now_perf = time.time_ns(), time.perf_counter()
        for record in records:
            ours = _span_context(record.traceparent)
            if ours is None or not ours.trace_flags.sampled:
                continue
            handed = now_wall - int((now_perf - record.started - record.timings.get("finished", 0.0) / 1000) * 1e9)
            self._emit("inspector write", context=self._child(ours), parent=ours, start=min(handed, began), end=ended,
                       attributes={"dragoman.request_id": record.id, "dragoman.inspector.batch_size": len(records)},
                       events=(Event("batch write", timestamp=began),))

    def _measure(self, record: ExchangeRecord) -> None:
        """The GenAI metrics. No model attribute: the client names the model (it could mint any
        number of them); the route pattern that matched stands for it."""
        if record.endpoint != "messages":
            return
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "http.response.status_code": record.status,
                                      "dragoman.backend": record.backend_name, "dragoman.route": record.route}
        if record.backend_name:
            attributes["gen_ai.provider.name"] = _provider(record.preset)
        error = record.error_type or (str(record.status) if record.status >= 400 else "")
        if error:
            attributes["error.type"] = error
        instruments = self._instruments
        finished = record.timings.get("finished")
        if finished is not None:
            instruments["duration"].record(finished / 1000, attributes)
        ttft = record.ttft_ms()
        if ttft is not None:
            instruments["ttft"].record(ttft / 1000, attributes)
        for kind in ("input", "output"):
            tokens = record.usage.get(f"{kind}_tokens")
            if isinstance(tokens, int):
                instruments["tokens"].record(tokens, {**attributes, "gen_ai.token.type": kind})


def _span_context(traceparent: str) -> SpanContext | None:
    """Our exchange span's context from the ``traceparent`` it was given (W3C trace-context:
    version-traceid-parentid-flags)."""
    parts = traceparent.split("-")
    if len(parts) < 4:
        return None
    from opentelemetry import trace

    return trace.SpanContext(int(parts[1], 16), int(parts[2], 16), is_remote=False,
                             trace_flags=trace.TraceFlags(int(parts[3][:2], 16)))


def _server_address(url: Any) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        return {}
    parts = urlsplit(url)
    found: dict[str, Any] = {"server.address": parts.hostname or ""}
    try:
        found["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        pass
    return found


def _message_of(record: ExchangeRecord) -> Any:
    response = record.client_response
    return response.get("message") if record.stream else response.get("body")


# -- content (DRAGOMAN_OTEL_CAPTURE_CONTENT) ------------------------------------------------------

def _part(block: Any) -> dict[str, Any]:
    """An Anthropic content block as a semconv 1.37 message part."""
    if isinstance(block, str):
        return {"type": "text", "content": block}
    if not isinstance(block, dict):
        return {"type": "unknown"}
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "content": block.get("text", "")}
    if kind == "thinking":
        return {"type": "reasoning", "content": block.get("thinking", "")}
    if kind in ("tool_use", "server_tool_use"):
        return {"type": "tool_call", "id": block.get("id"), "name": block.get("name"), "arguments": block.get("input")}
    if kind == "tool_result":
        return {"type": "tool_call_response", "id": block.get("tool_use_id"), "response": block.get("content")}
    return {"type": str(kind)}  # images, documents: their kind, not their bytes


def _parts(content: Any) -> list[dict[str, Any]]:
    return [_part(content)] if isinstance(content, str) else [_part(b) for b in content or []]


def _content(record: ExchangeRecord, message: Any) -> dict[str, str]:
    found: dict[str, Any] = {}
    raw = record.client_request.get("body_raw")
    try:
        body = orjson.loads(raw) if isinstance(raw, bytes) else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        if body.get("system"):
            found["gen_ai.system_instructions"] = _parts(body["system"])
        if isinstance(body.get("messages"), list):
            found["gen_ai.input.messages"] = [{"role": m.get("role"), "parts": _parts(m.get("content"))}
                                              for m in body["messages"] if isinstance(m, dict)]
    if isinstance(message, dict):
        found["gen_ai.output.messages"] = [{"role": "assistant", "parts": _parts(message.get("content")),
                                            "finish_reason": message.get("stop_reason") or ""}]
    out = {}
    for name, value in found.items():
        text = secrets_redact(orjson.dumps(value).decode(), record.secrets)
        out[name] = text if len(text) <= CONTENT_MAX_CHARS else text[:CONTENT_MAX_CHARS] + "…"
    return out


def upstream_headers() -> dict[str, str]:
    """The trace headers an upstream request carries (none unless tracing runs)."""
    return _upstream.get() or {}


tracing = Tracing()


def tracing_start() -> bool:
    return tracing.start()


def tracing_stop() -> None:
    tracing.stop()
