"""The inspector in a real headless Chromium: what an operator sees, and the README's screenshots."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from tests.browser.conftest import SCREENSHOTS, exchange_stored, messages_post
from tests.e2e.conftest import Gateway

PREFILL = {"model": "claude-sonnet-4-5", "max_tokens": 200, "messages": [
    {"role": "user", "content": "Count from one to five."}, {"role": "assistant", "content": "One, two,"}]}


def shot(page: Any, name: str) -> None:
    """The README's screenshots, refreshed by ``make screenshots``; a plain test run writes them
    to a temporary folder so it leaves the working tree clean."""
    folder = SCREENSHOTS if os.environ.get("DRAGOMAN_SCREENSHOTS") else Path(tempfile.gettempdir()) / "dragoman-shots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=False)


def test_a_vllm_prefill_shows_continue_final_message_added_by_the_prefill_rule(
        page: Any, admin_gateway: Gateway) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    request_id = messages_post(admin_gateway, PREFILL)
    exchange_stored(admin_gateway, request_id, page)
    row = page.locator('#request-diff table.diff-rules tr[data-path="continue_final_message"]')
    assert row.locator("td.op").inner_text() == "added"
    assert "prefill.continue_final_message" in row.inner_text()
    # What no rule did (the model the route names) is folded behind its count, not among the rules.
    mapping = page.locator("#request-diff .diff-mapping")
    mapping.locator("summary").click()
    assert mapping.locator('tr[data-path="model"] td.op').inner_text() == "changed"
    assert page.locator('#request-diff table.diff-rules tr[data-path="model"]').count() == 0
    page.locator("#request-diff").scroll_into_view_if_needed()
    shot(page, "exchange-diff.png")


def test_a_streamed_exchange_shows_upstream_chunks_beside_client_events(page: Any, admin_gateway: Gateway) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    request_id = messages_post(admin_gateway, {**PREFILL, "messages": PREFILL["messages"][:1], "stream": True})
    exchange_stored(admin_gateway, request_id, page)
    lanes = page.locator("#stream-lanes")
    assert "chat.completion.chunk" in lanes.locator("td.lane-upstream").first.inner_text() or \
        lanes.locator("td.lane-upstream").count() > 1
    assert "content_block_delta" in lanes.inner_text() and "message_stop" in lanes.inner_text()
    assert "valid" in page.locator("#verdict").inner_text()
    lanes.scroll_into_view_if_needed()
    shot(page, "exchange-stream.png")
