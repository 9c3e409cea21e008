"""count_tokens is the backend's own count wherever it can give one (Claude Code compacts by it).

The mock backend counts prompts exactly as its chat endpoint does (one token per 4 bytes of a
ChatML rendering), so "exact" is checked the strict way: count_tokens for a request equals the
input tokens the backend then reports when that same request is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream, claude_code_fixture
from tests.mockbackend import MockServerThread
from tests.translation.support import caps_make
from translation.openai_chat import build_request
from translation.schemas import MessagesRequest
from translation.tokens import tokens_estimate_body, tokens_floor_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServerThread]:
    with MockServerThread() as server:
        yield server


@pytest.fixture
def backends(transactional_db: None, mock: MockServerThread) -> Iterator[None]:
    from gateway import snapshot, upstream
    from gateway.models import Backend, Route
    from gateway.services import apikey_create

    url = mock.url
    for name, preset, overrides in [
        ("vllm", "vllm", {}),
        ("sglang", "sglang", {}),
        ("llamacpp", "llamacpp", {}),
        ("native", "anthropic", {}),
        ("plain", "generic", {}),
        ("broken", "vllm", {"cap_tokenize_path": "/no-such-endpoint"}),
    ]:
        backend = Backend.objects.create(name=name, base_url=url, preset=preset,
                                         kind="anthropic" if preset == "anthropic" else "openai_chat",
                                         **overrides)
        Route.objects.create(model=f"{name}-model", backend=backend, upstream_model="mock-text")
    apikey_create(name="tester", secret=KEY)
    upstream.pools.reset()
    snapshot.snapshot_invalidate()
    mock.requests.clear()
    yield
    upstream.pools.reset()
    snapshot.snapshot_invalidate()
    from inspector.recorder import recorder

    recorder.flush(10)  # this test's exchanges are written before the tables are flushed


async def post(path: str, body: dict[str, Any]) -> Any:
    return await AsyncClient().post(path, data=json.dumps(body), content_type="application/json",
                                    headers={"x-api-key": KEY})


def claude_code_request(model: str) -> dict[str, Any]:
    body = claude_code_fixture("04")["body"]
    body["model"] = model
    body["stream"] = False
    return body


@pytest.mark.parametrize("backend", ["vllm", "sglang", "llamacpp"])
async def test_count_equals_what_the_backend_then_reports(backends: None, mock: MockServerThread,
                                                          backend: str, recorded: Any) -> None:
    body = claude_code_request(f"{backend}-model")
    counted = await post("/v1/messages/count_tokens", {k: v for k, v in body.items() if k in (
        "model", "messages", "system", "tools", "tool_choice", "thinking")})
    assert counted.status_code == 200, counted.content
    sent = await post("/v1/messages", body)
    assert sent.status_code == 200, sent.content
    usage = json.loads(sent.content)["usage"]
    assert json.loads(counted.content)["input_tokens"] == usage["input_tokens"] + usage["cache_read_input_tokens"]
    exchanges = await recorded()
    assert exchanges[0].usage["counted"] == "exact" and exchanges[0].usage["method"] != "estimate"


async def test_vllm_tokenizes_the_translated_messages_and_tools(backends: None, mock: MockServerThread) -> None:
    body = claude_code_request("vllm-model")
    await post("/v1/messages/count_tokens", {k: body[k] for k in ("model", "messages", "system", "tools")})
    (sent,) = [r for r in mock.requests if r["path"] == "/tokenize"]
    assert sent["body"]["model"] == "mock-text"
    assert sent["body"]["add_generation_prompt"] is True
    assert sent["body"]["messages"][0]["role"] == "system"
    assert [t["function"]["name"] for t in sent["body"]["tools"]] == [t["name"] for t in body["tools"]]


async def test_sglang_and_llamacpp_use_their_own_endpoints(backends: None, mock: MockServerThread) -> None:
    request = {"messages": [{"role": "user", "content": "hi"}]}
    await post("/v1/messages/count_tokens", {"model": "sglang-model", **request})
    await post("/v1/messages/count_tokens", {"model": "llamacpp-model", **request})
    assert [r["path"] for r in mock.requests] == ["/v1/tokenize", "/apply-template", "/tokenize"]
    assert mock.requests[2]["body"]["content"].startswith("<|im_start|>user\nhi")


async def test_native_anthropic_counts_are_passed_through_without_max_tokens(
        backends: None, mock: MockServerThread) -> None:
    response = await post("/v1/messages/count_tokens",
                          {"model": "native-model", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.content
    (sent,) = [r for r in mock.requests if r["path"] == "/v1/messages/count_tokens"]
    assert sent["body"] == {"model": "mock-text", "messages": [{"role": "user", "content": "hi"}]}
    assert json.loads(response.content)["input_tokens"] == -(-len(json.dumps(sent["body"],
                                                                                separators=(",", ":"))) // 4)


@pytest.mark.parametrize("backend", ["plain", "broken"])
async def test_without_a_backend_count_the_estimate_answers_and_says_why(
        backends: None, backend: str, recorded: Any) -> None:
    response = await post("/v1/messages/count_tokens",
                          {"model": f"{backend}-model", "messages": [{"role": "user", "content": "hello there"}]})
    assert response.status_code == 200
    assert json.loads(response.content)["input_tokens"] > 0
    [exchange] = await recorded()
    assert exchange.usage["counted"] == "estimate"
    assert exchange.usage["detail"] == ("backend cannot count" if backend == "plain"
                                        else "chat_tokenize failed (404: backend broken answered 404: Not Found: POST /no-such-endpoint)")


async def test_the_estimate_is_of_the_translated_request(backends: None) -> None:
    request = {"model": "plain-model", "messages": [{"role": "user", "content": "hello there"}],
               "system": "Answer in French."}
    response = await post("/v1/messages/count_tokens", request)
    translated, _ = build_request(MessagesRequest.model_validate({**request, "max_tokens": 1}), caps_make("generic"),
                                  upstream_model="mock-text")
    assert json.loads(response.content)["input_tokens"] == tokens_estimate_body(translated, kind="openai_chat")


@pytest.fixture
def scripted(transactional_db: None, upstream: Upstream) -> Iterator[Upstream]:
    """vLLM and llama.cpp backends behind a scripted transport: for the answers the mock backend
    never gives (llama.cpp's ``/tokenize`` ignores ``messages`` and answers ``{"tokens": []}``)."""
    from gateway import snapshot
    from gateway.models import Backend, Route
    from gateway.services import apikey_create

    for preset in ("vllm", "llamacpp"):
        backend = Backend.objects.create(name=preset, base_url="http://upstream.test/v1", preset=preset)
        Route.objects.create(model=f"{preset}-model", backend=backend, upstream_model="m")
    apikey_create(name="tester", secret=KEY)
    snapshot.snapshot_invalidate()
    yield upstream
    snapshot.snapshot_invalidate()
    from inspector.recorder import recorder

    recorder.flush(10)


def tokenizer_answering(answer: dict[str, Any]) -> Any:
    """A backend whose tokenizer answers ``answer`` (llama.cpp's template renders first)."""
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/apply-template":
            return httpx.Response(200, json={"prompt": "<|im_start|>user\nhello there<|im_end|>\n"})
        return httpx.Response(200, json=answer)
    return handle


@pytest.mark.parametrize("backend, method", [("vllm", "chat_tokenize"), ("llamacpp", "llamacpp_tokenize")])
async def test_an_empty_token_list_is_a_failed_count_and_the_estimate_answers(
        scripted: Upstream, recorded: Any, backend: str, method: str) -> None:
    scripted.handler = tokenizer_answering({"tokens": []})
    response = await post("/v1/messages/count_tokens",
                          {"model": f"{backend}-model", "messages": [{"role": "user", "content": "hello there"}]})
    assert response.status_code == 200
    translated = scripted.bodies()[0]  # what the backend was asked to count
    assert json.loads(response.content)["input_tokens"] == tokens_estimate_body(translated, kind="openai_chat")
    [exchange] = await recorded()
    assert exchange.usage["counted"] == "estimate" and exchange.usage["method"] == "estimate"
    assert exchange.usage["detail"] == f"{method} answered an implausible count (0 tokens, at least 1 expected)"


async def test_a_count_far_below_the_request_s_size_is_a_failed_count(scripted: Upstream, recorded: Any) -> None:
    scripted.handler = tokenizer_answering({"count": 12})
    body = claude_code_fixture("16")["body"]
    response = await post("/v1/messages/count_tokens", {**body, "model": "vllm-model"})
    assert json.loads(response.content)["input_tokens"] > 10_000
    [exchange] = await recorded()
    assert exchange.usage["counted"] == "estimate"
    assert exchange.usage["detail"].startswith("chat_tokenize answered an implausible count (12 tokens, at least ")


async def test_a_count_at_the_floor_is_exact(scripted: Upstream, recorded: Any) -> None:
    def at_the_floor(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"count": tokens_floor_body(json.loads(request.content), kind="openai_chat")})
    scripted.handler = at_the_floor
    body = claude_code_fixture("16")["body"]
    response = await post("/v1/messages/count_tokens", {**body, "model": "vllm-model"})
    floor = tokens_floor_body(scripted.bodies()[0], kind="openai_chat")
    assert floor > 1000
    assert json.loads(response.content)["input_tokens"] == floor
    [exchange] = await recorded()
    assert exchange.usage["counted"] == "exact" and exchange.usage["method"] == "chat_tokenize"
