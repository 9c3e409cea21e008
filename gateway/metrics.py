"""``/metrics``: the Prometheus text format (``prometheus-client``), for an operator's scraper.

Two kinds of series:

- **Per exchange**, from ``gateway.observe`` (once per finished exchange, on the event loop: a few
  counter and histogram updates, no I/O): requests by endpoint, route, backend, status and error
  type; total latency, TTFT and the gateway's own overhead; tokens by kind; attempts and
  failovers; client disconnects.
- **State**, read from the process's own objects: streams in flight, upstream connections per
  backend pool, the inspector's queue and its persisted / lost / dropped counts, backends ejected
  by health, and the age of the config snapshot. One process: read at scrape time. Several daphne
  processes on one host (``PROMETHEUS_MULTIPROC_DIR``, one shared, emptied directory): each
  process writes its own every ``DRAGOMAN_METRICS_REFRESH_SECONDS`` from a daemon thread, and
  the scraped process sums them (``livesum``) or shows the worst (``max``).

Labels are bounded by the configuration (route patterns, backend names, statuses, Anthropic's
error types); the client's model name is not a label (a client could mint any number of them).

Scraping needs ``Authorization: Bearer $DRAGOMAN_METRICS_TOKEN`` or a staff admin session
(``operator_allowed``), as ``/healthz?verbose=1`` does.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.observe import observer_add
from inspector.recorder import ExchangeRecord
from translation.errors import ERROR_TYPES

log = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# No ``*_created`` series beside each counter and histogram: one more sample per series that
# PromQL seldom needs (and multiprocess mode cannot give).
disable_created_metrics()

# Our own registry: the series are ours alone (in multiprocess mode prometheus-client writes
# every value to the shared directory whatever the registry; the scrape reads them back).
REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds. TTFT at c=100 reaches seconds; the gateway's overhead is a few ms.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

REQUESTS = Counter("dragoman_requests", "API requests finished, by endpoint, route, backend, status and error type",
                   ("endpoint", "route", "backend", "status", "error_type"), registry=REGISTRY)
DURATION = Histogram("dragoman_request_duration_seconds", "From the request's arrival to the end of its answer",
                     ("endpoint", "backend", "stream"), buckets=_LATENCY_BUCKETS, registry=REGISTRY)
TTFT = Histogram("dragoman_time_to_first_token_seconds",
                 "Successful messages: the first content event of a stream, or the whole message",
                 ("backend", "stream"), buckets=_LATENCY_BUCKETS, registry=REGISTRY)
OVERHEAD = Histogram("dragoman_overhead_seconds", "Time the gateway itself added before the first token",
                     ("backend", "stream"), buckets=_OVERHEAD_BUCKETS, registry=REGISTRY)
TOKENS = Counter("dragoman_tokens", "Tokens reported to clients, by kind (input, output, cache_read, cache_creation)",
                 ("backend", "type"), registry=REGISTRY)
ATTEMPTS = Counter("dragoman_upstream_attempts", "Upstream attempts by backend and outcome (ok, failed, gave up)",
                   ("backend", "outcome"), registry=REGISTRY)
FAILOVERS = Counter("dragoman_failovers", "Exchanges served (or failed) after more than one attempt, by route",
                    ("route",), registry=REGISTRY)
DISCONNECTS = Counter("dragoman_client_disconnects", "Clients that left before their answer ended",
                      ("backend",), registry=REGISTRY)

# State gauges: summed over live processes, or the worst one.
IN_FLIGHT = Gauge("dragoman_exchanges_in_flight", "Requests started and not yet finished (streams included)",
                  registry=REGISTRY, multiprocess_mode="livesum")
UPSTREAM_CONNECTIONS = Gauge("dragoman_upstream_connections", "Open upstream connections by backend and state",
                             ("backend", "state"), registry=REGISTRY, multiprocess_mode="livesum")
BACKEND_EJECTED = Gauge("dragoman_backend_ejected", "1 while a backend is ejected by passive health",
                        ("backend",), registry=REGISTRY, multiprocess_mode="max")
BACKEND_INFLIGHT = Gauge("dragoman_backend_in_flight", "Requests in flight per backend", ("backend",),
                         registry=REGISTRY, multiprocess_mode="livesum")
INSPECTOR_QUEUE = Gauge("dragoman_inspector_queue", "Exchanges waiting for the inspector's writer",
                        registry=REGISTRY, multiprocess_mode="livesum")
INSPECTOR = Counter("dragoman_inspector_exchanges", "The inspector's exchanges by fate (persisted, store_failed, "
                    "dropped: queue full, skipped: capture off)", ("fate",), registry=REGISTRY)
CONFIG_AGE = Gauge("dragoman_config_age_seconds", "Since this process last knew its config current (grows "
                   "while the database is away)", registry=REGISTRY, multiprocess_mode="max")

_INSPECTOR_FATES = ("persisted", "store_failed", "dropped", "skipped")


_ENDPOINTS = ("messages", "count_tokens", "models")
# Anthropic's error types; a native backend's own error body may name any other.
_ERROR_TYPES = frozenset(ERROR_TYPES.values()) | {"", "api_error", "invalid_request_error"}


def endpoint_label(endpoint: str) -> str:
    """The pipeline's endpoints by name; a failure the middleware recorded names the path the
    client asked for (``models/x``, anything): bucketed, so a client cannot mint series."""
    if endpoint in _ENDPOINTS:
        return endpoint
    if endpoint.startswith("models/"):
        return "models"
    if endpoint.startswith("messages/count_tokens"):
        return "count_tokens"
    return "messages" if endpoint.startswith("messages") else "other"


_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, remembered: prometheus-client takes a lock and builds the key
    on every call; the set of label values is bounded (see above), so this dictionary is too."""
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def exchange_count(record: ExchangeRecord) -> None:
    """The observer: one finished exchange into the per-exchange series."""
    backend = record.backend_name or "-"
    status = str(record.status or 0)
    endpoint = endpoint_label(record.endpoint)
    error_type = record.error_type if record.error_type in _ERROR_TYPES else "other"
    _child(REQUESTS, endpoint, record.route or "-", backend, status, error_type).inc()
    timings = record.timings
    stream = "true" if record.stream else "false"
    finished = timings.get("finished")
    if finished is not None:
        _child(DURATION, endpoint, backend, stream).observe(finished / 1000)
    if endpoint == "messages" and record.status == 200:
        ttft = record.ttft_ms()
        if ttft is not None:
            _child(TTFT, backend, stream).observe(ttft / 1000)
        overhead = record.overhead_ms()
        if overhead is not None:
            _child(OVERHEAD, backend, stream).observe(max(overhead, 0.0) / 1000)
        usage = record.usage
        for kind in ("input", "output", "cache_read", "cache_creation"):
            value = usage.get(f"{kind}_input_tokens" if kind.startswith("cache") else f"{kind}_tokens")
            if isinstance(value, int) and value > 0:
                _child(TOKENS, backend, kind).inc(value)
    for attempt in record.attempts:
        _child(ATTEMPTS, attempt.get("backend") or "-", attempt.get("outcome") or "unfinished").inc()
    if len(record.attempts) > 1:
        _child(FAILOVERS, record.route or "-").inc()
    if record.disconnected:
        _child(DISCONNECTS, backend).inc()


class StateGauges:
    """The state series, read from this process's runtime objects. Counters that only grow in
    the recorder become Prometheus counters by adding what grew since the last look."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._pool_labels: set[tuple[str, str]] = set()

    def refresh(self) -> None:
        from gateway.exchange import records_live
        from gateway.health import health
        from gateway.snapshot import store
        from gateway.upstream import pools
        from inspector.recorder import recorder

        with self._lock:
            try:
                IN_FLIGHT.set(records_live.in_flight())
            except RuntimeError:  # the weak dictionary changed while read from another thread: next time
                pass
            pool_labels = set()
            for backend, stats in pools.stats().items():
                for state in ("active", "idle"):
                    UPSTREAM_CONNECTIONS.labels(backend, state).set(stats[state])
                    pool_labels.add((backend, state))
            for gone in self._pool_labels - pool_labels:  # a pool replaced by an edit: its series ends
                UPSTREAM_CONNECTIONS.remove(*gone)
            self._pool_labels = pool_labels
            for backend, seen in health.report().items():
                BACKEND_EJECTED.labels(backend).set(1 if seen["state"] == "ejected" else 0)
                BACKEND_INFLIGHT.labels(backend).set(seen["inflight"])
            counts = recorder.stats()
            INSPECTOR_QUEUE.set(counts["queued"])
            for fate in _INSPECTOR_FATES:
                value = int(counts[fate])
                grown = value - self._seen.get(fate, 0)
                if grown > 0:
                    INSPECTOR.labels(fate).inc(grown)
                self._seen[fate] = value
            CONFIG_AGE.set(max(0.0, time.monotonic() - store.checked_at))


state = StateGauges()


class StateWriter:
    """Several processes: each writes its state every ``DRAGOMAN_METRICS_REFRESH_SECONDS``."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="dragoman-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        while not self._stopping.wait(settings.METRICS_REFRESH_SECONDS):
            try:
                state.refresh()
            except Exception:
                log.exception("metrics: reading the process's state failed")


state_writer = StateWriter()


def metrics_start() -> None:
    """Count exchanges from now on; with several processes, also write this one's state."""
    observer_add(exchange_count)
    if MULTIPROCESS:
        state_writer.start()


def metrics_stop() -> None:
    state_writer.stop()
    if MULTIPROCESS:
        prometheus_multiprocess.mark_process_dead(os.getpid())


def metrics_text() -> bytes:
    """The exposition: this process's series, or every live process's from the shared directory."""
    state.refresh()
    if MULTIPROCESS:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def verbose_asked(request: HttpRequest) -> bool:
    """``/healthz?verbose=1``: the process's details, guarded as ``/metrics`` is."""
    return request.GET.get("verbose") not in (None, "", "0")


async def operator_allowed(request: HttpRequest) -> bool:
    """The bearer token ``DRAGOMAN_METRICS_TOKEN`` (a scraper), or a staff admin session."""
    token = settings.METRICS_TOKEN
    authorization = request.headers.get("Authorization", "")
    if token and authorization.startswith("Bearer "):
        return hmac.compare_digest(authorization[7:].strip().encode(), token.encode())
    user: Any = await request.auser() if hasattr(request, "auser") else None
    return bool(user is not None and user.is_active and user.is_staff)


OPERATOR_ONLY = ("needs Authorization: Bearer <DRAGOMAN_METRICS_TOKEN> or a staff admin session")


async def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(f"Method {request.method} not allowed for /metrics\n", status=405,
                            content_type="text/plain", headers={"Allow": "GET, HEAD"})
    if not await operator_allowed(request):
        return HttpResponse(f"/metrics {OPERATOR_ONLY}\n", status=401, content_type="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="dragoman metrics"'})
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
