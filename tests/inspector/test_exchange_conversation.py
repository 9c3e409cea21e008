"""The exchange page reads like the conversation: system, tools, turns with their tool calls and
results, thinking and images, the reply; the JSON a toggle away; bodies shown as text, never
markup. Built from real requests through the gateway (``upstream`` scripts the backend)."""

from __future__ import annotations

import time

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.contrib.admin.utils import quote
from django.test import Client

from inspector.conversation import block_item, request_conversation
from inspector.models import Exchange
from inspector.recorder import recorder
from tests.claude_code_session import claude_code_session
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, sse_chunks, sse_response
from tests.inspector.test_admin_exchange_pages import _drain, send

pytestmark = pytest.mark.django_db(transaction=True)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def page_of(staff: Client, request_id: str) -> str:
    response = staff.get(f"/admin/inspector/exchange/{quote(request_id)}/change/")
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, element_id: str) -> str:
    return page.split(f'id="{element_id}"', 1)[1].split('<div class="xc-section', 1)[0]


def test_a_turn_with_tool_calls_results_thinking_and_an_image_is_shown_as_a_conversation(
        staff: Client, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("The file says hello."))
    body = {"model": "test-model", "max_tokens": 100, "system": "You are terse.",
            "tools": [{"name": "Read", "description": "Reads a file.\nMore lines here.",
                       "input_schema": {"type": "object", "properties": {"path": {"type": "string"}, "limit": {}},
                                        "required": ["path"]}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "What is in a.txt?"},
                                             {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                          "data": PNG}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "I should read it.", "signature": "s" * 40},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.txt"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                                              "content": "permission denied"}]}]}
    page = page_of(staff, send(body))
    conversation = section(page, "conversation")
    assert "You are terse." in conversation
    assert "<code>Read</code>" in conversation and "Reads a file." in conversation and "More lines" not in \
        conversation.split("<td>", 3)[2].split("</td>")[0]
    assert "path, limit?" in conversation  # parameter names, optional marked
    assert conversation.count('class="turn role-') == 3
    assert "tool call <b>Read</b>" in conversation and "&quot;path&quot;: &quot;a.txt&quot;" in conversation
    assert "tool result <b class=\"bad\">is_error</b>" in conversation and "permission denied" in conversation
    assert "thinking <span class=\"quiet\">(17 chars, signature 40 chars)" in conversation
    assert f'src="data:image/png;base64,{PNG}"' in conversation
    assert "The file says hello." in section(page, "reply")


def test_markup_in_a_prompt_is_shown_as_text(staff: Client, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("<img src=x onerror=alert(1)>"))
    page = page_of(staff, send({"model": "test-model", "max_tokens": 10, "messages": [
        {"role": "user", "content": "<script>alert('owned')</script>"}]}))
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in section(page, "conversation")
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in section(page, "reply")


def test_an_image_that_is_not_a_safe_inline_image_is_named_not_embedded() -> None:
    svg = block_item({"type": "image", "source": {"type": "base64", "media_type": "image/svg+xml", "data": "PHN2Zz4="}})
    assert "src" not in svg and "not shown inline" in svg["label"]
    url = block_item({"type": "image", "source": {"type": "url", "url": "javascript:alert(1)"}})
    assert url["url"] == "" and url["label"] == "javascript:alert(1)"


def test_a_claude_code_turn_shows_its_system_blocks_and_24_tools_and_renders_quickly(
        staff: Client, upstream: Upstream) -> None:
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "Done."}]))
    turn = claude_code_session(32)[-1]
    assert len(turn.raw()) > 175_000 and len(turn.body["tools"]) == 24
    headers = {k: v for k, v in turn.headers.items() if k.lower() != "content-type"}
    response = Client().post("/v1/messages", turn.raw(), content_type="application/json",
                             headers={**headers, "x-api-key": KEY})
    async_to_sync(_drain)(response.streaming_content)  # type: ignore[attr-defined]
    assert recorder.flush(10)
    started = time.perf_counter()
    page = page_of(staff, str(response["request-id"]))
    elapsed = time.perf_counter() - started
    conversation = section(page, "conversation")
    system = conversation.split('id="conv-system"', 1)[1].split("</summary>", 1)[0]
    assert f"{len(turn.body['system'])} blocks" in system
    tools = conversation.split('id="conv-tools"', 1)[1].split("</summary>", 1)[0]
    assert "24: Agent, Bash," in tools and "WebSearch" in tools
    assert conversation.count('class="turn role-') == len(turn.body["messages"])
    assert "tool call <b>" in conversation and "tool result" in conversation
    # The translation of 24 tools and 60-odd messages folds into a handful of mapping rows.
    mapping = page.split('class="diff-mapping"', 1)[1].split("</details>", 1)[0]
    assert mapping.count("<tr class=") < 20
    assert 'data-path="tools[*].input_schema → tools[*].function.parameters"' in mapping and "\u00d724" in mapping
    exchange = Exchange.objects.get(pk=response["request-id"])
    assert exchange.session_id and f"?session_id={exchange.session_id}" in page.split('id="session"', 1)[1]
    print(f"exchange page of a {len(turn.raw())}-byte Claude Code turn: {elapsed * 1000:.0f} ms")
    # Generous: a shared CI machine.
    assert elapsed < 5, f"the page took {elapsed:.2f} s"


def test_the_request_conversation_needs_a_messages_body() -> None:
    assert request_conversation({"model": "m"}) is None
    assert request_conversation("not json") is None
    conversation = request_conversation({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert conversation is not None and conversation["params"] == [("model", "m"), ("max_tokens", 5)]


def test_a_stream_that_ended_with_an_error_is_not_called_valid(staff: Client, upstream: Upstream) -> None:
    upstream.handler = lambda request: sse_response(b'data: {"choices":[{"index":0,"delta":{"content":"par"}}]}\n\n')
    page = page_of(staff, send({"model": "test-model", "max_tokens": 10, "stream": True,
                                "messages": [{"role": "user", "content": "hi"}]}))
    verdict = page.split('id="verdict"', 1)[1].split("</td>", 1)[0]
    assert "well-formed, ended with error" in verdict and "api_error: " in verdict and "before finishing" in verdict
    assert "verdict-ok" not in verdict
    assert "the stream ended with api_error" in page.split('id="status"', 1)[1].split("</td>", 1)[0]


def test_usage_is_a_table_with_message_start_the_final_figure_and_the_backends(
        staff: Client, upstream: Upstream) -> None:
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "Hel"}, {"content": "lo"}]))
    request_id = send({"model": "test-model", "max_tokens": 10, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    exchange = Exchange.objects.get(pk=request_id)
    usage = page_of(staff, request_id).split('id="usage"', 1)[1].split("</table>", 1)[0]
    assert "{&#x27;" not in usage and "{'" not in usage  # no Python dict repr
    assert "<th>message_start</th><th>final (message_delta)</th><th>backend reported</th>" in usage
    row = usage.split('data-field="input_tokens"', 1)[1].split("</tr>", 1)[0]
    start_tokens = exchange.client_response["events"][0][2]["message"]["usage"]["input_tokens"]
    cells = [c.split("</td>")[0] for c in row.split("<td>")[1:]]
    assert cells == ["input_tokens", str(start_tokens), str(exchange.usage["input_tokens"]), "12"]
    assert ("differs" in usage.split('data-field="input_tokens"', 1)[0].rsplit("<tr", 1)[1]) == \
        (start_tokens != exchange.usage["input_tokens"])



def test_documents_redacted_thinking_url_images_and_unknown_blocks_each_have_their_shape() -> None:
    document = block_item({"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain",
                                                                             "data": "line one"}})
    assert document["kind"] == "document" and document["title"] == "Notes"
    assert document["text_list"][0]["text"] == "line one"
    pdf = block_item({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "A" * 4096}})
    assert pdf["size"] == "3 KB" and "text_list" not in pdf
    assert block_item({"type": "redacted_thinking", "data": "x" * 12})["size"] == "12 chars"
    image = block_item({"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}})
    assert image["url"] == "https://example.com/a.png"
    unknown = block_item({"type": "container_upload", "file_id": "f1"})
    assert unknown["kind"] == "other" and '"file_id": "f1"' in unknown["json"]
    long = block_item({"type": "text", "text": "first paragraph\n\n" + "x" * 2000})
    assert long["long"] and long["preview"] == "first paragraph"
