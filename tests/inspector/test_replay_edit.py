"""Replay: a count_tokens exchange is counted again (not sent to /v1/messages); the client
request can be edited before it is replayed, to its own route or another; bad JSON is a clear
message on the page, never a 500; the replay's page highlights what differs from the original."""

from __future__ import annotations

import json

import httpx
import pytest
from django.contrib.admin.utils import quote
from django.test import Client

from inspector.models import Exchange
from inspector.recorder import recorder
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"model": "test-model", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]}


def post(path: str, body: dict[str, object]) -> str:
    response = Client().post(path, json.dumps(body), content_type="application/json", headers={"x-api-key": KEY})
    assert response.status_code == 200, response.content
    assert recorder.flush(10)
    return str(response["request-id"])


def echo(request: httpx.Request) -> httpx.Response:
    """The backend answers with the last user message, so an edit shows in the reply."""
    if request.url.path.endswith("/tokenize"):
        return httpx.Response(200, json={"count": 40 + len(request.content) // 10})
    sent = json.loads(request.content)["messages"][-1]["content"]
    return httpx.Response(200, json=chat_completion(f"You said: {sent}"))


def test_a_count_tokens_exchange_replays_through_count_tokens(staff: Client, upstream: Upstream) -> None:
    upstream.handler = echo
    original = post("/v1/messages/count_tokens", {k: v for k, v in BODY.items() if k != "max_tokens"})
    response = staff.post(f"/admin/inspector/exchange/{quote(original)}/replay/", {"target": ""})
    assert response.status_code == 302
    replay = Exchange.objects.exclude(pk=original).get()
    assert replay.endpoint == "count_tokens" and replay.status == 200, replay.error_message
    assert replay.client_response["body"]["input_tokens"] == Exchange.objects.get(pk=original).client_response[
        "body"]["input_tokens"]
    assert [r.url.path for r in upstream.requests][-1].endswith("/tokenize")
    assert not any(r.url.path.endswith("/chat/completions") for r in upstream.requests)


def test_an_edited_request_is_replayed_and_the_comparison_marks_what_differs(
        staff: Client, upstream: Upstream) -> None:
    upstream.handler = echo
    original = post("/v1/messages", BODY)
    page = staff.get(f"/admin/inspector/exchange/{quote(original)}/change/").content.decode()
    assert "&quot;content&quot;: &quot;Say hello&quot;" in page.split('id="replay-edit"', 1)[1]  # prefilled
    edited = {**BODY, "messages": [{"role": "user", "content": "Say goodbye"}]}
    response = staff.post(f"/admin/inspector/exchange/{quote(original)}/replay/",
                          {"target": "", "body": json.dumps(edited)})
    assert response.status_code == 302
    replay = Exchange.objects.exclude(pk=original).get()
    assert replay.client_request["body"] == edited
    assert json.loads(upstream.requests[-1].content)["messages"][-1]["content"] == "Say goodbye"
    page = staff.get(response["location"]).content.decode()
    diff = page.split('id="compare-diff"', 1)[1].split("</table>", 1)[0]
    row = diff.split('data-path="content[0].text"', 1)[1].split("</tr>", 1)[0]
    assert 'op-changed' in diff.split('data-path="content[0].text"', 1)[0].rsplit("<tr", 1)[1]
    old, new = row.split('class="new"', 1)
    assert "You said: Say <mark>hello</mark>" in old and "You said: Say <mark>goodbye</mark>" in new
    assert 'data-path="id"' in diff  # each message has its own id
    assert 'data-path="model"' not in diff  # what is the same is not listed


def test_the_same_request_replayed_says_the_message_is_the_same_where_it_is(
        staff: Client, upstream: Upstream) -> None:
    upstream.handler = echo
    original = post("/v1/messages", BODY)
    response = staff.post(f"/admin/inspector/exchange/{quote(original)}/replay/", {"target": ""})
    page = staff.get(response["location"]).content.decode()
    paths = [p.split('"', 1)[0] for p in page.split('id="compare-diff"', 1)[1].split("</table>", 1)[0]
             .split('data-path="')[1:]]
    assert paths == ["id"]


def test_an_edited_request_to_another_route_goes_there(staff: Client, upstream: Upstream) -> None:
    from gateway.models import Route

    upstream.handler = echo
    original = post("/v1/messages", BODY)
    other = Route.objects.get(model="claude-*")
    response = staff.post(f"/admin/inspector/exchange/{quote(original)}/replay/",
                          {"target": str(other.pk), "body": json.dumps(BODY)})
    assert response.status_code == 302
    assert Exchange.objects.exclude(pk=original).get().status == 200


@pytest.mark.parametrize(("text", "message"), [
    ('{"model": "test-model", ', "the edited request is not valid JSON"),
    ("[1, 2]", "the edited request must be a JSON object, not list"),
    (json.dumps({**BODY, "max_tokens": "many"}), "max_tokens"),
])
def test_a_bad_edit_shows_why_on_the_page_and_keeps_the_edit(
        staff: Client, upstream: Upstream, text: str, message: str) -> None:
    upstream.handler = echo
    original = post("/v1/messages", BODY)
    response = staff.post(f"/admin/inspector/exchange/{quote(original)}/replay/", {"target": "", "body": text})
    assert response.status_code == 400
    page = response.content.decode()
    error = page.split('id="replay-error">', 1)[1].split("</div>", 1)[0]
    assert error.startswith("Replay failed: ") and message in error
    from django.utils.html import escape

    assert escape(text) in page.split('id="replay-edit"', 1)[1]
    assert Exchange.objects.count() == 1
