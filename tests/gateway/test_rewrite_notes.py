"""Every rewrite leaves a note on the exchange: the list for one representative request.

A Claude Code request (real capture) with a prefill appended goes to a vLLM backend through a
route whose capability overrides add a max_tokens cap and an extra_body field. The inspector must
be able to say why each field changed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from tests.conftest import KEY, Upstream, claude_code_fixture
from tests.gateway.helpers import parse_sse, sse_chunks, sse_response

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def notes_route(gateway_setup: str) -> None:
    from gateway import snapshot
    from gateway.models import Backend, Route

    Route.objects.create(model="notes-model", backend=Backend.objects.get(name="vllm-test"),
                         upstream_model="Qwen/Qwen3-8B", order=1,
                         capability_overrides={"max_tokens_cap": 8192, "extra_body": {"priority": 1}})
    snapshot.snapshot_invalidate()


async def test_a_representative_request_lists_every_rewrite(notes_route: None, upstream: Upstream,
                                                            recorded: Any) -> None:
    body = claude_code_fixture("04")["body"]
    body["model"] = "notes-model"
    body["messages"].append({"role": "assistant", "content": "The output was "})
    upstream.handler = lambda request: sse_response(sse_chunks(
        [{"reasoning": "Reading it."}, {"content": "hello."}]))
    response = await AsyncClient().post("/v1/messages", data=json.dumps(body), content_type="application/json",
                                        headers={"x-api-key": KEY})
    events = parse_sse(b"".join([c async for c in response.streaming_content]))
    assert events[-1][0] == "message_stop"
    [exchange] = await recorded()
    assert [(n["rule"], n["path"]) for n in exchange.notes] == [
        ("system.strip_billing_header", "system[0]"),
        ("prefill.continue_final_message", "messages[3]"),
        ("max_tokens.clamp", "max_tokens"),
        ("prefill.thinking_off", "thinking"),
        ("thinking.chat_template_kwargs", "chat_template_kwargs.enable_thinking"),
        ("fields.drop", "context_management"),
        ("extra_body", "priority"),
    ]
    assert all(n["detail"] for n in exchange.notes)
    sent = upstream.bodies()[0]
    assert sent["max_tokens"] == 8192 and sent["priority"] == 1
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert exchange.rewrite_count == 7


async def test_a_request_that_needs_no_rewrite_has_no_notes(gateway_setup: str, upstream: Upstream,
                                                            recorded: Any) -> None:
    upstream.handler = lambda request: httpx.Response(200, json={
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    await AsyncClient().post("/v1/messages", content_type="application/json", headers={"x-api-key": KEY},
                             data=json.dumps({"model": "test-model", "max_tokens": 10,
                                              "messages": [{"role": "user", "content": "hi"}]}))
    [exchange] = await recorded()
    assert exchange.notes == [] and exchange.rewrite_count == 0
