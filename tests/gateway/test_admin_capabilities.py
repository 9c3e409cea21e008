"""The Backend admin explains capabilities to operators and never accepts a bad one.

Every capability appears in its FIELD_GROUPS section with its help and the presets that set it;
values round-trip through the form (what the page renders, posted back unchanged, changes
nothing); bad values are form errors next to their field; the change page shows what the saved
backend actually uses and where each value comes from.
"""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser

import pytest
from django.test import Client

from gateway.models import CAPABILITY_FIELD_NAMES, Backend, Route
from gateway.presets_doc import PRESET_HELP
from translation.capabilities import FIELD_GROUPS, PRESETS

pytestmark = pytest.mark.django_db

ADD = "/admin/gateway/backend/add/"


def change_url(backend: Backend) -> str:
    return f"/admin/gateway/backend/{backend.pk}/change/"


def backend_post(**changes: str) -> dict[str, str]:
    """A complete add/change form with every capability left to the preset, plus ``changes``."""
    data = {"name": "gpu", "kind": "openai_chat", "base_url": "http://gpu:8000/v1", "api_key": "",
            "preset": "vllm", "connect_timeout": "10", "read_timeout": "600", "enabled": "on",
            "cap_prefill_trim_whitespace": "unknown", "cap_top_k": "unknown", "cap_sampling_exclusive": "unknown",
            "cap_stream_usage": "unknown", "cap_parallel_tool_calls": "unknown",
            "cap_strip_billing_header": "unknown", "cap_cache_control_extensions": "unknown"}
    data.update(changes)
    return data


class FormValues(HTMLParser):
    """What a browser would submit for the page's main form, unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and name and name != "csrfmiddlewaretoken":
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.values[name] = a.get("value") or "on"
            elif a.get("type") not in ("submit", "button"):
                self.values[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            # Browsers drop the newline right after <textarea>.
            self.values[self._textarea] = self.values[self._textarea].removeprefix("\n")
            self._textarea = None


def form_values(page: str) -> dict[str, str]:
    parser = FormValues()
    parser.feed(page)
    return parser.values


def fieldset_html(page: str, heading: str) -> str:
    for chunk in page.split("<fieldset")[1:]:
        if f">{heading}</h2>" in chunk:
            return chunk.split("</fieldset>")[0]
    raise AssertionError(f"no fieldset {heading!r}")


def form_errors(page: str) -> str:
    return " ".join(unescape(m) for m in re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S))


# -- the form explains ---------------------------------------------------------------------------


def test_every_capability_field_is_rendered_in_its_group(staff: Client) -> None:
    page = staff.get(ADD).content.decode()
    main = page.split("<fieldset")[1]
    for name in ("name", "kind", "base_url", "api_key", "preset", "connect_timeout", "enabled"):
        assert f'name="{name}"' in main
    rendered = 0
    for title, names in FIELD_GROUPS:
        section = fieldset_html(page, f"Capabilities: {title}")
        for name in names:
            assert f'name="cap_{name}"' in section, (title, name)
            rendered += 1
        others = set(CAPABILITY_FIELD_NAMES) - {f"cap_{n}" for n in names}
        assert not [o for o in others if f'name="{o}"' in section]
    assert rendered == len(CAPABILITY_FIELD_NAMES)


def test_capability_help_names_the_presets_that_set_it(staff: Client) -> None:
    page = unescape(staff.get(ADD).content.decode())
    assert "Presets that set it: vllm = continue_final_message; sglang = continue_final_message" in page
    assert "kimi = partial" in page  # prefix_flag_name
    assert "openai = max_completion_tokens" in page
    assert 'Type "-" for an empty value.' in page


def test_every_preset_is_explained_in_the_preset_help(staff: Client) -> None:
    assert set(PRESET_HELP) == set(PRESETS), "document every preset in gateway/presets_doc.py"
    help_html = unescape(staff.get(ADD).content.decode().split('id="id_preset_helptext"')[1].split("</details>")[0])
    for name, why in PRESET_HELP.items():
        assert f"<b>{name}</b> — {why}" in help_html


def test_groups_with_overrides_are_open_and_the_others_collapsed(staff: Client) -> None:
    backend = Backend.objects.create(name="b", base_url="http://x/v1", cap_max_tokens_cap=8192)
    page = staff.get(change_url(backend)).content.decode()
    assert "<details>" not in fieldset_html(page, "Capabilities: Output and sampling")
    assert "Overridden here: max_tokens_cap" in fieldset_html(page, "Capabilities: Output and sampling")
    assert "<details>" in fieldset_html(page, "Capabilities: Prefill")


# -- values round-trip ---------------------------------------------------------------------------


def test_json_and_integer_capabilities_are_saved_and_reach_capabilities(staff: Client) -> None:
    extra_body = {"chat_template_kwargs": {"enable_thinking": False}, "top_p": 0.9}
    response = staff.post(ADD, backend_post(cap_extra_body=json.dumps(extra_body),
                                            cap_extra_headers='{"x-team": "ml"}', cap_max_tokens_cap="4096",
                                            cap_top_k="false", cap_drop_fields="seed, user"))
    assert response.status_code == 302, form_errors(response.content.decode())
    caps = Backend.objects.get(name="gpu").capabilities()
    assert caps.extra_body == extra_body
    assert caps.extra_headers == {"x-team": "ml"}
    assert caps.max_tokens_cap == 4096
    assert caps.top_k is False
    assert caps.drop_fields == ("seed", "user")
    assert caps.prefill == "continue_final_message"  # still the preset's


def test_what_the_change_page_renders_posts_back_unchanged(staff: Client) -> None:
    backend = Backend.objects.create(
        name="gpu", base_url="http://gpu:8000/v1", preset="vllm", api_key="sk-keep",
        cap_extra_body={"chat_template_kwargs": {"enable_thinking": False}}, cap_max_tokens_cap=4096,
        cap_reasoning_field_out="", cap_betas="", cap_stream_usage=False, cap_images="placeholder",
    )
    before = (backend.capability_overrides(), backend.capabilities())
    values = form_values(staff.get(change_url(backend)).content.decode())
    assert values["cap_reasoning_field_out"] == "-" and values["cap_betas"] == "-"
    response = staff.post(change_url(backend), {**values, "_save": "Save"})
    assert response.status_code == 302, form_errors(response.content.decode())
    backend.refresh_from_db()
    assert (backend.capability_overrides(), backend.capabilities()) == before
    assert backend.api_key == "sk-keep"


def test_a_dash_sets_an_empty_value_instead_of_the_presets(staff: Client) -> None:
    response = staff.post(ADD, backend_post(cap_reasoning_field_out="-", cap_betas="-"))
    assert response.status_code == 302, form_errors(response.content.decode())
    caps = Backend.objects.get(name="gpu").capabilities()
    assert caps.reasoning_field_out == ""  # vllm's preset says "reasoning"
    assert caps.betas == ()


# -- bad values are form errors ------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "message"), [
    ("cap_extra_body", "{not json", "Enter a valid JSON."),
    ("cap_extra_body", '{"continue_final_message": true}', "may not set continue_final_message"),
    ("cap_extra_body", "[1, 2]", "a list is not a JSON object"),
    ("cap_extra_headers", '{"x-retries": 3}', "values must be strings"),
    ("cap_prefill", "sideways", "Select a valid choice."),
    ("cap_max_tokens_cap", "-5", "greater than or equal to 0"),
    ("preset", "vllm-ish", "Select a valid choice."),
])
def test_an_invalid_capability_is_a_form_error_not_a_500(
    staff: Client, field: str, value: str, message: str,
) -> None:
    response = staff.post(ADD, backend_post(**{field: value}))
    assert response.status_code == 200
    assert message in form_errors(response.content.decode())
    assert not Backend.objects.exists()


def test_the_error_sits_next_to_the_bad_field(staff: Client) -> None:
    page = staff.post(ADD, backend_post(cap_extra_body='{"add_generation_prompt": true}')).content.decode()
    row = page.split('class="form-row errors field-cap_extra_body"')[1].split('class="form-row')[0]
    assert "may not set add_generation_prompt" in unescape(row)


# -- the effective capabilities panel ------------------------------------------------------------


def panel_rows(page: str) -> dict[str, tuple[str, str]]:
    table = page.split('<table class="effective-capabilities">')[1].split("</table>")[0]
    rows = re.findall(r"<tr class=\"cap-\w+\"><td><code>(\w+)</code></td><td>(.*?)</td><td>(.*?)</td></tr>", table)
    return {name: (unescape(value), source) for name, value, source in rows}


def test_the_panel_shows_each_effective_value_and_whether_preset_or_override(staff: Client) -> None:
    backend = Backend.objects.create(name="gpu", base_url="http://gpu:8000/v1", preset="vllm",
                                     cap_max_tokens_cap=4096, cap_extra_body={"top_p": 0.9})
    rows = panel_rows(staff.get(change_url(backend)).content.decode())
    assert len(rows) == len(CAPABILITY_FIELD_NAMES)
    assert rows["prefill"] == ("continue_final_message", "preset vllm")
    assert rows["max_tokens_cap"] == ("4096", "override")
    assert rows["extra_body"] == ("top_p=0.9", "override")
    assert rows["top_k"] == ("yes", "default")


def test_the_panel_reports_stored_capabilities_that_no_longer_validate(staff: Client) -> None:
    # e.g. a row written by an older version or by hand: the page must still open.
    backend = Backend.objects.create(name="gpu", base_url="http://gpu:8000/v1", cap_prefill="sideways")
    response = staff.get(change_url(backend))
    assert response.status_code == 200
    assert "Invalid capabilities" in unescape(response.content.decode())


def test_the_add_page_has_no_panel(staff: Client) -> None:
    assert '<table class="effective-capabilities">' not in staff.get(ADD).content.decode()


# -- routes --------------------------------------------------------------------------------------


def targets_post(*targets: dict[str, str], initial: int = 0) -> dict[str, str]:
    """The route page's inline of further targets: its management form and one row per target
    (``initial`` of them rows that exist, which carry their ``id``)."""
    data = {"targets-TOTAL_FORMS": str(len(targets)), "targets-INITIAL_FORMS": str(initial),
            "targets-MIN_NUM_FORMS": "0", "targets-MAX_NUM_FORMS": "1000"}
    for i, target in enumerate(targets):
        data.update({f"targets-{i}-{name}": value for name, value in target.items()})
    return data


def route_post(backend: Backend, overrides: str, *targets: dict[str, str]) -> dict[str, str]:
    """A route add form as posted before routes had several targets (no weight, max_attempts or
    failover_seconds: they keep their defaults), with the inline's management form."""
    return {"model": "claude-*", "backend": str(backend.pk), "upstream_model": "", "order": "100",
            "capability_overrides": overrides, "enabled": "on", **targets_post(*targets)}


@pytest.mark.parametrize(("overrides", "message"), [
    ('{"prefill": "sideways"}', '"sideways" is not one of'),
    ('{"no_such_capability": 1}', "no_such_capability: unknown field"),
    ('{"extra_body": {"continue_final_message": true}}', "may not set continue_final_message"),
    ('["prefill"]', "Enter a JSON object"),
])
def test_a_bad_route_override_is_a_form_error(staff: Client, overrides: str, message: str) -> None:
    backend = Backend.objects.create(name="gpu", base_url="http://gpu:8000/v1", preset="vllm")
    response = staff.post("/admin/gateway/route/add/", route_post(backend, overrides))
    assert response.status_code == 200
    assert message in form_errors(response.content.decode())
    assert not Route.objects.exists()


def test_a_good_route_override_is_saved(staff: Client) -> None:
    backend = Backend.objects.create(name="gpu", base_url="http://gpu:8000/v1", preset="vllm")
    response = staff.post("/admin/gateway/route/add/", route_post(backend, '{"prefill": "reject", "max_tokens_cap": 2048}'))
    assert response.status_code == 302, form_errors(response.content.decode())
    assert Route.objects.get().capability_overrides == {"prefill": "reject", "max_tokens_cap": 2048}
