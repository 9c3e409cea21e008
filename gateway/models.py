"""Gateway configuration: backends, routes and client keys.

Requests never read these tables directly: ``gateway.snapshot`` serves them from memory and
reloads when they change (``ConfigStamp`` tells other instances that they did).
"""

from __future__ import annotations

import fnmatch
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from translation.capabilities import CAPABILITY_CHOICES, PRESETS, Capabilities, capabilities_build


class BackendKind(models.TextChoices):
    OPENAI_CHAT = "openai_chat", "OpenAI Chat Completions (vLLM, SGLang, llama.cpp, Ollama, OpenAI, ...)"
    OPENAI_RESPONSES = "openai_responses", "OpenAI Responses API"
    ANTHROPIC = "anthropic", "Anthropic Messages (native)"


def base_url_validate(value: str) -> None:
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValidationError("Enter an http:// or https:// URL, e.g. http://127.0.0.1:8001/v1")


class Backend(models.Model):
    name = models.SlugField(max_length=100, unique=True, help_text="Short unique name used by routes and logs.")
    kind = models.CharField(max_length=32, choices=BackendKind.choices, default=BackendKind.OPENAI_CHAT,
                            help_text="The protocol this backend speaks.")
    # Not URLField: its validator rejects hostnames such as http://vllm:8000/v1 (no TLD).
    base_url = models.CharField(max_length=500, validators=[base_url_validate],
                                help_text="API base URL including /v1, e.g. http://127.0.0.1:8001/v1")
    api_key = models.CharField(max_length=500, blank=True,
                               help_text="Upstream API key, sent as Authorization: Bearer (x-api-key for kind "
                                         "anthropic). Write-only: never shown again.")
    preset = models.CharField(max_length=32, choices=[(p, p) for p in PRESETS], default="generic",
                              help_text="Starting point for every capability below; fields left empty use the preset.")
    connect_timeout = models.FloatField(default=10.0, help_text="Seconds to wait for a connection.")
    read_timeout = models.FloatField(default=600.0, help_text="Seconds to wait for the next bytes from the backend.")
    enabled = models.BooleanField(default=True)
    capture = models.CharField(max_length=10, blank=True, default="",
                               choices=[("", "global default (DRAGOMAN_INSPECTOR_CAPTURE)"),
                                        ("full", "full: bodies and event logs"),
                                        ("metadata", "metadata: no bodies or events"),
                                        ("off", "off: no exchange recorded")],
                               help_text="What the inspector records for requests routed to this backend.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def capability_overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(Capabilities):
            value = getattr(self, f"cap_{f.name}")
            if value is None:
                continue
            out[f.name] = value
        return out

    def capabilities(self) -> Capabilities:
        return capabilities_build(preset=self.preset, overrides=self.capability_overrides())


def _capability_field(name: str, default: Any) -> models.Field[Any, Any]:
    # No help_text here: the admin form writes it from translation.capabilities.FIELD_HELP, so
    # rewording help never needs a migration.
    if isinstance(default, bool):
        return models.BooleanField(null=True, blank=True, default=None)
    if isinstance(default, int):
        return models.PositiveIntegerField(null=True, blank=True, default=None)
    if isinstance(default, dict):
        return models.JSONField(null=True, blank=True, default=None)
    if isinstance(default, tuple):
        return models.CharField(max_length=200, null=True, blank=True, default=None)
    choices = CAPABILITY_CHOICES.get(name)
    return models.CharField(max_length=64, null=True, blank=True, default=None,
                            choices=[(c, c) for c in choices] if choices else None)


# One nullable column per capability, named cap_<field>: translation.Capabilities is the single
# source of truth for what a capability is.
CAPABILITY_FIELD_NAMES = [f"cap_{f.name}" for f in fields(Capabilities)]
for _f in fields(Capabilities):
    Backend.add_to_class(f"cap_{_f.name}", _capability_field(_f.name, getattr(Capabilities(), _f.name)))


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


class Route(models.Model):
    model = models.CharField(max_length=200, help_text="Model name clients send, or a glob such as claude-*haiku* "
                                                       "or * for a default route. First match by order wins.")
    backend = models.ForeignKey(Backend, on_delete=models.CASCADE, related_name="routes")
    upstream_model = models.CharField(max_length=200, blank=True,
                                      help_text="Model name sent to the backend. Empty: the name the client sent.")
    order = models.IntegerField(default=100, help_text="Lower runs first.")
    aliases = models.CharField(
        max_length=500, blank=True,
        help_text="Comma-separated model ids this route lists in /v1/models (a glob route lists nothing by "
                  "itself, and Claude Code's model picker shows only listed ids beginning with claude or "
                  "anthropic). Each must match the route's pattern.")
    capability_overrides = models.JSONField(default=dict, blank=True,
                                            help_text="Per-route capability overrides by field name, e.g. "
                                                      '{"prefill": "reject"}. They apply to the backend above; '
                                                      "each further target has its own.")
    weight = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)],
        help_text="The backend above is a target of priority group 0 with this weight (see the targets below).")
    max_attempts = models.PositiveIntegerField(
        default=3, validators=[MinValueValidator(1)],
        help_text="Targets one request may try before the client gets the last error (failover happens only "
                  "before the client has received a byte).")
    failover_seconds = models.FloatField(
        default=30.0, validators=[MinValueValidator(0.0)],
        help_text="Seconds since the request arrived during which failing targets are left for the next; a streamed target still silent at this point is left too.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.model} → {self.backend_id and self.backend.name}"

    @property
    def is_glob(self) -> bool:
        return _is_glob(self.model)

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model) if self.is_glob else model == self.model

    def alias_list(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.aliases.split(",") if a.strip())

    def aliases_unmatched(self) -> list[str]:
        """Aliases this route would not serve (a listed id must reach the route that lists it)."""
        return [a for a in self.alias_list() if _is_glob(a) or not self.matches(a)]


class RouteTarget(models.Model):
    """A further backend of a route: a replica beside the route's own backend (the same priority
    group, chosen by weight, in-flight requests and session affinity) or a fallback (a later
    group, tried when every target of the groups before it failed or is ejected)."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="targets")
    backend = models.ForeignKey(Backend, on_delete=models.CASCADE, related_name="route_targets")
    upstream_model = models.CharField(max_length=200, blank=True,
                                      help_text="Model name sent to this backend. Empty: the name the client sent.")
    priority = models.PositiveIntegerField(
        default=0, help_text="Priority group: 0 is the route's own backend's (replicas), 1 the first fallback, …")
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)],
                                         help_text="Share of the group's traffic, relative to the others'.")
    capability_overrides = models.JSONField(default=dict, blank=True,
                                            help_text="Capability overrides for this target only, by field name.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["priority", "id"]
        verbose_name = "further target"

    def __str__(self) -> str:
        return f"{self.backend_id and self.backend.name} (group {self.priority}, weight {self.weight})"


class BackendHealth(models.Model):
    """A backend's passive health as instances share it without Redis (``gateway.health``): when
    one instance ejects a failing backend, the others read it here and skip the backend too."""

    backend_name = models.CharField(max_length=100, unique=True)
    ejected_until = models.FloatField(default=0.0, help_text="Unix time the cool-down ends.")
    last_error = models.TextField(blank=True)
    failed_at = models.FloatField(default=0.0)
    instance = models.CharField(max_length=100, blank=True, help_text="The instance that ejected it.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "backend health"


class ApiKey(models.Model):
    name = models.CharField(max_length=100, unique=True, help_text="Who or what uses this key.")
    prefix = models.CharField(max_length=16, editable=False, db_index=True,
                              help_text="First characters of the key, for recognising it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    enabled = models.BooleanField(default=True)
    allowed_models = models.TextField(blank=True, help_text="One model name or glob per line (or comma-separated). "
                                                            "Empty: every routed model.")
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, default=None, validators=[MinValueValidator(1)],
        help_text="Requests per minute this key may send to /v1/messages and count_tokens, with bursts up "
                  "to that many at once; over it clients get 429 rate_limit_error with retry-after. "
                  "Empty: unlimited. Counted per gateway process.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def allowed_patterns(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.allowed_models.replace(",", "\n").splitlines() if p.strip())


class ConfigStamp(models.Model):
    """One row whose version changes whenever backends, routes or keys change anywhere."""

    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
