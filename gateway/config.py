"""The declarative config file (``dragoman.yaml``): parse, validate, expand ``${ENV}``, apply.

Applying is all-or-nothing (one transaction) and idempotent: it upserts by name and reports
what changed. Nothing is deleted: rows not in the file are left alone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import connection, transaction

from gateway.models import ApiKey, Backend, BackendKind, Route
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
_ROUTE_FIELDS = {"model", "backend", "upstream_model", "order", "capabilities", "enabled", "aliases"}
_KEY_FIELDS = {"name", "key", "enabled", "allowed_models", "rate_limit_per_minute"}


def _aliases_text(value: Any) -> str:
    """``aliases:`` as a list of ids (or one comma-separated string) → the column's text."""
    if value is None:
        return ""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(a, str) for a in items):
        raise ConfigError("aliases must be a list of model ids")
    return ", ".join(a.strip() for a in items if a.strip())


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
            out.append(f"route {name} → {item.get('backend')}")
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
        if not isinstance(r.get("backend"), str) or r["backend"] not in known_backends:
            problems.add(where, f"backend {r.get('backend')!r} is not defined")
        if "order" in r and not isinstance(r["order"], int):
            problems.add(where, "order must be an integer")
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
        backend = backends.get(r["backend"]) or Backend.objects.get(name=r["backend"])
        route = Route.objects.filter(model=r["model"], backend=backend).first()
        created = route is None
        route = route or Route(model=r["model"], backend=backend)
        changed = _assign(route, {
            "upstream_model": r.get("upstream_model") or "", "order": r.get("order", 100),
            "capability_overrides": r.get("capabilities") or {}, "enabled": bool(r.get("enabled", True)),
            "aliases": _aliases_text(r.get("aliases")),
        })
        if route.aliases_unmatched():
            raise ConfigError(f"route {route.model}: aliases {', '.join(route.aliases_unmatched())} do not match "
                              "its model pattern")
        if created or changed:
            route.save()
            report.append(f"route {route.model} → {backend.name}: "
                          f"{'created' if created else 'updated ' + ', '.join(changed)}")
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
