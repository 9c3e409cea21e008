"""An in-process, immutable copy of the gateway's configuration, so requests never query the DB.

The snapshot is rebuilt when this process changes the config (signals) and, for changes made
by other instances, when the shared ``ConfigStamp`` version moves; that is checked (one small
query) at most every ``CONFIG_REFRESH_SECONDS`` per process, see ``snapshot_get``.
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
from dataclasses import dataclass, field
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from translation.capabilities import Capabilities, capabilities_build

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
    id: int
    pattern: str
    is_glob: bool
    backend: BackendInfo
    upstream_model: str
    capabilities: Capabilities
    created_at: str
    aliases: tuple[str, ...] = ()  # ids listed in /v1/models for a glob route

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.pattern) if self.is_glob else model == self.pattern


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
    from gateway.models import ApiKey, Backend, ConfigStamp, Route

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
    routes = []
    for r in Route.objects.filter(enabled=True).order_by("order", "id"):
        backend = backends.get(r.backend_id)
        if backend is None:
            continue
        caps = backend.capabilities
        if r.capability_overrides:
            try:
                caps = capabilities_build(base=caps, overrides=r.capability_overrides)
            except ValueError as exc:
                log.error("route %s has invalid capability overrides, skipped: %s", r.model, exc)
                continue
        routes.append(RouteInfo(
            id=r.pk, pattern=r.model, is_glob=r.is_glob, backend=backend,
            upstream_model=r.upstream_model, capabilities=caps,
            created_at=r.created_at.isoformat().replace("+00:00", "Z"), aliases=r.alias_list(),
        ))
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


class _State:
    current: Snapshot | None = None
    checked_at: float = 0.0  # when the last stamp check (or build) started, time.monotonic()
    generation: int = 0  # bumped by snapshot_invalidate: a build that started earlier is not kept
    refresh: asyncio.Task[Snapshot] | None = None
    refresh_started: float = 0.0
    watcher: threading.Thread | None = None  # servers: checks the stamp so requests never wait
    watcher_failing: bool = False


_state = _State()

# A check that takes longer (the database is slow or gone) is not waited for: requests go on
# with the snapshot they have, and the check applies whatever it finds when it ends.
CHECK_WAIT_SECONDS = 1.0


def snapshot_invalidate() -> None:
    _state.generation += 1
    _state.current = None


async def snapshot_get() -> Snapshot:
    """The config snapshot, checked against the shared ``ConfigStamp`` at most every
    ``CONFIG_REFRESH_SECONDS``: one small query per process and interval, which the request that
    finds the snapshot due waits for (with any others arriving meanwhile). So a change made
    anywhere is served everywhere once the interval has passed, even by an instance that was idle
    (a key revoked elsewhere is refused on the first request); other requests never wait.
    Under a server the watcher thread (``snapshot_watch_start``) does the checking instead, and
    requests wait only for a rebuild after a change made in this process."""
    current = _state.current
    if current is not None and (_state.watcher is not None
                                or time.monotonic() - _state.checked_at < settings.CONFIG_REFRESH_SECONDS):
        return current
    loop = asyncio.get_running_loop()
    refresh = _state.refresh
    if refresh is None or refresh.get_loop() is not loop:
        refresh = _state.refresh = loop.create_task(_refresh(current))
        _state.refresh_started = time.monotonic()
    if current is None:
        return await asyncio.shield(refresh)
    # Nobody waits on a check that has already taken CHECK_WAIT_SECONDS (the database hangs).
    wait = _state.refresh_started + CHECK_WAIT_SECONDS - time.monotonic()
    if wait > 0:
        await asyncio.wait({refresh}, timeout=wait)
    return _state.current or current


async def _refresh(current: Snapshot | None) -> Snapshot:
    """Rebuild when there is no snapshot or the stamp moved; the one refresh in flight per process."""
    started, generation = time.monotonic(), _state.generation
    try:
        try:
            if current is not None and await sync_to_async(_db_read, thread_sensitive=False)(
                    _stamp_read) == current.version:
                _state.checked_at = started
                return current
            snap = await sync_to_async(_db_read, thread_sensitive=False)(snapshot_build)
        except Exception:
            if current is None:
                raise  # nothing to serve: the request fails (the error envelope, never a page)
            log.exception("config refresh failed; serving the previous snapshot")
            _state.checked_at = started
            return current
        if generation == _state.generation:  # else it changed here meanwhile: the next request rebuilds
            _state.current, _state.checked_at = snap, started
        return snap
    finally:
        if _state.refresh is asyncio.current_task():
            _state.refresh = None


def snapshot_watch_start() -> None:
    """Servers (``gateway.asgi``) check the shared stamp from a daemon thread twice per
    ``CONFIG_REFRESH_SECONDS`` instead: no request ever waits on that query, and an idle instance
    still picks up a change made elsewhere (a revoked key) within the interval."""
    if _state.watcher is None:
        _state.watcher = threading.Thread(target=_watch, name="dragoman-config-watch", daemon=True)
        _state.watcher.start()


def _watch() -> None:
    while True:
        time.sleep(max(settings.CONFIG_REFRESH_SECONDS / 2, 0.05))
        try:
            _watch_once()
        except Exception:
            if not _state.watcher_failing:  # once per outage, not twice a second
                log.exception("config watch failed; serving the previous snapshot until it succeeds")
            _state.watcher_failing = True
        else:
            _state.watcher_failing = False


def _watch_once() -> None:
    current, generation, started = _state.current, _state.generation, time.monotonic()
    if current is None:
        return  # the next request builds it
    if _db_read(_stamp_read) == current.version:
        _state.checked_at = started
        return
    snap = _db_read(snapshot_build)
    if generation == _state.generation:  # else it changed here meanwhile: the next request rebuilds
        _state.current, _state.checked_at = snap, started


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
