"""Copy as curl: the credentials from the environment (never the stored masks), one header per
line, the method and the path with its query, no body on a GET, a long body read from a file the
page links to."""

from __future__ import annotations

import json
import shlex

import httpx
import pytest
from django.contrib.admin.utils import quote
from django.test import Client

from inspector.models import Exchange
from inspector.recorder import recorder
from inspector.views import CURL_INLINE_MAX, exchange_curl
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion

pytestmark = pytest.mark.django_db(transaction=True)


def posted(body: dict[str, object], **headers: str) -> Exchange:
    response = Client().post("/v1/messages?beta=true", json.dumps(body), content_type="application/json",
                             headers={"anthropic-version": "2023-06-01", **headers})
    assert recorder.flush(10)
    return Exchange.objects.get(pk=response["request-id"])


def test_curl_takes_the_key_from_the_environment_one_header_per_line(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("hi"))
    body = {"model": "test-model", "max_tokens": 5, "messages": [{"role": "user", "content": "it's"}]}
    curl = exchange_curl(posted(body, **{"x-api-key": KEY}))
    lines = curl.split(" \\\n  ")
    assert lines[0] == "curl -sN -X POST \"$ANTHROPIC_BASE_URL\"'/v1/messages?beta=true'"
    assert '-H "x-api-key: $ANTHROPIC_API_KEY"' in lines
    assert "-H 'anthropic-version: 2023-06-01'" in lines and "-H 'content-type: application/json'" in lines
    assert "***" not in curl and KEY not in curl and KEY[-4:] not in curl
    data = lines[-1]
    assert data.startswith("--data-binary ") and json.loads(shlex.split(data)[1]) == body


def test_curl_sends_a_bearer_token_as_the_auth_token_variable(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("hi"))
    curl = exchange_curl(posted({"model": "test-model", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                                authorization=f"Bearer {KEY}"))
    assert '-H "authorization: Bearer $ANTHROPIC_AUTH_TOKEN"' in curl.split(" \\\n  ") and KEY not in curl


def test_a_get_has_no_body() -> None:
    exchange = Exchange(id="req_get", method="GET", path="/v1/models?limit=5",
                        client_request={"method": "GET", "path": "/v1/models?limit=5", "headers": {}, "body_text": ""})
    assert exchange_curl(exchange) == "curl -sN -X GET \"$ANTHROPIC_BASE_URL\"'/v1/models?limit=5'"


def test_a_long_body_is_read_from_body_json_which_the_page_links_to(staff: Client, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("hi"))
    body = {"model": "test-model", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * CURL_INLINE_MAX}]}
    exchange = posted(body, **{"x-api-key": KEY})
    assert exchange_curl(exchange).endswith("--data-binary @body.json")
    page = staff.get(f"/admin/inspector/exchange/{quote(exchange.pk)}/change/").content.decode()
    link = page.split('id="curl-body"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
    download = staff.get(link)
    assert download.status_code == 200 and json.loads(download.content) == body
