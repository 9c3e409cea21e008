from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from gateway.models import CAPABILITY_FIELD_NAMES, ApiKey, Backend, Route
from gateway.services import apikey_generate, apikey_set_secret
from translation.capabilities import PRESETS


def _preset_help() -> str:
    rows = []
    for name, values in PRESETS.items():
        shown = ", ".join(f"{k}={v}" for k, v in values.items()) or "defaults"
        rows.append(f"{name}: {shown}")
    return "Presets — " + " · ".join(rows)


class BackendForm(forms.ModelForm):
    # Write-only: the stored key is never rendered back; leave empty to keep it.
    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              help_text="Upstream API key. Leave empty to keep the current one; "
                                        "tick 'clear API key' to remove it.")
    clear_api_key = forms.BooleanField(required=False, label="Clear API key")

    class Meta:
        model = Backend
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        overrides = {f.removeprefix("cap_"): data[f] for f in CAPABILITY_FIELD_NAMES if data.get(f) is not None}
        try:
            Backend(preset=data.get("preset", "generic"), **{f"cap_{k}": v for k, v in overrides.items()}) \
                .capabilities()
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
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


@admin.register(Backend)
class BackendAdmin(admin.ModelAdmin):
    form = BackendForm
    list_display = ("name", "kind", "base_url", "preset", "enabled", "has_api_key", "updated_at")
    list_filter = ("kind", "preset", "enabled")
    search_fields = ("name", "base_url")
    fieldsets = [
        (None, {"fields": ("name", "kind", "base_url", "api_key", "clear_api_key", "enabled")}),
        ("Capabilities", {"fields": ("preset", *CAPABILITY_FIELD_NAMES), "description": _preset_help()}),
        ("Timeouts", {"fields": ("connect_timeout", "read_timeout")}),
    ]

    @admin.display(boolean=True, description="API key")
    def has_api_key(self, obj: Backend) -> bool:
        return bool(obj.api_key)


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ("model", "backend", "upstream_model", "order", "enabled")
    list_filter = ("backend", "enabled")
    list_editable = ("order", "enabled")
    search_fields = ("model", "upstream_model")
    list_select_related = ("backend",)


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("name", "enabled", "allowed_models")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "enabled", "allowed_models", "last_used_at", "created_at")
    list_filter = ("enabled",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "last_used_at", "created_at")
    actions = ["rotate"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if not change:
            secret = apikey_generate()
            apikey_set_secret(key=obj, secret=secret)
            messages.warning(request, f"New API key for {obj.name} (shown once, copy it now): {secret}")
        super().save_model(request, obj, form, change)

    @admin.action(description="Rotate: replace the secret of the selected keys")
    def rotate(self, request: HttpRequest, queryset: Any) -> None:
        for key in queryset:
            secret = apikey_generate()
            apikey_set_secret(key=key, secret=secret)
            key.save()
            messages.warning(request, f"New secret for {key.name} (shown once): {secret}")
