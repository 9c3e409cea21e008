"""A real OTLP/HTTP receiver for the tests: ``POST /v1/traces`` and ``/v1/metrics`` with protobuf
bodies (``application/x-protobuf``), decoded with ``opentelemetry-proto`` as a collector would and
kept for assertions; each export is answered with its empty ``Export*ServiceResponse``.

Spans and data points are flattened to plain dicts (ids as hex, attributes as Python values) so
tests read them without protobuf; ``spans_wait`` and ``metrics_wait`` wait on a condition with a
deadline (the exporter sends from its own thread).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


def _span(span: Any, resource: dict[str, Any], scope: Any) -> dict[str, Any]:
    return {
        "name": span.name, "kind": span.kind, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(), "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano, "attributes": attributes_of(span.attributes),
        "events": [{"name": e.name, "time": e.time_unix_nano, "attributes": attributes_of(e.attributes)}
                   for e in span.events],
        "status": span.status.code, "status_message": span.status.message,
        "resource": resource, "scope": scope.name, "schema_url": "",
    }


def _points(metric: Any) -> list[dict[str, Any]]:
    kind = metric.WhichOneof("data")
    data = getattr(metric, kind)
    out = []
    for point in data.data_points:
        entry: dict[str, Any] = {"attributes": attributes_of(point.attributes)}
        if kind == "histogram":
            entry.update(count=point.count, sum=point.sum, bounds=list(point.explicit_bounds))
        else:
            entry["value"] = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
        out.append(entry)
    return out


class OTLPReceiver:
    """The decoded exports, in arrival order; ``raw`` keeps every request body as received."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.content_types: list[str] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _traces(self, body: bytes) -> bytes:
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    entry = _span(span, resource, scope_spans.scope)
                    entry["schema_url"] = scope_spans.schema_url
                    spans.append(entry)
        with self._changed:
            self.spans.extend(spans)
            self._changed.notify_all()
        return ExportTraceServiceResponse().SerializeToString()

    def _metrics(self, body: bytes) -> bytes:
        request = ExportMetricsServiceRequest.FromString(body)
        metrics = []
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    metrics.append({"name": metric.name, "unit": metric.unit, "kind": metric.WhichOneof("data"),
                                    "points": _points(metric), "schema_url": scope_metrics.schema_url})
        with self._changed:
            self.metrics.extend(metrics)
            self._changed.notify_all()
        return ExportMetricsServiceResponse().SerializeToString()

    def _wait(self, found: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (result := found()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return result
                self._changed.wait(left)
            return result

    def spans_wait(self, trace_id: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The spans of ``trace_id`` once at least ``count`` have come (what came by the deadline otherwise)."""
        def of_trace() -> list[dict[str, Any]]:
            return [s for s in self.spans if s["trace_id"] == trace_id]

        self._wait(lambda: len(of_trace()) >= count, timeout)
        return of_trace()

    def metrics_wait(self, name: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        def named() -> list[dict[str, Any]]:
            return [m for m in self.metrics if m["name"] == name]

        return list(self._wait(named, timeout) or [])

    @contextmanager
    def serving(self) -> Iterator[OTLPReceiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":  # OTEL_EXPORTER_OTLP_COMPRESSION=gzip
                    body = gzip.decompress(body)
                receiver.raw.append(body)
                receiver.content_types.append(self.headers.get("content-type", ""))
                if self.headers.get("content-type") != "application/x-protobuf":
                    self.send_error(415, "OTLP/HTTP protobuf only")
                    return
                path = self.path.split("?", 1)[0]
                if path == "/v1/traces":
                    answer = receiver._traces(body)
                elif path == "/v1/metrics":
                    answer = receiver._metrics(body)
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)

