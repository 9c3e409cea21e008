"""Passive health of backends: a backend that failed ``failures`` times within ``window``
seconds (refused or dropped connections, timeouts before its answer, 5xx, 429, 529) is ejected
for ``cooldown`` seconds; after it, one request is let through as a probe, and its outcome
either brings the backend back or ejects it again. A 429 or 529 with ``retry-after`` ejects the
backend at once for that long. Routes skip an ejected backend (``gateway.routing``).

The request path only reads and writes this process's memory (``Health``). Instances share what
they find through ``HealthSync``, a thread that every ``HEALTH_SYNC_SECONDS`` publishes this
process's new ejections and reads the others' — in Redis when ``REDIS_URL`` is set, else in the
database (``gateway.models.BackendHealth``) — so a dead replica found by one instance is skipped
by all of them within the interval. Recoveries are not shared: each instance probes by itself
once the cool-down is over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

log = logging.getLogger(__name__)

State = Literal["healthy", "failing", "ejected", "probing"]

# A retry-after beyond this is capped: a backend asking for an hour is still probed sooner.
RETRY_AFTER_MAX_SECONDS = 300.0
INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(slots=True)
class BackendState:
    failures: deque[float] = field(default_factory=deque)
    ejected_until: float = 0.0
    last_error: str = ""
    failed_at: float = 0.0
    probe_since: float = 0.0  # a probe request is out (0: none)
    inflight: int = 0
    ejected_by: str = ""  # the instance whose ejection this is
    publish: bool = False  # an ejection of this instance's not yet shared


@dataclass(frozen=True, slots=True)
class Ejection:
    backend: str
    until: float  # unix time
    error: str
    failed_at: float
    instance: str


class Health:
    def __init__(self, *, failures: int = 3, window: float = 30.0, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.time, instance: str = INSTANCE) -> None:
        self.failures, self.window, self.cooldown = failures, window, cooldown
        self.clock = clock
        self.instance = instance
        self._states: dict[str, BackendState] = {}
        self._lock = threading.Lock()  # the sync thread's reads and writes against the request path's

    def configure(self, *, failures: int, window: float, cooldown: float) -> None:
        self.failures, self.window, self.cooldown = failures, window, cooldown

    def _state(self, name: str) -> BackendState:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = BackendState()
        return state

    # -- the request path -----------------------------------------------------------------

    def available(self, name: str) -> bool:
        """Whether a request may go to ``name`` now: not ejected, or its cool-down is over and no
        probe is out (a probe that never reported is given up after a cool-down)."""
        state = self._states.get(name)
        if state is None or not state.ejected_until:
            return True
        now = self.clock()
        if now < state.ejected_until:
            return False
        return not state.probe_since or now - state.probe_since > self.cooldown

    def inflight(self, name: str) -> int:
        state = self._states.get(name)
        return state.inflight if state is not None else 0

    def attempt_started(self, name: str) -> None:
        state = self._state(name)
        state.inflight += 1
        if state.ejected_until and self.clock() >= state.ejected_until:
            state.probe_since = self.clock()

    def attempt_ended(self, name: str) -> None:
        state = self._state(name)
        state.inflight = max(0, state.inflight - 1)

    def succeeded(self, name: str) -> None:
        state = self._states.get(name)
        if state is None:
            return
        state.failures.clear()
        if state.ejected_until and self.clock() >= state.ejected_until:
            state.ejected_until, state.probe_since, state.ejected_by = 0.0, 0.0, ""

    def failed(self, name: str, error: str, *, retry_after: float | None = None) -> None:
        """A failure of ``name``'s (not the client's): counted, and ejecting it when it is the
        ``failures``-th within the window, a failed probe, or a refusal with ``retry-after``."""
        now = self.clock()
        with self._lock:
            state = self._state(name)
            state.last_error, state.failed_at = error[:500], now
            if retry_after is not None and retry_after > 0:
                self._eject(state, now + min(retry_after, RETRY_AFTER_MAX_SECONDS))
                return
            if state.probe_since:
                self._eject(state, now + self.cooldown)
                return
            state.failures.append(now)
            while state.failures and state.failures[0] < now - self.window:
                state.failures.popleft()
            if len(state.failures) >= self.failures:
                self._eject(state, now + self.cooldown)

    def _eject(self, state: BackendState, until: float) -> None:
        if until > state.ejected_until or state.probe_since:
            state.ejected_until = until
        state.failures.clear()
        state.probe_since = 0.0
        state.ejected_by = self.instance
        state.publish = True

    # -- reading and sharing ----------------------------------------------------------------

    def state_of(self, name: str) -> State:
        state = self._states.get(name)
        if state is None:
            return "healthy"
        if state.ejected_until:
            if self.clock() < state.ejected_until:
                return "ejected"
            return "probing"
        return "failing" if state.failures else "healthy"

    def report(self) -> dict[str, dict[str, Any]]:
        """Every backend this process has sent to: state, in-flight, last error, ejected until."""
        out = {}
        for name, state in sorted(self._states.items()):
            out[name] = {"state": self.state_of(name), "inflight": state.inflight,
                         "recent_failures": len(state.failures), "last_error": state.last_error,
                         "failed_at": state.failed_at or None, "ejected_until": state.ejected_until or None,
                         "ejected_by": state.ejected_by or None}
        return out

    def ejections_to_publish(self) -> list[Ejection]:
        with self._lock:
            out = []
            for name, state in self._states.items():
                if state.publish:
                    state.publish = False
                    out.append(Ejection(name, state.ejected_until, state.last_error, state.failed_at,
                                        self.instance))
            return out

    def ejections_apply(self, ejections: list[Ejection]) -> None:
        """Other instances' ejections: each extends this process's own, never shortens it."""
        now = self.clock()
        with self._lock:
            for e in ejections:
                if e.instance == self.instance or e.until <= now:
                    continue
                state = self._state(e.backend)
                if e.until > state.ejected_until:
                    state.ejected_until, state.ejected_by = e.until, e.instance
                    state.last_error, state.failed_at = e.error, e.failed_at
                    state.probe_since = 0.0

    def reset(self) -> None:
        with self._lock:
            self._states.clear()


class HealthStore(Protocol):
    def publish(self, ejections: list[Ejection]) -> None: ...
    def read(self) -> list[Ejection]: ...


class DatabaseHealthStore:
    """Ejections in ``gateway.models.BackendHealth`` (one row per backend)."""

    def publish(self, ejections: list[Ejection]) -> None:
        from gateway.models import BackendHealth

        for e in ejections:
            BackendHealth.objects.update_or_create(backend_name=e.backend, defaults={
                "ejected_until": e.until, "last_error": e.error, "failed_at": e.failed_at, "instance": e.instance})

    def read(self) -> list[Ejection]:
        from gateway.models import BackendHealth

        rows = BackendHealth.objects.filter(ejected_until__gt=time.time()).values_list(
            "backend_name", "ejected_until", "last_error", "failed_at", "instance")
        return [Ejection(*row) for row in rows]


class RedisHealthStore:
    """Ejections in one Redis hash (``dragoman:health``: backend → JSON)."""

    KEY = "dragoman:health"

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def publish(self, ejections: list[Ejection]) -> None:
        if ejections:
            self._redis.hset(self.KEY, mapping={e.backend: orjson.dumps(
                {"until": e.until, "error": e.error, "failed_at": e.failed_at, "instance": e.instance})
                for e in ejections})

    def read(self) -> list[Ejection]:
        out = []
        now = time.time()
        stale = []
        raw: dict[bytes, bytes] = self._redis.hgetall(self.KEY)  # type: ignore[assignment]
        for name, value in raw.items():
            try:
                data = orjson.loads(value)
                ejection = Ejection(name.decode(), float(data["until"]), str(data.get("error", "")),
                                    float(data.get("failed_at", 0)), str(data.get("instance", "")))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                stale.append(name)
                continue
            if ejection.until > now:
                out.append(ejection)
            elif ejection.until < now - 3600:
                stale.append(name)
        if stale:
            self._redis.hdel(self.KEY, *stale)
        return out


def health_store_default() -> HealthStore:
    from django.conf import settings

    return RedisHealthStore(settings.REDIS_URL) if settings.REDIS_URL else DatabaseHealthStore()


class HealthSync:
    """The thread that shares ejections between instances (``start``/``stop`` by the runtime)."""

    def __init__(self, health: Health, store_make: Callable[[], HealthStore] = health_store_default) -> None:
        self.health = health
        self._store_make = store_make
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failing = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start sharing (not when ``HEALTH_SYNC_SECONDS`` is 0: this process keeps its own view)."""
        from django.conf import settings

        if self.running or settings.HEALTH_SYNC_SECONDS <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dragoman-health-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def sync_once(self, store: HealthStore) -> None:
        pending = self.health.ejections_to_publish()
        if pending:
            store.publish(pending)
        self.health.ejections_apply(store.read())

    def _run(self) -> None:
        from django.conf import settings
        from django.db import close_old_connections, connections

        store: HealthStore | None = None
        try:
            while not self._stop.wait(settings.HEALTH_SYNC_SECONDS):
                try:
                    store = store or self._store_make()
                    close_old_connections()
                    self.sync_once(store)
                except Exception as exc:  # the store down: keep this process's own view, say so once
                    if not self.failing:
                        log.warning("backend health: sharing with other instances failed (%s); retrying", exc)
                    self.failing = True
                else:
                    if self.failing:
                        log.warning("backend health: sharing with other instances works again")
                    self.failing = False
        finally:
            connections.close_all()


health = Health()
health_sync = HealthSync(health)
