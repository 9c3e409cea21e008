"""dragoman.yaml: upserts, ${ENV} expansion, idempotence, and all-or-nothing on bad files."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from gateway.models import ApiKey, Backend, Route
from gateway.snapshot import key_hash

pytestmark = pytest.mark.django_db

GOOD = """
backends:
  - name: local-vllm
    kind: openai_chat
    base_url: http://127.0.0.1:8001/v1
    api_key: ${VLLM_API_KEY}
    preset: vllm
    capabilities:
      max_tokens_field: max_completion_tokens
      max_tokens_cap: 32768
      reasoning_fields_in: [reasoning]
      extra_body: {chat_template_kwargs: {custom: 1}}
      extra_headers: {x-team: infra}
routes:
  - model: qwen3-coder
    backend: local-vllm
    upstream_model: Qwen/Qwen3-Coder-30B-A3B-Instruct
  - model: claude-*haiku*
    backend: local-vllm
    order: 5
keys:
  - name: team
    key: ${DRAGOMAN_KEY}
"""


def apply(tmp_path: Path, text: str) -> str:
    path = tmp_path / "dragoman.yaml"
    path.write_text(text)
    out = StringIO()
    call_command("applyconfig", str(path), stdout=out)
    return out.getvalue()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-upstream-secret-1234")
    monkeypatch.setenv("DRAGOMAN_KEY", "dgm_team_key_abcdefghijklmnop")


def test_config_creates_backends_routes_and_hashed_keys(tmp_path: Path, env: None) -> None:
    out = apply(tmp_path, GOOD)
    assert "backend local-vllm: created" in out
    backend = Backend.objects.get(name="local-vllm")
    assert backend.api_key == "sk-upstream-secret-1234"
    assert backend.capabilities().prefill == "continue_final_message"
    caps = backend.capabilities()
    assert caps.max_tokens_field == "max_completion_tokens"
    assert caps.max_tokens_cap == 32768
    assert caps.reasoning_fields_in == ("reasoning",)
    assert caps.extra_body == {"chat_template_kwargs": {"custom": 1}}
    assert caps.extra_headers == {"x-team": "infra"}
    assert caps.thinking_control == "enable_thinking"  # from the preset
    routes = list(Route.objects.order_by("order"))
    assert [r.model for r in routes] == ["claude-*haiku*", "qwen3-coder"]
    assert routes[1].upstream_model == "Qwen/Qwen3-Coder-30B-A3B-Instruct"
    key = ApiKey.objects.get(name="team")
    assert key.key_hash == key_hash("dgm_team_key_abcdefghijklmnop")
    assert "dgm_team_key_abcdefghijklmnop" not in str(ApiKey.objects.values().get())


def test_applying_twice_changes_nothing_the_second_time(tmp_path: Path, env: None) -> None:
    apply(tmp_path, GOOD)
    out = apply(tmp_path, GOOD)
    assert "no changes" in out
    assert Backend.objects.count() == 1 and Route.objects.count() == 2 and ApiKey.objects.count() == 1


def test_a_changed_field_is_reported(tmp_path: Path, env: None) -> None:
    apply(tmp_path, GOOD)
    out = apply(tmp_path, GOOD.replace("preset: vllm", "preset: sglang"))
    assert "backend local-vllm: updated preset" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backends: [{name: x, base_url: 'ftp://nope'}]", "base_url"),
        ("backends: [{name: x, base_url: 'http://a/v1', preset: nonsense}]", "preset"),
        ("backends: [{name: x, base_url: 'http://a/v1', capabilities: {warp_drive: true}}]", "warp_drive"),
        ("backends: [{name: x, base_url: 'http://a/v1', capabilities: {prefill: sometimes}}]", "prefill"),
        ("backends: [{name: x, base_url: 'http://a/v1', capabilities: {max_tokens_cap: lots}}]", "max_tokens_cap"),
        ("backends: [{name: x, base_url: 'http://a/v1', capabilities: {extra_body: [1]}}]", "extra_body"),
        ("routes: [{model: m, backend: ghost}]", "ghost"),
        ("keys: [{name: k, key: short}]", "16 characters"),
        ("keys: [{name: k, key: '${NOT_SET_ANYWHERE}'}]", "NOT_SET_ANYWHERE"),
        ("backends: {oops: 1}", "must be a list"),
        ("surprise: 1", "unknown top-level"),
        ("backends: [", "not valid YAML"),
    ],
)
def test_bad_files_are_rejected_with_a_clear_message_and_change_nothing(
    tmp_path: Path, env: None, text: str, message: str
) -> None:
    good_backend = "backends: [{name: keep, base_url: 'http://k/v1'}]\n"
    apply(tmp_path, good_backend)
    with pytest.raises(CommandError) as excinfo:
        apply(tmp_path, good_backend.replace("keep", "other") + text if text.startswith(("routes", "keys"))
              else text)
    assert message in str(excinfo.value)
    assert "Nothing was changed" in str(excinfo.value)
    assert list(Backend.objects.values_list("name", flat=True)) == ["keep"]


def test_env_default_syntax_is_supported(tmp_path: Path) -> None:
    apply(tmp_path, "backends: [{name: d, base_url: '${NO_SUCH_URL_VAR:-http://fallback:9/v1}'}]")
    assert Backend.objects.get(name="d").base_url == "http://fallback:9/v1"
