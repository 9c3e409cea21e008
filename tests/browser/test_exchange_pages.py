"""The exchange page in a real headless Chromium: a Claude Code turn read as its conversation, a
rejected request's page, and edit-and-replay landing on the comparison; the README's screenshots
of each at 1440 px."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import SCREENSHOTS, exchange_stored, messages_post
from tests.claude_code_session import claude_code_session
from tests.e2e.conftest import Gateway

WIDTH = 1440
WRONG_KEY = "dgm_wrongkey_0123456789abcdefghijPPp0"


def shot(page: Any, name: str) -> None:
    """Written to docs/screenshots only with DRAGOMAN_SCREENSHOTS=1 (``make screenshots``); a
    plain run writes to a temporary folder so it leaves the working tree clean."""
    folder = SCREENSHOTS if os.environ.get("DRAGOMAN_SCREENSHOTS") else Path(tempfile.gettempdir()) / "dragoman-shots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=False)


def _post(gw: Gateway, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/messages", content=body, timeout=30,
                      headers={"content-type": "application/json", "anthropic-version": "2023-06-01", **headers})


def test_a_claude_code_turn_reads_as_its_conversation(page: Any, admin_gateway: Gateway) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    turn = claude_code_session(4)[-1]
    headers = {k: v for k, v in turn.headers.items() if k.lower() not in ("content-type", "accept")}
    response = _post(admin_gateway, turn.raw(), {**headers, "x-api-key": admin_gateway.key})
    assert response.status_code == 200, response.text
    exchange_stored(admin_gateway, response.headers["request-id"], page)
    conversation = page.locator("#conversation")
    assert "24:" in conversation.locator("#conv-tools > summary").inner_text()
    assert conversation.locator(".turn").count() == len(turn.body["messages"])
    assert conversation.locator(".blk-tool-use").count() == 3 and conversation.locator(".blk-tool-result").count() == 3
    conversation.locator("#conv-tools > summary").click()
    assert conversation.locator("table.tools tr").count() == 25  # the header and one row per tool
    assert page.locator("#reply .turn").is_visible()
    assert "session" in page.locator("#summary").inner_text()
    page.locator("#conv-tools > summary").click()  # folded again: the turns in view
    shot(page, "exchange-conversation.png")


def test_a_rejected_request_says_so_with_the_envelope_the_model_and_the_key_tried(
        page: Any, admin_gateway: Gateway) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 900})
    bad_body = _post(admin_gateway, json.dumps({"model": "claude-sonnet-4-5", "messages": [
        {"role": "user", "content": "hi"}]}).encode(), {"x-api-key": admin_gateway.key})
    assert bad_body.status_code == 400
    exchange_stored(admin_gateway, bad_body.headers["request-id"], page)
    assert "Rejected: 400 invalid_request_error" in page.locator("#rejected").inner_text()
    assert "max_tokens" in page.locator("#rejected-envelope").inner_text()
    assert page.locator("#request-diff").count() == 0

    wrong_key = _post(admin_gateway, json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [
        {"role": "user", "content": "hi"}]}).encode(), {"x-api-key": WRONG_KEY})
    assert wrong_key.status_code == 401
    exchange_stored(admin_gateway, wrong_key.headers["request-id"], page)
    banner = page.locator("#rejected")
    assert banner.is_visible() and "Rejected: 401 authentication_error — Invalid API key" in banner.inner_text()
    envelope = json.loads(page.locator("#rejected-envelope").inner_text())
    assert envelope["error"]["type"] == "authentication_error" and envelope == wrong_key.json()
    assert "claude-sonnet-4-5" in page.locator("#model").inner_text()
    assert "dgm_wrongkey…PPp0" in page.locator("#key").inner_text()
    assert page.locator("#request-diff").count() == 0 and page.locator("#verdict").count() == 0
    shot(page, "exchange-rejected.png")


def test_an_edited_request_replays_and_the_comparison_highlights_what_differs(
        page: Any, admin_gateway: Gateway) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 900})
    request_id = messages_post(admin_gateway, {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
        {"role": "user", "content": "Name a colour."}]})
    exchange_stored(admin_gateway, request_id, page)
    page.locator("#replay-edit summary").click()
    area = page.locator("#replay-edit textarea")
    edited = json.loads(area.input_value())
    assert edited["messages"][0]["content"] == "Name a colour."
    area.fill(json.dumps({**edited, "messages": [{"role": "user", "content": "Name a fruit."}]}, indent=2))
    page.locator("#replay-edit-form input[type=submit]").click()
    page.wait_for_url(f"**/change/?compare={request_id}")
    diff = page.locator("#compare-diff")
    row = diff.locator('tr[data-path="content[0].text"]')
    assert "op-changed" in (row.get_attribute("class") or "")
    assert "Name a colour." in row.locator("td.old").inner_text() and "Name a fruit." in row.locator("td.new").inner_text()
    # Only the word that changed is marked (the mock quotes the prompt: 'said: "Name a colour.".').
    [marked_old] = row.locator("td.old mark").all_inner_texts()
    [marked_new] = row.locator("td.new mark").all_inner_texts()
    assert marked_old.startswith("colour.") and marked_new.startswith("fruit.")
    highlighted = row.locator("td.new mark").evaluate("e => getComputedStyle(e).backgroundColor")
    assert highlighted not in ("rgba(0, 0, 0, 0)", "transparent")
    assert page.locator('#compare-diff tr[data-path="model"]').count() == 0
    assert "Name a fruit." in page.locator("#conversation").inner_text()

    # A bad edit is a clear message on the page, the edit kept, never a 500.
    page.locator("#replay-edit summary").click()
    page.locator("#replay-edit textarea").fill('{"model": ')
    page.locator("#replay-edit-form input[type=submit]").click()
    assert "the edited request is not valid JSON" in page.locator("#replay-error").inner_text()
    assert page.locator("#replay-edit textarea").input_value() == '{"model": '
    page.go_back()
    page.locator("#compare").scroll_into_view_if_needed()
    shot(page, "exchange-replay.png")


def test_a_backend_stall_is_drawn_to_scale_with_the_pings_sent_meanwhile(page: Any, admin_gateway: Gateway) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 900})
    # The mock pauses 1.5 s after its first chunk; the e2e gateway pings after 0.4 s of silence.
    request_id = messages_post(admin_gateway, {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                                               "messages": [{"role": "user", "content": "[[mock:stall stall_ms=1500]]"}]})
    exchange_stored(admin_gateway, request_id, page)
    timeline = page.locator("#timeline")
    [stall] = timeline.locator(".tl-stall").all()
    seconds = float(stall.inner_text().removesuffix(" s"))
    assert 1.4 <= seconds < 3
    track = timeline.locator(".tl-track").bounding_box()
    box = stall.bounding_box()
    assert track is not None and box is not None and box["width"] > track["width"] * 0.4  # to scale
    pings = timeline.locator(".tl-ping")
    assert pings.count() >= 2
    assert "ping" in page.locator("#stalls").inner_text() and "with nothing from the backend" in page.locator(
        "#stalls").inner_text()
    page.locator("#timings").evaluate("e => e.scrollIntoView({block: 'start'})")
    shot(page, "exchange-timeline.png")
