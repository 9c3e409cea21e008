"""An exchange exported as a test fixture replays through the translator to the same events.

This is how an operator pins a regression: export the exchange from the admin, save the JSON
under tests/, and replay it like this test does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.admin.utils import quote

from tests.conftest import Upstream
from tests.gateway.helpers import sse_chunks, sse_response
from tests.inspector.test_admin_exchange_pages import PREFILL, send
from translation.capabilities import capabilities_build
from translation.openai_chat import ChatStreamTranslator
from translation.schemas import messages_request_parse
from translation.sse import SSEDecoder
from translation.tokens import tokens_estimate_body

pytestmark = pytest.mark.django_db(transaction=True)


def fixture_replay(fixture: dict[str, Any]) -> list[dict[str, Any]]:
    """The events the Chat Completions stream translator makes from the fixture's chunks."""
    caps = capabilities_build(preset="generic", overrides=fixture["capabilities"])
    req = messages_request_parse(json.dumps(fixture["client_request"]).encode())
    translator = ChatStreamTranslator(caps, request=req, message_id=fixture["message_id"],
                                      input_tokens_estimate=tokens_estimate_body(fixture["upstream_request"],
                                                                                 kind="openai_chat"))
    events = translator.start()
    decoder = SSEDecoder()
    for raw in fixture["upstream_response"]["chunks"]:
        for sse in decoder.feed(raw.encode()):
            if sse.data and sse.data != "[DONE]":
                events += translator.feed(json.loads(sse.data))
    return events + translator.finish()


def test_an_exported_stream_replays_to_the_events_the_client_got(staff: Any, upstream: Upstream) -> None:
    upstream.handler = lambda request: sse_response(sse_chunks(
        [{"reasoning": "Counting."}, {"content": " 3", "tool_calls": []}, {"content": "."}]))
    exchange_id = send({**PREFILL, "stream": True, "thinking": {"type": "enabled", "budget_tokens": 1024}})
    response = staff.get(f"/admin/inspector/exchange/{quote(exchange_id)}/fixture/")
    assert response["content-disposition"] == f'attachment; filename="fixture-{exchange_id}.json"'
    fixture = json.loads(response.content)
    assert fixture["format"] == "dragoman-exchange-fixture/1"
    expected = [e for e in fixture["expected"]["events"] if e["type"] != "ping"]
    assert any(e.get("delta", {}).get("type") == "text_delta" for e in expected)
    assert fixture_replay(fixture) == expected
