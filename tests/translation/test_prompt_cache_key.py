"""OpenAI's prompt cache routes by ``prompt_cache_key``: with the capability on, a Claude Code
session's id (its ``x-claude-code-session-id`` header, else the session in ``metadata.user_id``)
is sent as that key by both OpenAI request builders, under the same escape hatches as every other
field (drop_fields removes it, an operator's extra_body value wins)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from gateway.backends import ADAPTERS
from gateway.snapshot import BackendInfo, RouteInfo
from tests.translation.support import caps_make, request_make
from translation.capabilities import PRESETS, Capabilities, capabilities_build
from translation.notes import RewriteNote
from translation.openai_chat import build_request as chat_build
from translation.openai_responses import build_request as responses_build
from translation.schemas import MessagesRequest

SESSION = "4c9173a5-8097-4b7d-a946-c10ac05cab71"
OTHER_SESSION = "ad175f14-ce53-47da-a207-0ced0e820c24"
# Claude Code's metadata.user_id: a JSON object (current releases) or the older flat string.
USER_ID_JSON = json.dumps({"device_id": "30e3" * 16, "account_uuid": "", "session_id": SESSION})
USER_ID_FLAT = f"user_{'ab' * 32}_account_0b1c_session_{SESSION}"

Build = Callable[..., tuple[dict[str, Any], list[RewriteNote]]]
# Each builder with the preset of OpenAI's own cloud for it.
BUILDERS = [pytest.param(chat_build, "openai", id="chat"),
            pytest.param(responses_build, "openai-responses", id="responses")]


def build(builder: Build, caps: Capabilities, *, headers: Mapping[str, str] | None = None,
          user_id: str | None = None) -> tuple[dict[str, Any], list[RewriteNote]]:
    req = request_make(**({"metadata": {"user_id": user_id}} if user_id is not None else {}))
    return builder(req, caps, upstream_model="gpt-5", backend_name="oai", client_headers=headers)


def cache_notes(notes: list[RewriteNote]) -> list[str]:
    return [n.detail for n in notes if n.rule.startswith("prompt_cache_key")]


def test_only_the_presets_of_openais_own_cloud_send_the_key() -> None:
    on = {name for name in PRESETS if capabilities_build(preset=name).prompt_cache_key}
    assert on == {"openai", "openai-responses"}


@pytest.mark.parametrize(("builder", "preset"), BUILDERS)
def test_the_session_header_becomes_the_prompt_cache_key(builder: Build, preset: str) -> None:
    body, notes = build(builder, caps_make(preset), headers={"X-Claude-Code-Session-Id": SESSION})
    assert body["prompt_cache_key"] == SESSION
    assert [(n.rule, n.path) for n in notes if n.rule.startswith("prompt_cache_key")] == [
        ("prompt_cache_key.session", "prompt_cache_key")]
    assert "x-claude-code-session-id header" in cache_notes(notes)[0]


@pytest.mark.parametrize(("builder", "preset"), BUILDERS)
@pytest.mark.parametrize("user_id", [USER_ID_JSON, USER_ID_FLAT], ids=["json", "flat"])
def test_without_the_header_the_session_in_metadata_user_id_is_the_key(builder: Build, preset: str,
                                                                       user_id: str) -> None:
    body, notes = build(builder, caps_make(preset), user_id=user_id)
    assert body["prompt_cache_key"] == SESSION
    assert "metadata.user_id" in cache_notes(notes)[0]


@pytest.mark.parametrize(("builder", "preset"), BUILDERS)
def test_the_header_wins_over_metadata_user_id(builder: Build, preset: str) -> None:
    body, notes = build(builder, caps_make(preset), headers={"x-claude-code-session-id": OTHER_SESSION},
                        user_id=USER_ID_JSON)
    assert body["prompt_cache_key"] == OTHER_SESSION
    assert "header" in cache_notes(notes)[0]


@pytest.mark.parametrize(("builder", "preset"), BUILDERS)
def test_a_request_without_a_session_sends_no_key(builder: Build, preset: str) -> None:
    body, notes = build(builder, caps_make(preset), headers={"x-app": "cli"}, user_id="plain-user-42")
    assert "prompt_cache_key" not in body
    assert cache_notes(notes) == []


@pytest.mark.parametrize("builder", [chat_build, responses_build], ids=["chat", "responses"])
@pytest.mark.parametrize("preset", ["vllm", "sglang", "llamacpp", "ollama", "generic"])
def test_with_the_capability_off_no_key_is_sent_even_with_a_session(builder: Build, preset: str) -> None:
    body, notes = build(builder, caps_make(preset), headers={"x-claude-code-session-id": SESSION},
                        user_id=USER_ID_JSON)
    assert "prompt_cache_key" not in body
    assert cache_notes(notes) == []


@pytest.mark.parametrize(("builder", "preset"), BUILDERS)
def test_the_capability_turns_it_off_on_an_openai_preset(builder: Build, preset: str) -> None:
    body, _ = build(builder, caps_make(preset, prompt_cache_key=False), headers={"x-claude-code-session-id": SESSION})
    assert "prompt_cache_key" not in body


@pytest.mark.parametrize(("builder", "preset"), BUILDERS)
def test_an_operators_extra_body_key_wins_over_the_session(builder: Build, preset: str) -> None:
    caps = caps_make(preset, extra_body={"prompt_cache_key": "team-a"})
    body, notes = build(builder, caps, headers={"x-claude-code-session-id": SESSION})
    assert body["prompt_cache_key"] == "team-a"
    assert [n.rule for n in notes][-1] == "extra_body"


@pytest.mark.parametrize(("builder", "preset"), BUILDERS)
def test_drop_fields_removes_the_key(builder: Build, preset: str) -> None:
    caps = caps_make(preset, drop_fields=["prompt_cache_key"])
    body, notes = build(builder, caps, headers={"x-claude-code-session-id": SESSION})
    assert "prompt_cache_key" not in body
    assert ("drop_fields", "prompt_cache_key") in [(n.rule, n.path) for n in notes]


@pytest.mark.parametrize(("builder", "preset"), BUILDERS)
def test_a_session_longer_than_openai_accepts_is_sent_as_its_sha256(builder: Build, preset: str) -> None:
    long_session = "s" * 65  # OpenAI answers 400 string_above_max_length above 64 characters
    body, notes = build(builder, caps_make(preset), headers={"x-claude-code-session-id": long_session})
    assert body["prompt_cache_key"] == hashlib.sha256(long_session.encode()).hexdigest()
    assert len(body["prompt_cache_key"]) == 64
    assert "SHA-256" in cache_notes(notes)[0]
    exact, _ = build(builder, caps_make(preset), headers={"x-claude-code-session-id": "s" * 64})
    assert exact["prompt_cache_key"] == "s" * 64


@pytest.mark.parametrize(("kind", "preset"), [("openai_chat", "openai"), ("openai_responses", "openai-responses")])
def test_the_adapters_hand_the_client_headers_to_the_builder(kind: str, preset: str) -> None:
    caps = capabilities_build(preset=preset)
    backend = BackendInfo(id=1, name="oai", kind=kind, base_url="http://upstream.test/v1", api_key="",
                          preset=preset, capabilities=caps, connect_timeout=1, read_timeout=1, updated=0.0)
    route = RouteInfo(id=1, pattern="m", is_glob=False, backend=backend, upstream_model="gpt-5",
                      capabilities=caps, created_at="")
    req = MessagesRequest.model_validate({"model": "m", "max_tokens": 5,
                                          "messages": [{"role": "user", "content": "hi"}]})
    call = ADAPTERS[kind].call_build(req=req, route=route, client_headers={"x-claude-code-session-id": SESSION})
    assert call.body["prompt_cache_key"] == SESSION
    assert "prompt_cache_key.session" in [n.rule for n in call.notes]
