"""The declarative config file (``dragoman.yaml``): parse, validate, expand ``${ENV}``, apply.

Applying is all-or-nothing (one transaction) and idempotent: it upserts by name and reports
what changed. Nothing is deleted: rows not in the file are left alone, except the further targets
of a route that lists its ``targets:`` (the list is the route's whole set of targets).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import connection, transaction

from gateway.models import ApiKey, Backend, BackendKind, Route, RouteTarget
from gateway.services import apikey_set_secret
from gateway.snapshot import key_hash
from translation.capabilities import PRESETS, Capabilities, CapabilityError, capabilities_build


class ConfigError(Exception):
    pass


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def env_expand(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.append(f"{where}: environment variable {name} is not set" if where
                            else f"environment variable {name} is not set")
            return ""
        return _ENV.sub(sub, value)
    if isinstance(value, list):
        return [env_expand(v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: env_expand(v, f"{where}.{k}" if where else str(k), problems) for k, v in value.items()}
    return value


@dataclass
class ConfigSpec:
    backends: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)


_BACKEND_FIELDS = {"name", "kind", "base_url", "api_key", "preset", "capabilities", "connect_timeout",
                   "read_timeout", "enabled", "capture"}
_ROUTE_FIELDS = {"model", "backend", "upstream_model", "order", "capabilities", "enabled", "aliases", "targets",
                 "max_attempts", "failover_seconds"}
_TARGET_FIELDS = {"backend", "upstream_model", "priority", "weight", "capabilities", "enabled"}
_KEY_FIELDS = {"name", "key", "enabled", "allowed_models", "rate_limit_per_minute"}


def _aliases_text(value: Any) -> str:
    """``aliases:`` as a list of ids (or one comma-separated string) → the column's text."""
    if value is None:
        return ""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(a, str) for a in items):
        raise ConfigError("aliases must be a list of model ids")
    return ", ".join(a.strip() for a in items if a.strip())


def route_first_backend(route: dict[str, Any]) -> Any:
    """The backend that becomes the route's own (``Route.backend``): ``backend:``, or the first
    target of the lowest priority (what ``route_targets_normalise`` puts first)."""
    targets = route.get("targets")
    if "backend" in route or not isinstance(targets, list) or not targets:
        return route.get("backend")
    ordered = route_targets_normalise(targets)
    return ordered[0].get("backend") if ordered else None


def _priority_of(target: Any) -> int:
    priority = target.get("priority", 0) if isinstance(target, dict) else 0
    return priority if isinstance(priority, int) and not isinstance(priority, bool) else 0


def route_targets_normalise(targets: list[Any]) -> list[dict[str, Any]]:
    """A route's ``targets:`` as rows: by priority (file order within one), priorities shifted so
    the lowest is 0 (the group of ``Route.backend``, which is the first of them)."""
    items = [t for t in targets if isinstance(t, dict)]
    if not items:
        return []
    lowest = min(_priority_of(t) for t in items)
    ordered = sorted(items, key=_priority_of)
    return [{**t, "priority": _priority_of(t) - lowest} for t in ordered]


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's quote of the line: it may hold a key."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return type(exc).__name__
    parts = []
    for text, mark in ((exc.context, exc.context_mark), (exc.problem, exc.problem_mark)):
        if text:
            parts.append(f"{text} (line {mark.line + 1}, column {mark.column + 1})" if mark else text)
    return "; ".join(parts) or type(exc).__name__


class ConfigProblems:
    """Every problem of a config file, by the entry it belongs to, raised together at the end.

    An entry is named by its ``name`` (a route by its ``model``), by its index only when it has
    none; whatever checks a part of an entry (its capabilities, later each of its targets) adds
    to the same entry with its own prefix.
    """

    def __init__(self) -> None:
        self._by_entry: dict[str, list[str]] = {}

    def entry(self, entry: str) -> None:
        """Reserve ``entry``'s place, so the message lists entries in file order."""
        self._by_entry.setdefault(entry, [])

    def add(self, entry: str, text: str) -> None:
        self._by_entry.setdefault(entry, []).append(text)

    def capabilities(self, entry: str, prefix: str, *, preset: str = "generic",
                     overrides: Any = None, base: Capabilities | None = None) -> None:
        if overrides is not None and not isinstance(overrides, dict):
            self.add(entry, f"{prefix}: must be a mapping of capability names to values")
            return
        try:
            capabilities_build(preset=preset, overrides=overrides, base=base)
        except CapabilityError as exc:
            for problem in exc.problems:
                self.add(entry, f"{prefix}.{problem}")

    def raise_any(self, source: str) -> None:
        """One ``ConfigError`` naming every problem: one line per entry, its problems joined by ``;``."""
        lines = [f"{entry}: " + "; ".join(texts) if entry else "; ".join(texts)
                 for entry, texts in self._by_entry.items() if texts]
        if not lines:
            return
        count = sum(len(texts) for texts in self._by_entry.values())
        if count == 1:
            raise ConfigError(f"{source}: {lines[0]}")
        raise ConfigError(f"{source}: {count} problems\n" + "\n".join(f"  {line}" for line in lines))


_SINGULAR = {"backends": "backend", "routes": "route", "keys": "key"}


def _entry_names(section: str, items: list[Any]) -> list[str]:
    """What each entry of a section is called in messages: ``backend vllm-big``, ``route
    qwen3-coder`` (``→ backend`` added when a model appears twice), ``keys[2]`` without a name."""
    title = "model" if section == "routes" else "name"
    names = [item.get(title) if isinstance(item, dict) else None for item in items]
    repeated = {n for n in names if isinstance(n, str) and names.count(n) > 1}
    out = []
    for i, (item, name) in enumerate(zip(items, names, strict=True)):
        if not isinstance(name, str | int) or isinstance(name, bool) or not str(name).strip():
            out.append(f"{section}[{i}]")
        elif name in repeated and section == "routes":
            out.append(f"route {name} → {route_first_backend(item)}")
        else:
            out.append(f"{_SINGULAR[section]} {name}")
    return out


def config_parse(text: str, *, source: str = "config") -> ConfigSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {yaml_error_text(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with backends, routes and keys")
    problems = ConfigProblems()
    unknown = set(data) - {"backends", "routes", "keys"}
    if unknown:
        problems.add("", f"unknown top-level keys: {', '.join(sorted(map(str, unknown)))}")
    spec = ConfigSpec()
    sections: list[tuple[str, set[str], list[dict[str, Any]]]] = [
        ("backends", _BACKEND_FIELDS, spec.backends), ("routes", _ROUTE_FIELDS, spec.routes),
        ("keys", _KEY_FIELDS, spec.keys),
    ]
    names: dict[str, list[str]] = {}
    for section, allowed, out in sections:
        items = data.get(section) or []
        if not isinstance(items, list):
            problems.add(section, "must be a list")
            continue
        unset: list[list[str]] = [[] for _ in items]
        items = [env_expand(item, "", unset[i]) for i, item in enumerate(items)]
        names[section] = []
        for where, item, missing in zip(_entry_names(section, items), items, unset, strict=True):
            problems.entry(where)
            for text in missing:
                problems.add(where, text)
            if not isinstance(item, dict):
                problems.add(where, "must be a mapping")
                continue
            for extra in sorted(map(str, set(item) - allowed)):
                problems.add(where, f"{extra}: unknown field")
            out.append(item)
            names[section].append(where)
    backend_names = {b["name"] for b in spec.backends if isinstance(b.get("name"), str)}
    for where, b in zip(names.get("backends", []), spec.backends, strict=True):
        if not b.get("name") or not re.fullmatch(r"[-a-zA-Z0-9_]+", str(b.get("name"))):
            problems.add(where, "name is required (letters, digits, - and _)")
        if not b.get("base_url") or not str(b["base_url"]).startswith(("http://", "https://")):
            problems.add(where, "base_url must be an http(s) URL")
        kind = b.get("kind", BackendKind.OPENAI_CHAT)
        if kind not in BackendKind.values:
            problems.add(where, f"kind must be one of {', '.join(BackendKind.values)}")
        preset = b.get("preset", "generic")
        if preset not in PRESETS:
            problems.add(where, f"preset must be one of {', '.join(PRESETS)}")
        else:
            problems.capabilities(where, "capabilities", preset=preset, overrides=b.get("capabilities") or {})
        for t in ("connect_timeout", "read_timeout"):
            if t in b and not (isinstance(b[t], int | float) and b[t] > 0):
                problems.add(where, f"{t} must be a positive number")
        if b.get("capture") not in (None, "", "full", "metadata", "off"):
            problems.add(where, "capture must be full, metadata or off")
    known_backends = backend_names | set(Backend.objects.values_list("name", flat=True))
    for where, r in zip(names.get("routes", []), spec.routes, strict=True):
        if not r.get("model"):
            problems.add(where, "model is required")
        if "targets" in r:
            _route_targets_check(problems, where, r, known_backends)
        elif not isinstance(r.get("backend"), str) or r["backend"] not in known_backends:
            problems.add(where, f"backend {r.get('backend')!r} is not defined")
        if "order" in r and not isinstance(r["order"], int):
            problems.add(where, "order must be an integer")
        if "max_attempts" in r and not _is_whole(r["max_attempts"], at_least=1):
            problems.add(where, "max_attempts must be a whole number of at least 1")
        failover = r.get("failover_seconds")
        if "failover_seconds" in r and (isinstance(failover, bool) or not isinstance(failover, int | float)
                                        or failover < 0):
            problems.add(where, "failover_seconds must be a number of seconds (0 or more)")
        if r.get("capabilities"):
            problems.capabilities(where, "capabilities", overrides=r["capabilities"])
        try:
            aliases = _aliases_text(r.get("aliases"))
        except ConfigError as exc:
            problems.add(where, str(exc))
        else:
            unmatched = Route(model=str(r.get("model") or ""), aliases=aliases).aliases_unmatched()
            if r.get("model") and unmatched:
                problems.add(where, f"aliases {', '.join(unmatched)} do not match its model pattern")
    for where, k in zip(names.get("keys", []), spec.keys, strict=True):
        if not k.get("name"):
            problems.add(where, "name is required")
        if not k.get("key") or len(str(k["key"])) < 16:
            problems.add(where, "key is required and must be at least 16 characters")
        limit = k.get("rate_limit_per_minute")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            problems.add(where, "rate_limit_per_minute must be a whole number of at least 1 (or absent)")
    problems.raise_any(source)
    return spec


def _is_whole(value: Any, *, at_least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= at_least


def _target_names(targets: list[Any]) -> list[str]:
    """What each target is called in messages: ``target vllm-b``; ``targets[2] (vllm-b)`` when its
    backend is listed twice, ``targets[2]`` without one."""
    backends = [t.get("backend") if isinstance(t, dict) else None for t in targets]
    out = []
    for i, backend in enumerate(backends):
        if not isinstance(backend, str) or not backend:
            out.append(f"targets[{i}]")
        elif backends.count(backend) > 1:
            out.append(f"targets[{i}] ({backend})")
        else:
            out.append(f"target {backend}")
    return out


def _route_targets_check(problems: ConfigProblems, where: str, route: dict[str, Any],
                         known_backends: set[str]) -> None:
    """A route's ``targets:``, every problem under the route's entry, each target by its backend."""
    for field_name in ("backend", "upstream_model", "capabilities"):
        if field_name in route:
            problems.add(where, f"{field_name}: give it on each target, not beside targets")
    targets = route["targets"]
    if not isinstance(targets, list) or not targets:
        problems.add(where, "targets must be a list of at least one {backend, ...} mapping")
        return
    seen: set[tuple[str, str]] = set()
    for name, target in zip(_target_names(targets), targets, strict=True):
        if not isinstance(target, dict):
            problems.add(where, f"{name}: must be a mapping")
            continue
        for extra in sorted(map(str, set(target) - _TARGET_FIELDS)):
            problems.add(where, f"{name}: {extra}: unknown field")
        backend = target.get("backend")
        if not isinstance(backend, str) or backend not in known_backends:
            problems.add(where, f"{name}: backend {backend!r} is not defined")
        upstream = target.get("upstream_model", "")
        if not isinstance(upstream, str):
            problems.add(where, f"{name}: upstream_model must be a string")
        elif isinstance(backend, str):
            if (backend, upstream) in seen:
                problems.add(where, f"{name}: the same backend and upstream_model are listed twice")
            seen.add((backend, upstream))
        if "priority" in target and not _is_whole(target["priority"], at_least=0):
            problems.add(where, f"{name}: priority must be a whole number (0 or more)")
        if "weight" in target and not _is_whole(target["weight"], at_least=1):
            problems.add(where, f"{name}: weight must be a whole number of at least 1")
        if "enabled" in target and not isinstance(target["enabled"], bool):
            problems.add(where, f"{name}: enabled must be true or false")
        if target.get("capabilities"):
            problems.capabilities(where, f"{name}: capabilities", overrides=target["capabilities"])
    ordered = route_targets_normalise(targets)
    if ordered and ordered[0].get("enabled") is False:
        problems.add(where, f"target {ordered[0].get('backend')}: the first target of the lowest priority is "
                            "the route's own backend and cannot be disabled (disable the route, or give "
                            "another target the lowest priority)")


def config_load(path: str | Path) -> ConfigSpec:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return config_parse(text, source=str(path))


def _assign(obj: Any, values: dict[str, Any]) -> list[str]:
    changed = []
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed.append(name)
    return changed


# pg_advisory_xact_lock key: a constant used for nothing else ("drag").
CONFIG_APPLY_LOCK = 0x64726167


@transaction.atomic
def config_apply(spec: ConfigSpec) -> list[str]:
    """Upsert everything in ``spec``; returns one line per created or changed row."""
    if connection.vendor == "postgresql":
        # Instances starting together with the same file apply it one at a time: the next finds
        # the rows the first created (instead of an IntegrityError, or a route added twice).
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CONFIG_APPLY_LOCK])
    report: list[str] = []
    backends: dict[str, Backend] = {}
    for b in spec.backends:
        backend = Backend.objects.filter(name=b["name"]).first()
        created = backend is None
        backend = backend or Backend(name=b["name"])
        caps = b.get("capabilities") or {}
        values: dict[str, Any] = {
            "kind": b.get("kind", BackendKind.OPENAI_CHAT), "base_url": b["base_url"],
            "api_key": str(b.get("api_key") or ""), "preset": b.get("preset", "generic"),
            "connect_timeout": float(b.get("connect_timeout", 10.0)),
            "read_timeout": float(b.get("read_timeout", 600.0)), "enabled": bool(b.get("enabled", True)),
            "capture": b.get("capture") or "",
        }
        for name, value in capabilities_build(overrides=caps).as_dict().items():
            values[f"cap_{name}"] = (
                (",".join(value) if isinstance(value, tuple) else value) if name in caps else None
            )
        changed = _assign(backend, values)
        if created or changed:
            backend.save()
            shown = [c for c in changed if c != "api_key"] + (["api_key"] if "api_key" in changed else [])
            report.append(f"backend {backend.name}: {'created' if created else 'updated ' + ', '.join(shown)}")
        backends[backend.name] = backend
    for r in spec.routes:
        report += _route_apply(r, backends)
    for k in spec.keys:
        key = ApiKey.objects.filter(name=k["name"]).first()
        created = key is None
        key = key or ApiKey(name=k["name"])
        allowed = k.get("allowed_models") or ""
        if isinstance(allowed, list):
            allowed = "\n".join(allowed)
        changed = _assign(key, {"enabled": bool(k.get("enabled", True)), "allowed_models": allowed,
                                "rate_limit_per_minute": k.get("rate_limit_per_minute")})
        if key.key_hash != key_hash(str(k["key"])):
            apikey_set_secret(key=key, secret=str(k["key"]))
            changed.append("key")
        if created or changed:
            key.save()
            report.append(f"key {key.name}: {'created' if created else 'updated ' + ', '.join(changed)}")
    return report


def _backend_get(name: str, backends: dict[str, Backend]) -> Backend:
    return backends.get(name) or Backend.objects.get(name=name)


def _route_apply(r: dict[str, Any], backends: dict[str, Backend]) -> list[str]:
    """Upsert one route, found by its model and its own backend (the first target's), and with
    ``targets:`` make its further targets exactly the file's: matched by backend and upstream
    model, updated, created, and the ones the file no longer lists deleted."""
    targets = route_targets_normalise(r["targets"]) if "targets" in r else None
    first = targets[0] if targets else r
    backend = _backend_get(first["backend"], backends)
    route = Route.objects.filter(model=r["model"], backend=backend).first()
    created = route is None
    route = route or Route(model=r["model"], backend=backend)
    values: dict[str, Any] = {
        "upstream_model": first.get("upstream_model") or "", "order": r.get("order", 100),
        "capability_overrides": first.get("capabilities") or {}, "enabled": bool(r.get("enabled", True)),
        "aliases": _aliases_text(r.get("aliases")),
        "max_attempts": r.get("max_attempts", 3), "failover_seconds": float(r.get("failover_seconds", 30.0)),
    }
    if targets is not None:
        values["weight"] = first.get("weight", 1)
    changed = _assign(route, values)
    if route.aliases_unmatched():
        raise ConfigError(f"route {route.model}: aliases {', '.join(route.aliases_unmatched())} do not match "
                          "its model pattern")
    name = f"route {route.model} → {backend.name}"
    report = []
    if created or changed:
        route.save()
        report.append(f"{name}: {'created' if created else 'updated ' + ', '.join(changed)}")
    if targets is None:
        return report
    existing = {(t.backend_id, t.upstream_model): t for t in route.targets.select_related("backend")}
    for t in targets[1:]:
        target_backend = _backend_get(t["backend"], backends)
        upstream = t.get("upstream_model") or ""
        row = existing.pop((target_backend.pk, upstream), None)
        target_created = row is None
        row = row or RouteTarget(route=route, backend=target_backend, upstream_model=upstream)
        target_changed = _assign(row, {
            "priority": t["priority"], "weight": t.get("weight", 1),
            "capability_overrides": t.get("capabilities") or {}, "enabled": t.get("enabled", True),
        })
        if target_created or target_changed:
            row.save()
            shown = f"target {target_backend.name}" + (f" ({upstream})" if upstream else "")
            report.append(f"{name}: {shown} "
                          f"{'created' if target_created else 'updated ' + ', '.join(target_changed)}")
    for row in existing.values():
        row.delete()
        shown = f"target {row.backend.name}" + (f" ({row.upstream_model})" if row.upstream_model else "")
        report.append(f"{name}: {shown} deleted (not in the file)")
    return report
