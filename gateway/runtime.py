"""The process's long-lived state in one place: the config store (the snapshot and its watcher),
the inspector's recorder (its writer thread), the rate limiter, the backends' HTTP client
pools and their health, with one ``start`` and one ``stop``. Built once per process (``runtime_get``); the
server entry point (``gateway.asgi``) and the test setup (tests/conftest.py) start it, and stop
it at exit.

The module globals the request path still imports (``gateway.snapshot.store`` behind
``snapshot_get``, ``inspector.recorder.recorder``, ``gateway.ratelimit.limiter``,
``gateway.upstream.pools``) are the runtime's own objects, not copies.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from gateway.health import Health, HealthSync
from gateway.ratelimit import RateLimiter
from gateway.snapshot import ConfigStore
from gateway.upstream import UpstreamPools
from inspector.recorder import Recorder

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: ConfigStore
    recorder: Recorder
    limiter: RateLimiter
    upstream: UpstreamPools  # the backends' HTTP client pools, one per backend version
    health: Health  # backends' passive health, and the thread sharing it with other instances
    health_sync: HealthSync

    def start(self) -> None:
        """Start the recorder's writer, the config watcher and the health sharing (idempotent)."""
        from django.conf import settings

        self.health.configure(failures=settings.HEALTH_EJECT_FAILURES, window=settings.HEALTH_EJECT_WINDOW_SECONDS,
                              cooldown=settings.HEALTH_EJECT_SECONDS)
        self.recorder.start()
        self.config.start()
        self.health_sync.start()
        from gateway.metrics import metrics_start
        from gateway.tracing import tracing_start

        metrics_start()
        tracing_start()  # OpenTelemetry over OTLP, when an endpoint is set

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching the config, then write what the recorder holds and end its writer."""
        from gateway.metrics import metrics_stop

        self.config.stop()
        self.health_sync.stop()
        metrics_stop()
        if not self.recorder.stop(timeout):
            log.error("inspector: the writer was still writing after %.0f s at shutdown", timeout)
        from gateway.tracing import tracing_stop

        tracing_stop()  # after the writer: its last batch's spans are exported too

    @property
    def running(self) -> bool:
        return self.recorder.running and self.config.watching


_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime_get() -> Runtime:
    """The process's runtime, built on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            from gateway.health import health, health_sync
            from gateway.ratelimit import limiter
            from gateway.snapshot import store
            from gateway.upstream import pools
            from inspector.recorder import recorder

            _runtime = Runtime(config=store, recorder=recorder, limiter=limiter, upstream=pools,
                               health=health, health_sync=health_sync)
        return _runtime
