"""A bad config file or admin form names every problem at once, each by its entry and field.

An operator fixing ``dragoman.yaml`` gets one message with every bad value (not the first, then
the next on the following run), each entry called by its ``name`` (a route by its ``model``)
rather than its position; the admin shows every bad capability of one form together.
"""

from __future__ import annotations

from html import unescape
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from gateway.config import ConfigError, config_parse
from gateway.models import Backend, Route
from tests.gateway.test_admin_capabilities import backend_post, form_errors, route_post

pytestmark = pytest.mark.django_db

THREE_BAD_VALUES_AND_A_BAD_ROUTE = """
backends:
  - name: vllm-big
    base_url: http://gpu:8000/v1
    preset: vllm
    capabilities:
      prefill: sometimes
      max_tokens_cap: lots
      colour: teal
routes:
  - model: qwen3-coder
    backend: vllm-big
    capabilities: {images: maybe}
"""


def applyconfig_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    """What ``python manage.py applyconfig dragoman.yaml`` prints for ``text``."""
    monkeypatch.chdir(tmp_path)
    Path("dragoman.yaml").write_text(text)
    with pytest.raises(CommandError) as excinfo:
        call_command("applyconfig", "dragoman.yaml")
    return f"CommandError: {excinfo.value}"


def test_every_bad_value_of_a_file_is_in_one_error_naming_its_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = applyconfig_error(tmp_path, monkeypatch, THREE_BAD_VALUES_AND_A_BAD_ROUTE).splitlines()
    assert lines[0] == "CommandError: dragoman.yaml: 4 problems"
    backend, route = lines[1].strip(), lines[2].strip()
    assert backend.startswith("backend vllm-big: ")
    assert 'capabilities.prefill: "sometimes" is not one of native, continue_final_message' in backend
    assert 'capabilities.max_tokens_cap: "lots" is not a whole number' in backend
    assert "capabilities.colour: unknown field" in backend
    assert route.startswith('route qwen3-coder: capabilities.images: "maybe" is not one of pass, placeholder')
    assert lines[3] == "Nothing was changed."
    assert not Backend.objects.exists() and not Route.objects.exists()


def test_the_readme_shows_the_message_as_applyconfig_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = readme.split("$ python manage.py applyconfig dragoman.yaml\n")[1].split("```")[0]
    assert shown == applyconfig_error(tmp_path, monkeypatch, THREE_BAD_VALUES_AND_A_BAD_ROUTE) + "\n"


def test_an_entry_without_a_name_is_called_by_its_index() -> None:
    with pytest.raises(ConfigError) as excinfo:
        config_parse("backends:\n  - name: ok\n    base_url: http://a/v1\n  - base_url: ftp://b\n")
    assert str(excinfo.value) == (
        "config: 2 problems\n"
        "  backends[1]: name is required (letters, digits, - and _); base_url must be an http(s) URL")


def test_problems_of_every_section_are_listed_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    text = ("backends: [{name: b, base_url: 'http://b/v1', timeout: 3}]\n"
            "routes: [{model: m, backend: ghost, aliases: [other]}]\n"
            "keys: [{name: team, key: '${NOT_SET_ANYWHERE}'}]\n")
    with pytest.raises(ConfigError) as excinfo:
        config_parse(text)
    assert str(excinfo.value).splitlines()[1:] == [
        "  backend b: timeout: unknown field",
        "  route m: backend 'ghost' is not defined; aliases other do not match its model pattern",
        "  key team: key: environment variable NOT_SET_ANYWHERE is not set; "
        "key is required and must be at least 16 characters",
    ]


def test_two_routes_of_one_model_are_told_apart_by_their_backend() -> None:
    text = ("backends: [{name: a, base_url: 'http://a/v1'}, {name: b, base_url: 'http://b/v1'}]\n"
            "routes: [{model: m, backend: a, order: x}, {model: m, backend: b, order: y}]\n")
    with pytest.raises(ConfigError) as excinfo:
        config_parse(text)
    assert str(excinfo.value).splitlines()[1:] == [
        "  route m → a: order must be an integer", "  route m → b: order must be an integer"]


def test_a_route_form_with_two_bad_capabilities_shows_both(staff: Client) -> None:
    backend = Backend.objects.create(name="gpu", base_url="http://gpu:8000/v1", preset="vllm")
    response = staff.post("/admin/gateway/route/add/",
                          route_post(backend, '{"prefill": "sometimes", "max_tokens_cap": "lots"}'))
    assert response.status_code == 200
    errors = form_errors(response.content.decode())
    assert 'prefill: "sometimes" is not one of' in errors
    assert 'max_tokens_cap: "lots" is not a whole number' in errors
    assert not Route.objects.exists()


def test_a_backend_form_with_two_bad_capabilities_shows_each_next_to_its_field(staff: Client) -> None:
    page = staff.post("/admin/gateway/backend/add/", backend_post(
        cap_extra_body='{"add_generation_prompt": true}', cap_extra_headers='{"x-retries": 3}',
    )).content.decode()
    body = page.split('class="form-row errors field-cap_extra_body"')[1].split('class="form-row')[0]
    headers = page.split('class="form-row errors field-cap_extra_headers"')[1].split('class="form-row')[0]
    assert "may not set add_generation_prompt" in unescape(body)
    assert "values must be strings (not the value of x-retries)" in unescape(headers)
    assert not Backend.objects.exists()


def test_capabilities_that_are_not_a_mapping_are_a_problem_not_a_crash() -> None:
    text = ("backends: [{name: b, base_url: 'http://b/v1', capabilities: [prefill]}]\n"
            "routes: [{model: m, backend: b, capabilities: [prefill]}]\n")
    with pytest.raises(ConfigError) as excinfo:
        config_parse(text)
    assert str(excinfo.value).splitlines()[1:] == [
        "  backend b: capabilities: must be a mapping of capability names to values",
        "  route m: capabilities: must be a mapping of capability names to values"]
