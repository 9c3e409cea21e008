"""An in-process, immutable copy of the gateway's configuration, so requests never query the DB.

The snapshot is rebuilt when this process changes the config (signals) and, for changes made
by other instances, when the shared ``ConfigStamp`` version moves; a watcher thread checks that
(one small query) twice per ``CONFIG_REFRESH_SECONDS``, see ``ConfigStore``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections

from translation.capabilities import Capabilities, capabilities_build

if TYPE_CHECKING:
    from gateway.models import Route, RouteTarget

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX_LEN = 12


@dataclass(frozen=True, slots=True)
class BackendInfo:
    id: int
    name: str
    kind: str
    base_url: str
    api_key: str
    preset: str
    capabilities: Capabilities
    connect_timeout: float
    read_timeout: float
    updated: float  # identifies this version of the backend (for its HTTP client pool)
    capture: str = ""  # inspector capture level; "" = the global DRAGOMAN_INSPECTOR_CAPTURE


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """A route as one target serves it: the backend, its upstream model and capabilities are
    what adapters read. The route's own ``RouteInfo`` is its first target's, with ``targets``
    listing every target (``gateway.routing`` orders them per request); a target's own view has
    no targets."""

    id: int
    pattern: str
    is_glob: bool
    backend: BackendInfo
    upstream_model: str
    capabilities: Capabilities
    created_at: str
    aliases: tuple[str, ...] = ()  # ids listed in /v1/models for a glob route
    targets: tuple[Target, ...] = ()
    max_attempts: int = 3
    failover_seconds: float = 30.0

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.pattern) if self.is_glob else model == self.pattern


@dataclass(frozen=True, slots=True)
class Target:
    """One backend of a route: ``route`` is the view adapters are given for it."""

    route: RouteInfo
    group: int  # priority group: 0 first, then each fallback group in turn
    weight: int
    seed: bytes  # its identity for rendezvous hashing (backend and upstream model)

    @property
    def name(self) -> str:
        return self.route.backend.name


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    key_hash: str
    enabled: bool
    allowed: tuple[str, ...]
    rate_limit_per_minute: int | None = None  # None: unlimited (gateway.ratelimit)

    def allows(self, model: str) -> bool:
        return not self.allowed or any(fnmatch.fnmatchcase(model, p) for p in self.allowed)


@dataclass(frozen=True)
class Snapshot:
    version: int
    routes: tuple[RouteInfo, ...]
    keys_by_prefix: dict[str, tuple[KeyInfo, ...]]
    backends: dict[str, BackendInfo] = field(default_factory=dict)

    def route_resolve(self, model: str) -> RouteInfo | None:
        for route in self.routes:
            if route.matches(model):
                return route
        return None

    def key_find(self, presented: str) -> KeyInfo | None:
        """The key whose hash equals the presented key's, compared in constant time."""
        digest = key_hash(presented)
        found = None
        for candidate in self.keys_by_prefix.get(presented[:KEY_PREFIX_LEN], ()):
            if hmac.compare_digest(candidate.key_hash, digest):
                found = candidate
        return found


def key_hash(key: str) -> str:
    # Keys are long random secrets, so a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(key.encode()).hexdigest()


def snapshot_build() -> Snapshot:
    """Read the three tables once (sync; run it in a thread from async code)."""
    from gateway.models import ApiKey, Backend, ConfigStamp, Route, RouteTarget

    stamp = ConfigStamp.objects.filter(pk=1).values_list("version", flat=True).first() or 0
    backends: dict[int, BackendInfo] = {}
    for b in Backend.objects.filter(enabled=True):
        try:
            caps = b.capabilities()
        except ValueError as exc:
            log.error("backend %s has invalid capabilities, skipped: %s", b.name, exc)
            continue
        backends[b.pk] = BackendInfo(
            id=b.pk, name=b.name, kind=b.kind, base_url=b.base_url.rstrip("/"), api_key=b.api_key,
            preset=b.preset, capabilities=caps, connect_timeout=b.connect_timeout,
            read_timeout=b.read_timeout, updated=b.updated_at.timestamp(), capture=b.capture,
        )
    further: dict[int, list[RouteTarget]] = {}
    for t in RouteTarget.objects.filter(enabled=True, route__enabled=True).order_by("priority", "id"):
        further.setdefault(t.route_id, []).append(t)
    routes = []
    for r in Route.objects.filter(enabled=True).order_by("order", "id"):
        route = _route_build(r, backends, further.get(r.pk, []))
        if route is not None:
            routes.append(route)
    keys: dict[str, list[KeyInfo]] = {}
    for k in ApiKey.objects.all():
        keys.setdefault(k.prefix, []).append(KeyInfo(
            id=k.pk, name=k.name, prefix=k.prefix, key_hash=k.key_hash, enabled=k.enabled,
            allowed=k.allowed_patterns(), rate_limit_per_minute=k.rate_limit_per_minute,
        ))
    return Snapshot(
        version=stamp, routes=tuple(routes),
        keys_by_prefix={p: tuple(v) for p, v in keys.items()},
        backends={b.name: b for b in backends.values()},
    )


def _route_build(r: Route, backends: dict[int, BackendInfo], further: list[RouteTarget]) -> RouteInfo | None:
    """The route's ``RouteInfo`` with every usable target (its own backend first, in group 0);
    None when none is usable (disabled backends, invalid overrides)."""
    created_at = r.created_at.isoformat().replace("+00:00", "Z")
    wanted = [(r.backend_id, r.upstream_model, r.capability_overrides, 0, r.weight, f"route {r.model}")]
    wanted += [(t.backend_id, t.upstream_model, t.capability_overrides, t.priority, t.weight,
                f"route {r.model}, target {t.pk}") for t in further]
    targets = []
    for backend_id, upstream_model, overrides, group, weight, where in wanted:
        backend = backends.get(backend_id)
        if backend is None:
            continue
        caps = backend.capabilities
        if overrides:
            try:
                caps = capabilities_build(base=caps, overrides=overrides)
            except ValueError as exc:
                log.error("%s has invalid capability overrides, skipped: %s", where, exc)
                continue
        view = RouteInfo(id=r.pk, pattern=r.model, is_glob=r.is_glob, backend=backend,
                         upstream_model=upstream_model, capabilities=caps, created_at=created_at,
                         aliases=r.alias_list(), max_attempts=r.max_attempts, failover_seconds=r.failover_seconds)
        seed = f"{backend.name}\n{upstream_model}".encode()
        targets.append(Target(route=view, group=group, weight=max(1, weight), seed=seed))
    if not targets:
        return None
    targets.sort(key=lambda t: t.group)  # stable: the route's own backend first within group 0
    return replace(targets[0].route, targets=tuple(targets))


class ConfigStore:
    """The process's snapshot, kept current by one mechanism: a watcher thread (``start``, by
    ``gateway.runtime`` under the server and in the test setup) compares the shared
    ``ConfigStamp`` twice per ``CONFIG_REFRESH_SECONDS`` and rebuilds when it moved, so a change
    made anywhere, even on an instance that is idle (a key revoked elsewhere), is served within
    the interval. Requests never wait for that check: only the very first build, and a rebuild
    after a change made in this process (the signals call ``invalidate``), are awaited."""

    def __init__(self, build: Callable[[], Snapshot] = snapshot_build,
                 stamp_read: Callable[[], int] | None = None) -> None:
        self._build_sync = build
        self._stamp_read = stamp_read or _stamp_read
        self.current: Snapshot | None = None
        self.generation = 0  # bumped by invalidate: a build that started earlier is not kept
        self._lock = threading.Lock()  # the generation's compare-and-set, across the watcher
        self._building: asyncio.Task[Snapshot] | None = None
        self._watcher: threading.Thread | None = None
        self._stopping = threading.Event()
        self.watch_failing = False
        # time.monotonic() when this process last knew its config current (a build kept, or a
        # look at the stamp): /metrics shows the age, which grows while the database is away.
        self.checked_at = time.monotonic()

    def invalidate(self) -> None:
        with self._lock:
            self.generation += 1
            self.current = None

    def _keep(self, snap: Snapshot, generation: int) -> bool:
        """Make ``snap`` current unless the config changed here since its build started (then the
        next request rebuilds)."""
        with self._lock:
            if generation != self.generation:
                return False
            self.current = snap
            self.checked_at = time.monotonic()
            return True

    async def get(self) -> Snapshot:
        current = self.current
        if current is not None:
            return current
        loop = asyncio.get_running_loop()
        building = self._building
        if building is None or building.get_loop() is not loop:
            building = self._building = loop.create_task(self._build())
        return await asyncio.shield(building)

    async def _build(self) -> Snapshot:
        """The one build in flight per process; a failure fails the requests waiting for it (the
        error envelope, never a page): there is nothing to serve."""
        generation = self.generation
        try:
            snap = await sync_to_async(_db_read, thread_sensitive=False)(self._build_sync)
            self._keep(snap, generation)
            return snap
        finally:
            if self._building is asyncio.current_task():
                self._building = None

    def check(self) -> None:
        """One look at the shared stamp (the watcher's step; a test may call it): rebuild when it
        moved. Nothing to do before the first request has built a snapshot."""
        current, generation = self.current, self.generation
        if current is None:
            self.checked_at = time.monotonic()  # nothing built yet: nothing can be stale
            return
        if _db_read(self._stamp_read) == current.version:
            self.checked_at = time.monotonic()
            return
        self._keep(_db_read(self._build_sync), generation)

    def start(self) -> None:
        with self._lock:
            if self._watcher is None:
                self._stopping.clear()
                self._watcher = threading.Thread(target=self._watch, name="dragoman-config-watch", daemon=True)
                self._watcher.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            self._stopping.set()
            watcher.join(timeout)

    @property
    def watching(self) -> bool:
        return self._watcher is not None

    def _watch(self) -> None:
        try:
            while not self._stopping.wait(max(settings.CONFIG_REFRESH_SECONDS / 2, 0.05)):
                try:
                    self.check()
                except Exception:
                    if not self.watch_failing:  # once per outage, not twice a second
                        log.exception("config watch failed; serving the previous snapshot until it succeeds")
                    self.watch_failing = True
                else:
                    self.watch_failing = False
        finally:
            connections.close_all()  # this thread's own: a stopped watcher holds no database session


def _db_read(read: Callable[[], T]) -> T:
    """Run ``read`` in an executor thread on a usable connection: one the database ended (an
    outage, a restart) or past CONN_MAX_AGE is replaced first, instead of failing for ever."""
    close_old_connections()
    try:
        return read()
    finally:
        close_old_connections()  # at CONN_MAX_AGE 0 (the default) the connection goes back now


def _stamp_read() -> int:
    from gateway.models import ConfigStamp

    return ConfigStamp.objects.filter(pk=1).values_list("version", flat=True).first() or 0


store = ConfigStore()

# The request path's entry points (gateway.pipeline, the signals); ``store`` is the runtime's.
snapshot_get = store.get


def snapshot_invalidate() -> None:
    store.invalidate()
