from __future__ import annotations

import asyncio
import time
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from gateway.health import Ejection, health, health_store_default
from gateway.models import CAPABILITY_FIELD_NAMES, ApiKey, Backend, Route, RouteTarget
from gateway.presets_doc import PRESET_HELP, capability_help, preset_changes, value_show
from gateway.probe import ProbeResult, backend_probe
from gateway.services import apikey_generate, apikey_set_secret
from translation.capabilities import (
    CAPABILITY_CHOICES,
    FIELD_GROUPS,
    PRESETS,
    Capabilities,
    CapabilityError,
    capabilities_build,
)

_DEFAULTS = Capabilities()
# Free-text capabilities whose empty value means something ("" = never send reasoning, () = no
# betas): an empty input already means "use the preset", so "-" stands for the empty value.
EMPTY_TOKEN = "-"
_EMPTY_TOKEN_FIELDS = tuple(
    f"cap_{f.name}" for f in fields(Capabilities)
    if isinstance(getattr(_DEFAULTS, f.name), tuple | str) and f.name not in CAPABILITY_CHOICES
)
PROBE_TIMEOUT_S = 5.0
PROBE_MODELS_SHOWN = 8


def preset_help_html() -> SafeString:
    rows = format_html_join(
        "", "<li><b>{}</b> — {} <i>Sets: {}.</i></li>",
        ((name, PRESET_HELP.get(name, ""), preset_changes(name)) for name in PRESETS),
    )
    return format_html(
        "Starting point for every capability below; a capability left empty uses the preset's value. "
        "The <b>Probe backend</b> action suggests one."
        "<details><summary>What each preset is for</summary><ul>{}</ul></details>", rows)


class BackendForm(forms.ModelForm):
    # Write-only: the stored key is never rendered back; leave empty to keep it.
    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              help_text="Upstream API key. Leave empty to keep the current one; "
                                        "tick 'clear API key' to remove it.")
    clear_api_key = forms.BooleanField(required=False, label="Clear API key")

    class Meta:
        model = Backend
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["preset"].help_text = preset_help_html()
        for name in CAPABILITY_FIELD_NAMES:
            field = self.fields[name]
            capability = name.removeprefix("cap_")
            field.label = capability
            help_text = capability_help(capability)
            if name in _EMPTY_TOKEN_FIELDS:
                help_text += f' Type "{EMPTY_TOKEN}" for an empty value.'
                if self.instance.pk and getattr(self.instance, name) == "":
                    self.initial[name] = EMPTY_TOKEN
            field.help_text = conditional_escape(help_text)
            if isinstance(field.widget, forms.NullBooleanSelect):
                field.widget.choices = [("unknown", "Preset's value"), ("true", "Yes"), ("false", "No")]
            elif capability in CAPABILITY_CHOICES and isinstance(field, forms.TypedChoiceField):
                field.choices = [("", "Preset's value"), *((c, c) for c in CAPABILITY_CHOICES[capability])]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in _EMPTY_TOKEN_FIELDS:
            if data.get(name) == EMPTY_TOKEN:
                data[name] = ""
        preset = data.get("preset") or "generic"
        overrides: dict[str, Any] = {}
        # The values that passed their form field, checked together...
        for name in CAPABILITY_FIELD_NAMES:
            value = data.get(name)
            if value is None or name in self.errors:
                continue
            capability = name.removeprefix("cap_")
            overrides[capability] = value
        # ...each bad value next to its input (the label names the field), every one at once.
        try:
            capabilities_build(preset=preset, overrides=overrides)
        except CapabilityError as exc:
            for problem in exc.problems:
                name = f"cap_{problem.field}"
                if name in self.fields:
                    self.add_error(name, problem.message)
                else:
                    self.add_error(None, str(problem))
        return data

    def save(self, commit: bool = True) -> Backend:
        backend: Backend = super().save(commit=False)
        new_key = self.cleaned_data.get("api_key")
        if self.cleaned_data.get("clear_api_key"):
            backend.api_key = ""
        elif not new_key and backend.pk:
            backend.api_key = Backend.objects.only("api_key").get(pk=backend.pk).api_key
        if commit:
            backend.save()
        return backend


def effective_rows(backend: Backend) -> list[tuple[str, str, str]]:
    """(capability, effective value, where it comes from) for every capability of a backend."""
    caps = backend.capabilities().as_dict()
    preset = PRESETS.get(backend.preset, {})
    rows = []
    for name, value in caps.items():
        if getattr(backend, f"cap_{name}") is not None:
            source = "override"
        elif name in preset:
            source = f"preset {backend.preset}"
        else:
            source = "default"
        rows.append((name, value_show(value), source))
    return rows


async def backends_probe(backends: list[Backend]) -> list[ProbeResult]:
    return list(await asyncio.gather(*(
        backend_probe(base_url=b.base_url, kind=b.kind, api_key=b.api_key, timeout=PROBE_TIMEOUT_S)
        for b in backends
    )))


def probe_report(request: HttpRequest, backend: Backend, result: ProbeResult) -> None:
    """Admin messages for one probe. Built from the result only, which never holds the key."""
    if not result.reachable:
        messages.error(request, f"Backend {backend.name}: unreachable — {result.error}")
        return
    parts = [f"Backend {backend.name}: reachable, HTTP {result.status} in {result.latency_ms:g} ms"]
    if result.server:
        parts.append(f"server {result.server}")
    if result.models:
        shown = ", ".join(result.models[:PROBE_MODELS_SHOWN])
        more = len(result.models) - PROBE_MODELS_SHOWN
        parts.append(f"{len(result.models)} models: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    if result.suggested_preset == backend.preset:
        parts.append(f"preset {backend.preset} fits")
    elif result.suggested_preset:
        parts.append(f"suggested preset {result.suggested_preset} (current: {backend.preset})")
    else:
        parts.append("no preset suggested")
    if result.error:
        parts.append(result.error)
    level = messages.WARNING if result.error else messages.SUCCESS
    messages.add_message(request, level, " · ".join(parts))
    if result.suggested_capabilities:
        try:
            current: Capabilities | None = backend.capabilities()
        except CapabilityError:
            current = None
        items = []
        for suggestion in result.suggested_capabilities:
            now = "" if current is None else value_show(getattr(current, suggestion.name))
            state = " (already set)" if now == value_show(suggestion.value) else f" (now {now})" if now else ""
            items.append(f"{suggestion.name} = {value_show(suggestion.value)}{state}, because {suggestion.reason}")
        on_top = f" on top of preset {result.suggested_preset}" if result.suggested_preset else ""
        messages.info(request, f"Suggested capabilities for {backend.name}{on_top}: " + "; ".join(items))
    for warning in result.warnings:
        messages.warning(request, f"Backend {backend.name}: {warning}")
    messages.info(request, f"Evidence for {backend.name}: " + "; ".join(result.evidence))


HealthView = tuple[dict[str, dict[str, Any]], dict[str, Ejection] | None]


def backend_health_read() -> HealthView:
    """This process's health report and the ejections instances share (None when the shared
    store cannot be read: the page still shows this process's view)."""
    try:
        ejections = health_store_default().read()
    except Exception:  # Redis or the database down: the admin page must still render
        return health.report(), None
    shared: dict[str, Ejection] = {}
    for ejection in sorted(ejections, key=lambda e: e.until):
        shared[ejection.backend] = ejection  # the latest ejection of each backend wins
    return health.report(), shared


def _clock_time(unix: float) -> str:
    return timezone.localtime(datetime.fromtimestamp(unix, tz=UTC)).strftime("%H:%M:%S")


def backend_health_text(name: str, view: HealthView, *, now: float | None = None) -> str:
    """One line on a backend's passive health: ejected (until when, by which instance, why),
    probing, failing (with its recent failures) or healthy, plus this process's in-flight count."""
    report, shared = view
    now = time.time() if now is None else now
    local = report.get(name, {})
    ejection = shared.get(name) if shared else None
    until, by, error = local.get("ejected_until") or 0.0, local.get("ejected_by") or "", local.get("last_error") or ""
    if ejection is not None and ejection.until > until:
        until, by, error = ejection.until, ejection.instance, ejection.error
    if until > now:
        text = f"ejected until {_clock_time(until)}" + (f" (by {by})" if by else "") + (f": {error}" if error else "")
    elif local.get("state") == "probing":
        text = "probing: cool-down over, one request let through" + (f" (last error: {error})" if error else "")
    elif local.get("state") == "failing":
        text = f"failing ({local['recent_failures']} recent)" + (f": {error}" if error else "")
    else:
        text = "healthy"
    if local.get("inflight"):
        text += f" · {local['inflight']} in flight here"
    if shared is None:
        text += " (other instances' ejections unavailable)"
    return text


@admin.register(Backend)
class BackendAdmin(admin.ModelAdmin):
    form = BackendForm
    change_form_template = "admin/gateway/backend/change_form.html"
    list_display = ("name", "kind", "base_url", "preset", "overrides", "enabled", "has_api_key", "updated_at")
    list_filter = ("kind", "preset", "enabled")
    search_fields = ("name", "base_url")
    readonly_fields = ("effective_capabilities", "health_state")
    actions = ["probe"]

    def get_list_display(self, request: HttpRequest) -> Any:
        """The columns with ``health`` after ``enabled``: read once per page (one query or Redis
        call for the shared ejections), not once per row."""
        view = backend_health_read()

        @admin.display(description="Health")
        def health_column(obj: Backend) -> str:
            return backend_health_text(obj.name, view)

        columns = list(super().get_list_display(request))
        columns.insert(columns.index("enabled") + 1, health_column)
        return columns

    @admin.display(description="Health")
    def health_state(self, obj: Backend | None) -> str:
        if obj is None or obj.pk is None:
            return "—"
        return backend_health_text(obj.name, backend_health_read())

    def get_fieldsets(self, request: HttpRequest, obj: Backend | None = None) -> Any:
        main = ("name", "kind", "base_url", "api_key", "clear_api_key", "preset",
                ("connect_timeout", "read_timeout"), "capture", "enabled")
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [(None, {"fields": main})]
        if obj is not None:
            fieldsets.append(("Health", {
                "fields": ("health_state",),
                "description": "Passive health as this process sees it (failures of requests it sent) and "
                               "ejections shared by every instance.",
            }))
            fieldsets.append(("Effective capabilities", {
                "fields": ("effective_capabilities",),
                "description": "What translators use for this backend as saved: preset, then "
                               "overrides (routes may override further).",
            }))
        for title, names in FIELD_GROUPS:
            columns = tuple(f"cap_{n}" for n in names)
            overridden = [n for n in names if obj is not None and getattr(obj, f"cap_{n}") is not None]
            options: dict[str, Any] = {"fields": columns}
            if overridden:
                options["description"] = "Overridden here: " + ", ".join(overridden)
            else:
                options["classes"] = ("collapse",)
            fieldsets.append((f"Capabilities: {title}", options))
        return fieldsets

    @admin.display(boolean=True, description="API key")
    def has_api_key(self, obj: Backend) -> bool:
        return bool(obj.api_key)

    @admin.display(description="Overrides")
    def overrides(self, obj: Backend) -> str:
        return ", ".join(obj.capability_overrides()) or "—"

    @admin.display(description="Effective capabilities")
    def effective_capabilities(self, obj: Backend | None) -> SafeString:
        if obj is None or obj.pk is None:
            return mark_safe("Save the backend to see its effective capabilities.")
        try:
            rows = effective_rows(obj)
        except CapabilityError as exc:
            return format_html('<p class="errornote">Invalid capabilities: {}</p>', str(exc))
        body = format_html_join(
            "", '<tr class="cap-{}"><td><code>{}</code></td><td>{}</td><td>{}</td></tr>',
            ((source.split()[0], name, value, source) for name, value, source in rows),
        )
        return format_html(
            '<table class="effective-capabilities"><thead><tr><th>Capability</th><th>Value</th>'
            "<th>From</th></tr></thead><tbody>{}</tbody></table>", body)

    @admin.action(description="Probe: ask the selected backends what they serve and suggest a preset")
    def probe(self, request: HttpRequest, queryset: Any) -> None:
        backends = list(queryset)
        for backend, result in zip(backends, async_to_sync(backends_probe)(backends), strict=True):
            probe_report(request, backend, result)

    def get_urls(self) -> list[URLPattern]:
        probe = path("<path:object_id>/probe/", self.admin_site.admin_view(self.probe_view),
                     name="gateway_backend_probe")
        return [probe, *super().get_urls()]

    def probe_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        backend = self.get_object(request, object_id)
        if backend is None:
            raise Http404("No such backend")
        if not self.has_change_permission(request, backend):
            raise PermissionDenied
        self.probe(request, Backend.objects.filter(pk=backend.pk))
        return HttpResponseRedirect(reverse("admin:gateway_backend_change", args=[backend.pk]))


def overrides_check(form: forms.ModelForm, data: dict[str, Any]) -> None:
    """A route's or a target's ``capability_overrides`` on top of its backend's capabilities:
    every problem at once, each one item of the field's error list (one JSON field holds them all)."""
    overrides = data.get("capability_overrides")
    backend = data.get("backend")
    if overrides is None or backend is None or "capability_overrides" in form.errors:
        return
    if not isinstance(overrides, dict):
        form.add_error("capability_overrides", "Enter a JSON object, e.g. {\"prefill\": \"reject\"}.")
        return
    try:
        base = backend.capabilities()
    except CapabilityError as exc:
        form.add_error("backend", f"This backend's own capabilities are invalid: {exc}")
        return
    try:
        capabilities_build(base=base, overrides=overrides)
    except CapabilityError as exc:
        form.add_error("capability_overrides", [str(p) for p in exc.problems])


def defaults_optional(form: forms.ModelForm, names: tuple[str, ...]) -> None:
    """Numbers with a model default are optional in the form (``defaults_fill`` supplies them),
    so posts made before the fields existed, such as scripts', still save."""
    for name in names:
        if name in form.fields:
            form.fields[name].required = False


def defaults_fill(form: forms.ModelForm, data: dict[str, Any], names: tuple[str, ...]) -> None:
    """A number left out or empty keeps the row's value: the model default for a new row."""
    for name in names:
        if name in form.fields and data.get(name) is None and name not in form.errors:
            data[name] = getattr(form.instance, name)


_ROUTE_NUMBERS = ("weight", "max_attempts", "failover_seconds")
_TARGET_NUMBERS = ("priority", "weight")


class RouteForm(forms.ModelForm):
    class Meta:
        model = Route
        fields = "__all__"
        labels = {"backend": "Backend (first target)", "upstream_model": "Upstream model",
                  "weight": "Weight"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "capability_overrides" in self.fields:
            names = ", ".join(f.name for f in fields(Capabilities))
            self.fields["capability_overrides"].help_text = conditional_escape(
                'JSON object of capability overrides for this route\'s own backend on top of the backend\'s, '
                f'e.g. {{"prefill": "reject"}}; each further target has its own. Capabilities: {names}.')
        if "backend" in self.fields:
            self.fields["backend"].help_text = ("The route's first target: priority group 0 with the weight "
                                                "below. Replicas and fallbacks are the further targets.")
        defaults_optional(self, _ROUTE_NUMBERS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        defaults_fill(self, data, _ROUTE_NUMBERS)
        if data.get("model") and data.get("aliases"):
            probe = Route(model=data["model"], aliases=data["aliases"])
            if probe.aliases_unmatched():
                self.add_error("aliases", f"Not matched by the model pattern {data['model']!r}: "
                                          f"{', '.join(probe.aliases_unmatched())}.")
        overrides_check(self, data)
        return data


class RouteTargetForm(forms.ModelForm):
    class Meta:
        model = RouteTarget
        fields = ("backend", "upstream_model", "priority", "weight", "capability_overrides", "enabled")
        widgets = {"capability_overrides": forms.Textarea(attrs={"rows": 2, "cols": 30})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        defaults_optional(self, _TARGET_NUMBERS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        defaults_fill(self, data, _TARGET_NUMBERS)
        overrides_check(self, data)
        return data


class RouteTargetInline(admin.TabularInline):
    model = RouteTarget
    form = RouteTargetForm
    fk_name = "route"
    extra = 0
    verbose_name = "further target"
    verbose_name_plural = ("Further targets: replicas (priority 0, beside the backend above) and fallbacks "
                           "(priority 1, 2, …: tried when every target before them failed or is ejected)")


def _weight_shown(weight: int) -> str:
    return f" (weight {weight})" if weight != 1 else ""


def route_targets_text(route: Route) -> str:
    """A route's targets in one line, by priority group: ``vllm-a, vllm-b (weight 2) · fallback:
    cloud`` (a weight shown when it is not 1; ``(off)``: a disabled target)."""
    groups: dict[int, list[str]] = {0: [route.backend.name + _weight_shown(route.weight)]}
    for t in sorted(route.targets.all(), key=lambda t: (t.priority, t.pk)):
        name = t.backend.name + _weight_shown(t.weight) + ("" if t.enabled else " (off)")
        groups.setdefault(t.priority, []).append(name)
    later = sorted(groups)[1:]
    parts = [", ".join(groups[0])]
    for n, group in enumerate(later, start=1):
        label = "fallback" if len(later) == 1 else f"fallback {n}"
        parts.append(f"{label}: {', '.join(groups[group])}")
    return " · ".join(parts)


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    form = RouteForm
    inlines = [RouteTargetInline]
    list_display = ("model", "targets", "upstream_model", "order", "enabled")
    list_filter = ("backend", "enabled")
    list_editable = ("order", "enabled")
    search_fields = ("model", "upstream_model")
    list_select_related = ("backend",)
    fieldsets = [
        (None, {"fields": ("model", "order", "aliases", "enabled")}),
        ("First target", {"fields": ("backend", "upstream_model", "weight", "capability_overrides")}),
        ("Failover", {
            "fields": ("max_attempts", "failover_seconds"),
            "description": "A request tries the route's targets in order (session affinity, then the fewest "
                           "requests in flight, fallbacks last) until one answers; only before the client "
                           "has received a byte.",
        }),
    ]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("targets__backend")

    @admin.display(description="Targets")
    def targets(self, obj: Route) -> str:
        return route_targets_text(obj)


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("name", "enabled", "allowed_models", "rate_limit_per_minute")


# Secrets made while handling this request, shown on the page that answers it and nowhere else:
# not in a message (the cookie or session that carries messages would store the plaintext).
_NEW_SECRETS = "dragoman_new_secrets"


def _secret_shown(request: HttpRequest, key: ApiKey, secret: str) -> None:
    if not hasattr(request, _NEW_SECRETS):
        setattr(request, _NEW_SECRETS, [])
    getattr(request, _NEW_SECRETS).append((key, secret))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "enabled", "allowed_models", "rate_limit_per_minute", "last_used_at",
                    "created_at")
    list_filter = ("enabled",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "last_used_at", "created_at")
    actions = ["rotate"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if not change:
            secret = apikey_generate()
            apikey_set_secret(key=obj, secret=secret)
            _secret_shown(request, obj, secret)
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        if not getattr(request, _NEW_SECRETS, None):
            return super().response_add(request, obj, post_url_continue)
        return self._secrets_page(request, "API key created")

    @admin.action(description="Rotate: replace the secret of the selected keys")
    def rotate(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        for key in queryset:
            secret = apikey_generate()
            apikey_set_secret(key=key, secret=secret)
            key.save()
            _secret_shown(request, key, secret)
        return self._secrets_page(request, "API keys rotated")

    def _secrets_page(self, request: HttpRequest, title: str) -> HttpResponse:
        """The new secrets, this once: the gateway keeps only their hashes. Never cached."""
        rows = [(key, secret, reverse("admin:gateway_apikey_change", args=[key.pk]))
                for key, secret in getattr(request, _NEW_SECRETS)]
        context = {**self.admin_site.each_context(request), "title": title, "rows": rows,
                   "opts": self.opts, "list_url": reverse("admin:gateway_apikey_changelist")}
        response = TemplateResponse(request, "admin/gateway/apikey/secrets.html", context)
        add_never_cache_headers(response)
        return response
