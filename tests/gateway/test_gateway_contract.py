"""Claude Code's gateway contract (code.claude.com/docs/en/llm-gateway-protocol): model discovery
in Anthropic's shape without a backend call, ``anthropic-version`` and ``anthropic-beta`` forwarded
unchanged to native backends, their error bodies returned unmodified, and either key header."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_KEY = "sk-ant-upstream-contract-0123456789"
OK = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
      "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
      "usage": {"input_tokens": 3, "output_tokens": 1}}


@pytest.fixture
def native(gateway_setup: str) -> Iterator[str]:
    """Native Anthropic routes before gateway_setup's vLLM ones: ``claude-opus-4-6*`` takes every
    beta; ``claude-haiku-filtered`` only claude-code's; ``claude-sonnet-4-6`` knows its context window."""
    from gateway import snapshot
    from gateway.models import Backend, Route

    backend = Backend.objects.create(name="claude", kind="anthropic", base_url="http://anthropic.test/v1",
                                     preset="anthropic-no-prefill", api_key=UPSTREAM_KEY)
    Route.objects.create(model="claude-opus-4-6*", backend=backend, order=1)
    Route.objects.create(model="claude-haiku-filtered", backend=backend, order=2,
                         capability_overrides={"betas": ["claude-code-20250219"]})
    Route.objects.create(model="claude-sonnet-4-6", backend=backend, order=3,
                         capability_overrides={"context_window": 200_000})
    snapshot.snapshot_invalidate()
    yield gateway_setup
    snapshot.snapshot_invalidate()


def ask(model: str = "claude-opus-4-6", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}], **extra}


async def post(body: dict[str, Any], **headers: str) -> Any:
    if "authorization" not in headers:
        headers.setdefault("x-api-key", KEY)
    return await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                    headers=headers)


# -- model discovery ---------------------------------------------------------------------------------


async def test_models_answers_claude_codes_discovery_in_anthropics_shape_without_a_backend_call(
        native: str, upstream: Upstream) -> None:
    started = time.monotonic()
    response = await AsyncClient().get("/v1/models?limit=1000", headers={"authorization": f"Bearer {KEY}"})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    body = json.loads(response.content)
    ids = [m["id"] for m in body["data"]]
    assert ids == ["claude-haiku-filtered", "claude-sonnet-4-6", "test-model"]  # exact routes, in route order
    for model in body["data"]:
        assert model["type"] == "model" and model["display_name"] == model["id"]
        assert model["created_at"].endswith("Z")
    assert (body["has_more"], body["first_id"], body["last_id"]) == (False, ids[0], ids[-1])
    assert upstream.requests == []
    assert elapsed < 3  # Claude Code gives discovery 3 s


async def test_a_route_with_a_context_window_reports_it_as_max_input_tokens(native: str) -> None:
    response = await AsyncClient().get("/v1/models?limit=1000", headers={"x-api-key": KEY})
    by_id = {m["id"]: m for m in json.loads(response.content)["data"]}
    assert by_id["claude-sonnet-4-6"]["max_input_tokens"] == 200_000
    assert "max_input_tokens" not in by_id["test-model"]
    single = await AsyncClient().get("/v1/models/claude-sonnet-4-6", headers={"x-api-key": KEY})
    assert json.loads(single.content)["max_input_tokens"] == 200_000


@pytest.fixture
def glob_aliases(native: str) -> None:
    from gateway import snapshot
    from gateway.models import Route

    # claude-opus-4-6* (order 1) lists two aliases; claude-* (gateway_setup, order 20) lists one it
    # serves and one the earlier route takes, which must not be listed as claude-*'s.
    Route.objects.filter(model="claude-opus-4-6*").update(aliases="claude-opus-4-6, claude-opus-4-6-fast")
    Route.objects.filter(model="claude-*").update(aliases="claude-local-coder, claude-opus-4-6-fast")
    snapshot.snapshot_invalidate()


async def test_glob_routes_are_listed_through_their_aliases(glob_aliases: None) -> None:
    response = await AsyncClient().get("/v1/models?limit=1000", headers={"x-api-key": KEY})
    ids = [m["id"] for m in json.loads(response.content)["data"]]
    assert ids == ["claude-opus-4-6", "claude-opus-4-6-fast", "claude-haiku-filtered", "claude-sonnet-4-6",
                   "test-model", "claude-local-coder"]  # in route order


def test_an_alias_the_route_would_not_serve_is_refused_in_the_admin_and_the_config(gateway_setup: str,
                                                                                    tmp_path: Any) -> None:
    from gateway.admin import RouteForm
    from gateway.config import ConfigError, config_apply, config_load
    from gateway.models import Backend

    backend = Backend.objects.get(name="vllm-test")
    form = RouteForm(data={"model": "claude-*", "backend": backend.pk, "upstream_model": "", "order": 5,
                           "aliases": "claude-ok, gpt-4o", "capability_overrides": "{}", "enabled": True})
    assert not form.is_valid() and "gpt-4o" in str(form.errors["aliases"])
    config = tmp_path / "dragoman.yaml"
    config.write_text("routes:\n  - {model: 'claude-*', backend: vllm-test, aliases: [claude-ok, gpt-4o]}\n")
    with pytest.raises(ConfigError, match="gpt-4o"):
        config_apply(config_load(config))


@pytest.fixture
def thousand_routes(native: str) -> None:
    from gateway import snapshot
    from gateway.models import Backend, Route

    backend = Backend.objects.get(name="claude")
    Route.objects.bulk_create([Route(model=f"claude-bulk-{i:04d}", backend=backend, order=50) for i in range(1000)])
    snapshot.snapshot_invalidate()


async def test_a_thousand_routes_are_listed_within_discoverys_timeout(thousand_routes: None,
                                                                      upstream: Upstream) -> None:
    await AsyncClient().get("/v1/models?limit=1", headers={"x-api-key": KEY})  # the snapshot is built once
    started = time.monotonic()
    response = await AsyncClient().get("/v1/models?limit=1000", headers={"x-api-key": KEY})
    assert time.monotonic() - started < 3
    body = json.loads(response.content)
    assert len(body["data"]) == 1000 and body["has_more"] is True
    assert upstream.requests == []


# -- headers forwarded unchanged -----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2026-10-21", "2023-06-01", "2031-01-01"])
async def test_any_anthropic_version_is_accepted_and_forwarded_unchanged(native: str, upstream: Upstream,
                                                                         version: str) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=OK)
    response = await post(ask(), **{"anthropic-version": version})
    assert response.status_code == 200, response.content
    assert upstream.requests[0].headers["anthropic-version"] == version


async def test_anthropic_beta_reaches_a_backend_that_takes_every_beta_byte_for_byte(native: str,
                                                                                   upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=OK)
    betas = "claude-code-20250219, interleaved-thinking-2025-05-14,context-management-2025-06-27"
    response = await post(ask(), **{"anthropic-beta": betas})
    assert response.status_code == 200
    assert upstream.requests[0].headers["anthropic-beta"] == betas


async def test_a_bearer_token_authenticates_as_claude_codes_anthropic_auth_token_does(native: str,
                                                                                     upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=OK)
    response = await post(ask(), authorization=f"Bearer {KEY}")
    assert response.status_code == 200
    assert upstream.requests[0].headers["x-api-key"] == UPSTREAM_KEY  # the backend's key, never the client's
    assert "authorization" not in upstream.requests[0].headers


async def test_a_beta_only_field_goes_with_its_beta_when_the_backend_filters_the_beta(native: str,
                                                                                     upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=OK)
    edits = {"edits": [{"type": "clear_tool_uses_20250919"}]}
    betas = "claude-code-20250219,context-management-2025-06-27"
    await post(ask("claude-haiku-filtered", context_management=edits), **{"anthropic-beta": betas})
    await post(ask("claude-opus-4-6", context_management=edits), **{"anthropic-beta": betas})
    filtered, forwarded = upstream.requests
    assert filtered.headers["anthropic-beta"] == "claude-code-20250219"
    assert "context_management" not in json.loads(filtered.content)
    assert json.loads(forwarded.content)["context_management"] == edits


# -- native error bodies, unmodified --------------------------------------------------------------------


def anthropic_error(status: int, error_type: str, message: str) -> bytes:
    # Anthropic's own layout: its request_id, its key order, its spacing.
    return (b'{"type":"error","error":{"type":"%s","message":"%s"},"request_id":"req_011CUpstream"}'
            % (error_type.encode(), message.encode()))


@pytest.mark.parametrize(("status", "error_type", "message"), [
    (400, "invalid_request_error", "This model does not support assistant message prefill. The conversation "
                                   "must end with a user message."),
    (400, "invalid_request_error", "context_management: Extra inputs are not permitted"),
    (404, "not_found_error", "model: claude-opus-4-6-nope"),
    (413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
    (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    (500, "api_error", "Internal server error"),
    (503, "overloaded_error", "Service unavailable"),
    (529, "overloaded_error", "Overloaded"),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_native_backends_error_reaches_the_client_unmodified(native: str, upstream: Upstream, recorded: Any,
                                                                    status: int, error_type: str, message: str,
                                                                    stream: bool) -> None:
    raw = anthropic_error(status, error_type, message)
    upstream.handler = lambda request: httpx.Response(status, content=raw,
                                                      headers={"content-type": "application/json"})
    response = await post(ask(stream=stream))
    assert response.status_code == status
    assert response.content == raw
    assert response["request-id"].startswith("req_")  # the header still names the gateway's exchange
    [exchange] = await recorded()
    assert (exchange.status, exchange.error_type, exchange.error_message) == (status, error_type, message)


async def test_a_native_error_body_that_echoes_the_backend_key_is_masked(native: str, upstream: Upstream) -> None:
    raw = anthropic_error(400, "invalid_request_error", f"bad header x-api-key: {UPSTREAM_KEY}")
    upstream.handler = lambda request: httpx.Response(400, content=raw)
    response = await post(ask())
    assert response.status_code == 400
    assert UPSTREAM_KEY not in response.content.decode()
    assert response.content == raw.replace(UPSTREAM_KEY.encode(), b"***" + UPSTREAM_KEY[-4:].encode())


async def test_a_401_from_a_native_backend_stays_the_gateways_credential_problem(native: str,
                                                                                 upstream: Upstream) -> None:
    # Forwarded unmodified, Claude Code would ask its user to log in again over the gateway's key.
    upstream.handler = lambda request: httpx.Response(401, content=anthropic_error(
        401, "authentication_error", "invalid x-api-key"))
    response = await post(ask())
    assert response.status_code == 500
    assert "refused the gateway's credentials" in json.loads(response.content)["error"]["message"]
