"""The backend adapters on their own (no HTTP server, no database): one per kind, each owning its
headers, its error mapping, its token counts and what the probe sends; the upstream pools; the
exchange's single hand-over to the recorder."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.backends import ADAPTERS, adapter_for
from gateway.backends.anthropic import AnthropicAdapter
from gateway.backends.base import BackendAdapter, UpstreamCall
from gateway.backends.openai import OpenAIAdapter, server_root
from gateway.exchange import Exchange
from gateway.models import BackendKind
from gateway.snapshot import BackendInfo, RouteInfo
from gateway.upstream import UpstreamPools
from inspector.recorder import ExchangeRecord
from translation.capabilities import capabilities_build
from translation.errors import ApiError
from translation.schemas import MessagesRequest

KEY = "sk-upstream-0123456789"


def route(kind: str, *, preset: str = "generic", updated: float = 0.0, **caps: Any) -> RouteInfo:
    capabilities = capabilities_build(preset=preset, overrides=caps)
    backend = BackendInfo(id=1, name="b", kind=kind, base_url="http://upstream.test/v1", api_key=KEY,
                          preset=preset, capabilities=capabilities, connect_timeout=1, read_timeout=1,
                          updated=updated)
    return RouteInfo(id=1, pattern="m", is_glob=False, backend=backend, upstream_model="",
                     capabilities=capabilities, created_at="")


def envelope(error_type: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()


def test_every_configurable_kind_has_exactly_one_adapter() -> None:
    assert set(ADAPTERS) == set(BackendKind.values)
    for kind, adapter in ADAPTERS.items():
        assert adapter.kind == kind
        assert adapter_for(route(kind).backend) is adapter


def test_an_adapter_must_implement_the_whole_kind() -> None:
    class Half(BackendAdapter):
        kind = "half"

        def auth_headers(self, api_key: str) -> dict[str, str]:
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]


@pytest.mark.parametrize(("kind", "path"), [("openai_chat", "/chat/completions"),
                                            ("openai_responses", "/responses")])
def test_the_openai_kinds_share_one_base_and_a_bearer_key(kind: str, path: str) -> None:
    adapter = ADAPTERS[kind]
    assert isinstance(adapter, OpenAIAdapter)
    req = MessagesRequest.model_validate({"model": "m", "max_tokens": 5, "stream": True,
                                          "messages": [{"role": "user", "content": "hi"}]})
    call = adapter.call_build(req=req, route=route(kind, extra_headers={"x-team": "blue"}))
    assert call.url == f"http://upstream.test/v1{path}"
    assert call.headers == {"content-type": "application/json", "authorization": f"Bearer {KEY}",
                            "accept": "text/event-stream", "x-team": "blue"}
    assert adapter.probe_headers(KEY) == {"authorization": f"Bearer {KEY}"}
    assert adapter.probe_headers("") == {}
    assert adapter.probe_preset() is None


def test_the_anthropic_kind_sends_x_api_key_and_implies_its_preset() -> None:
    adapter = ADAPTERS["anthropic"]
    assert adapter.auth_headers(KEY) == {"x-api-key": KEY}
    assert adapter.probe_headers(KEY) == {"anthropic-version": "2023-06-01", "x-api-key": KEY}
    assert adapter.probe_preset() is not None and adapter.probe_preset()[0] == "anthropic"  # type: ignore[index]


def test_an_anthropic_envelope_passes_through_only_from_the_anthropic_kind() -> None:
    body = envelope("invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum")
    native = ADAPTERS["anthropic"].upstream_error(backend="b", status=400, body=body, headers=httpx.Headers())
    assert (native.status, native.type, native.body, native.source) == (400, "invalid_request_error", body, "client")
    chat = ADAPTERS["openai_chat"].upstream_error(backend="b", status=418, body=body, headers=httpx.Headers())
    assert chat.body is None and chat.status == 400
    assert chat.message == "backend b answered 418: prompt is too long: 300000 tokens > 200000 maximum"


def test_anthropic_overload_is_transient_and_a_401_is_the_gateways_problem() -> None:
    adapter = ADAPTERS["anthropic"]
    overloaded = adapter.upstream_error(backend="b", status=529, body=envelope("overloaded_error", "Overloaded"),
                                        headers=httpx.Headers({"retry-after": "3"}))
    assert (overloaded.status, overloaded.source, overloaded.retry_after) == (529, "transient", "3")
    refused = adapter.upstream_error(backend="b", status=401, body=envelope("authentication_error", "bad key"),
                                     headers=httpx.Headers())
    assert (refused.status, refused.type, refused.body) == (500, "api_error", None)


@pytest.mark.parametrize("kind", sorted(BackendKind.values))
def test_every_kind_maps_statuses_and_transport_failures_alike(kind: str) -> None:
    adapter = ADAPTERS[kind]
    page = b"<html>bad gateway</html>"
    assert adapter.upstream_error(backend="b", status=503, body=page, headers=httpx.Headers()).status == 529
    assert adapter.upstream_error(backend="b", status=504, body=page, headers=httpx.Headers()).type == "timeout_error"
    timeout = adapter.transport_error(backend="b", exc=httpx.ReadTimeout("slow"))
    assert (timeout.status, timeout.message) == (504, "backend b timed out (read timeout)")


async def test_a_count_method_the_kind_lacks_fails_as_an_api_error() -> None:
    call = UpstreamCall(url="http://upstream.test/v1/messages", body={"messages": []})
    with pytest.raises(ApiError, match="token_count chat_tokenize is not available for backend kind anthropic"):
        await ADAPTERS["anthropic"].tokens_count("chat_tokenize", call, route("anthropic"))
    with pytest.raises(ApiError, match="not available"):
        await ADAPTERS["openai_chat"].tokens_count("native", call, route("openai_chat"))


def test_only_cheap_local_counts_run_before_a_call() -> None:
    assert ADAPTERS["openai_chat"].prompt_countable(route("openai_chat", token_count="chat_tokenize"))
    assert ADAPTERS["openai_responses"].prompt_countable(route("openai_responses", token_count="llamacpp_tokenize"))
    assert not ADAPTERS["openai_chat"].prompt_countable(route("openai_chat", token_count="estimate"))
    assert not ADAPTERS["anthropic"].prompt_countable(route("anthropic", token_count="native"))
    assert isinstance(ADAPTERS["anthropic"], AnthropicAdapter)


def test_server_root_drops_v1() -> None:
    assert server_root("http://vllm:8000/v1/") == "http://vllm:8000"
    assert server_root("http://llama:8080") == "http://llama:8080"


def test_pools_keep_one_client_per_backend_version_and_swap_transports() -> None:
    pools = UpstreamPools()
    first = pools.client_for(route("openai_chat").backend)
    assert pools.client_for(route("openai_chat").backend) is first
    edited = pools.client_for(route("openai_chat", updated=1.0).backend)
    assert edited is not first
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    with pools.transport_swapped(lambda backend: mock):
        swapped = pools.client_for(route("openai_chat", updated=1.0).backend)
        assert swapped is not edited and swapped._transport is mock
        assert pools.stats() == {}  # pools under a test transport are left out
    assert pools.client_for(route("openai_chat", updated=1.0).backend)._transport is not mock


def test_an_exchange_reaches_the_recorder_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import exchange as exchange_module

    submitted: list[ExchangeRecord] = []
    monkeypatch.setattr(exchange_module.recorder, "submit", submitted.append)
    exchange = Exchange(ExchangeRecord(id="req_test", secrets=[KEY]))
    error = exchange.failed(ApiError(500, f"backend echoed {KEY}", source="backend"))
    exchange.client_left()
    exchange.finish()
    assert submitted == [exchange.record]
    assert KEY not in error.message and exchange.record.error_message == error.message
    assert exchange.record.status == 500 and "finished" in exchange.record.timings
