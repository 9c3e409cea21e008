"""A request the gateway refused says so on its page: the status and error the client got, the
envelope itself, the model its body named and the key it presented (masked), and no translation
section (nothing was translated)."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.utils import quote
from django.test import Client

from inspector.recorder import recorder
from tests.conftest import KEY

pytestmark = pytest.mark.django_db(transaction=True)

WRONG_KEY = "dgm_wrongkey_0123456789abcdefghijPPp0"


def rejected_page(staff: Client, body: bytes, key: str) -> tuple[int, str]:
    response = Client().post("/v1/messages", body, content_type="application/json", headers={"x-api-key": key})
    assert response.status_code >= 400
    assert recorder.flush(10)
    page = staff.get(f"/admin/inspector/exchange/{quote(response['request-id'])}/change/")
    assert page.status_code == 200
    return response.status_code, page.content.decode()


def test_a_wrong_key_shows_rejected_401_with_the_envelope_the_model_and_the_key_hint(staff: Client) -> None:
    status, page = rejected_page(staff, json.dumps({"model": "test-model", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}]}).encode(), WRONG_KEY)
    assert status == 401
    banner = page.split('id="rejected"', 1)[1].split('id="summary"', 1)[0]
    assert "Rejected: 401 authentication_error</b> — Invalid API key" in banner
    envelope = page.split('id="rejected-envelope">', 1)[1].split("</pre>", 1)[0]
    assert "&quot;type&quot;: &quot;authentication_error&quot;" in envelope and "&quot;request_id&quot;" in envelope
    assert "test-model" in page.split('id="model"', 1)[1].split("</td>", 1)[0]
    key = page.split('id="key"', 1)[1].split("</td>", 1)[0]
    assert "dgm_wrongkey…PPp0" in key and WRONG_KEY not in page
    assert 'id="request-diff"' not in page and 'id="response-diff"' not in page and "changed" not in banner
    assert 'id="verdict"' not in page


def test_a_body_missing_max_tokens_shows_rejected_400_and_the_message(staff: Client) -> None:
    status, page = rejected_page(staff, json.dumps({"model": "test-model", "messages": [
        {"role": "user", "content": "hi"}]}).encode(), KEY)
    assert status == 400
    assert "Rejected: 400 invalid_request_error</b> — " in page and "max_tokens" in page.split('id="rejected"', 1)[1]
    assert "test-model" in page.split('id="model"', 1)[1].split("</td>", 1)[0]
    assert "tester" in page.split('id="key"', 1)[1].split("</td>", 1)[0]
    assert 'id="request-diff"' not in page


def test_a_body_that_is_not_json_shows_rejected_and_the_text_sent(staff: Client) -> None:
    status, page = rejected_page(staff, b'{"model": "test-model", <oops>', KEY)
    assert status == 400
    assert "Rejected: 400 invalid_request_error" in page
    assert "&lt;oops&gt;" in page.split('id="conversation"', 1)[1] and "<oops>" not in page


def test_an_unknown_model_shows_rejected_404_with_the_model_named(staff: Client) -> None:
    status, page = rejected_page(staff, json.dumps({"model": "gpt-nowhere", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}]}).encode(), KEY)
    assert status == 404
    assert "Rejected: 404 not_found_error" in page and "gpt-nowhere" in page.split('id="model"', 1)[1].split("</td>")[0]
