"""Finding a request in the exchange list, and the live tail, in a real headless Chromium at the
width of an operator's laptop (1440 px): by the msg_… id an SDK user reports, by a word of the
prompt, by key; every column on screen; error rows marked."""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import SCREENSHOTS, exchange_stored
from tests.e2e.conftest import Gateway

WIDTH = 1440
LONG_MODEL = "claude-sonnet-4-5-20250929-experimental-extended-context-preview"
LONG_KEY_NAME = "platform-team-continuous-integration-nightly-evaluation-runner"
LONG_KEY = "dgm_long_key_name_0123456789abcdefghij"


def shot(page: Any, name: str) -> None:
    """The README's screenshots when DRAGOMAN_SCREENSHOTS is set; a temporary folder otherwise,
    so a plain test run leaves the working tree clean."""
    folder = SCREENSHOTS if os.environ.get("DRAGOMAN_SCREENSHOTS") else Path(tempfile.gettempdir()) / "dragoman-shots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=False)


def send(gw: Gateway, body: dict[str, Any], *, key: str | None = None, path: str = "/v1/messages",
         method: str = "POST", session: str = "") -> tuple[str, int, Any]:
    """One request through the gateway (``session``: as Claude Code sends it): its request id,
    status and JSON body (None for a stream)."""
    headers = {"x-api-key": key or gw.key, "anthropic-version": "2023-06-01"}
    if session:
        headers["x-claude-code-session-id"] = session
    with httpx.stream(method, f"{gw.url}{path}", json=body if method == "POST" else None, headers=headers,
                      timeout=30) as response:
        raw = response.read()
    decoded = None if body.get("stream") else httpx.Response(response.status_code, content=raw).json()
    return response.headers["request-id"], response.status_code, decoded


def prompt(text: str, *, model: str = "claude-sonnet-4-5", stream: bool = False) -> dict[str, Any]:
    return {"model": model, "max_tokens": 100, "stream": stream, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def wide(page: Any) -> Any:
    """The logged-in admin page at 1440 px (the navigation sidebar closed, as the fixture sets it)."""
    page.set_viewport_size({"width": WIDTH, "height": 900})
    return page


@pytest.fixture(scope="module")
def long_key(admin_gateway: Gateway) -> str:
    """A key with a long name (the widest a key column gets), accepted by the running gateway."""
    admin_gateway.manage("shell", "-c", "from gateway.services import apikey_create; "
                         f"apikey_create(name={LONG_KEY_NAME!r}, secret={LONG_KEY!r})")
    deadline = time.monotonic() + 15  # the gateway notices the new key at its next config check
    while True:
        _, status, _ = send(admin_gateway, prompt("Say hello."), key=LONG_KEY)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, "the gateway never accepted the new key"
            return LONG_KEY
        time.sleep(0.2)


def result_ids(page: Any) -> list[str]:
    """The request ids of the list's rows (each row's time links to its exchange page)."""
    hrefs = page.locator("#result_list tbody tr th a")
    return [h.split("/exchange/", 1)[1].split("/change/", 1)[0].replace("_5F", "_")
            for h in hrefs.evaluate_all("links => links.map(a => a.getAttribute('href'))")]


def choose(page: Any, choice: str) -> None:
    """Follow a choice of the filter sidebar (and wait for the list it leads to)."""
    href = page.locator("#changelist-filter").get_by_role("link", name=choice, exact=True).get_attribute("href")
    page.goto(f"/admin/inspector/exchange/{href}")


def search(page: Any, text: str) -> None:
    page.goto("/admin/inspector/exchange/")
    page.fill("#searchbar", text)
    page.press("#searchbar", "Enter")
    page.wait_for_url("**/exchange/?q=**")


def test_the_msg_id_an_sdk_user_reports_finds_its_exchange(wide: Any, admin_gateway: Gateway) -> None:
    request_id, status, message = send(admin_gateway, prompt("What is the capital of Portugal?"))
    assert status == 200 and message["id"].startswith("msg_")
    exchange_stored(admin_gateway, request_id, wide)
    search(wide, message["id"])
    assert result_ids(wide) == [request_id]
    assert "1 exchange" in wide.locator("#changelist-form .paginator").inner_text()


def test_a_word_of_the_prompt_finds_its_exchange(wide: Any, admin_gateway: Gateway) -> None:
    word = f"quokka{uuid.uuid4().hex[:8]}"
    request_id, status, _ = send(admin_gateway, prompt(f"Tell me about the {word} of Rottnest Island.", stream=True))
    assert status == 200
    other_id, _, _ = send(admin_gateway, prompt("Tell me about the wombats of Tasmania."))
    exchange_stored(admin_gateway, other_id, wide)
    exchange_stored(admin_gateway, request_id, wide)
    search(wide, word)
    assert result_ids(wide) == [request_id]


def test_the_key_filter_keeps_that_keys_exchanges_and_no_key_keeps_the_rejected(
        wide: Any, admin_gateway: Gateway, long_key: str) -> None:
    mine, _, _ = send(admin_gateway, prompt("Filter me by key."), key=long_key)
    theirs, _, _ = send(admin_gateway, prompt("Not this key."))
    rejected, status, _ = send(admin_gateway, prompt("Let me in."), key="sk-ant-api03-wrong-key-000000Q2Z9")
    assert status == 401
    for request_id in (mine, theirs, rejected):
        exchange_stored(admin_gateway, request_id, wide)
    wide.goto("/admin/inspector/exchange/")
    choose(wide, LONG_KEY_NAME)
    ids = result_ids(wide)
    assert mine in ids and theirs not in ids and rejected not in ids
    choose(wide, "no key (rejected)")
    ids = result_ids(wide)
    assert rejected in ids and mine not in ids and theirs not in ids
    row = wide.locator("#result_list tbody tr", has=wide.locator(f"a[href*='{rejected.replace('_', '_5F')}']"))
    assert "401 authentication_error" in row.inner_text() and "…" in row.locator(".key").inner_text()


def test_the_list_fits_1440_px_with_long_values_and_marks_error_rows(
        wide: Any, admin_gateway: Gateway, long_key: str) -> None:
    send(admin_gateway, prompt("A long model name, a long key name.", model=LONG_MODEL), key=long_key)
    send(admin_gateway, prompt("[[mock:drop_mid_stream]] Tell me a story.", stream=True))
    send(admin_gateway, prompt("[[mock:http_500]] Fail."))
    send(admin_gateway, {}, path="/v1/nope", method="GET")
    send(admin_gateway, prompt("How many tokens is this?"), path="/v1/messages/count_tokens")
    session = str(uuid.uuid4())
    last, _, _ = send(admin_gateway, prompt("[[mock:tool_call]] Run ls.", stream=True), session=session)
    exchange_stored(admin_gateway, last, wide)
    wide.goto("/admin/inspector/exchange/")
    text = wide.locator("#result_list").inner_text()
    assert LONG_KEY_NAME[:8] in text and "count_tokens" in text and "GET /v1/nope" in text
    assert "claude-sonnet-4-5 → mock-vllm" in text and wide.locator("#recorder-stats").is_visible()
    assert wide.locator("#result_list a.session", has_text=session[:8]).count() == 1
    assert wide.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
        f"the list is {wide.evaluate('document.documentElement.scrollWidth')} px wide at {WIDTH}"
    # Every column on screen, the time on one line.
    for header in ("TTFT", "overhead", "rw", "valid", "session"):
        box = wide.locator("#result_list thead th", has_text=header).first.bounding_box()
        assert box and box["x"] + box["width"] <= WIDTH, f"{header} is off-screen"
    lines = wide.locator("#result_list tbody tr th span").evaluate_all("spans => spans.map(s => s.getClientRects().length)")
    assert lines and set(lines) == {1}, "the time wraps"
    # A 500 and a stream that ended with an error are error rows; a success is not.
    bad = wide.locator("#result_list tbody tr:has(.status-bad)")
    assert bad.filter(has_text="500").count() >= 1 and bad.filter(has_text="200 · ended with").count() >= 1
    ok_row = wide.locator("#result_list tbody tr:has(.status-ok)").first
    assert ok_row.evaluate("r => getComputedStyle(r.querySelector('td')).backgroundColor") != \
        bad.first.evaluate("r => getComputedStyle(r.querySelector('td')).backgroundColor")
    shot(wide, "exchange-list.png")


def test_a_threshold_that_is_not_a_number_says_so_and_shows_the_list(wide: Any, admin_gateway: Gateway) -> None:
    response = wide.goto("/admin/inspector/exchange/?ttft_over=fast")
    assert response.status == 200
    assert "not a number of milliseconds" in wide.locator(".messagelist").inner_text()


def test_the_live_tail_shows_new_requests_with_the_lists_columns_and_can_pause(
        wide: Any, admin_gateway: Gateway) -> None:
    wide.goto("/admin/inspector/exchange/live/")
    wide.wait_for_function("document.getElementById('live-status').textContent === 'live'")

    def sent(body: dict[str, Any]) -> str:
        ids: list[str] = []
        sender = threading.Thread(target=lambda: ids.append(send(admin_gateway, body)[0]))
        sender.start()
        sender.join(30)
        assert ids, "the request did not complete"
        return ids[0]

    ok = sent(prompt("Count to three.", stream=True))
    row = wide.locator(f'#live-rows tr[data-id="{ok}"]')
    row.wait_for()
    wide.wait_for_function(f"document.querySelector('#live-rows tr[data-id=\"{ok}\"]').classList.contains('done')")
    assert "claude-sonnet-4-5 → mock-vllm" in row.inner_text()
    failed = sent(prompt("[[mock:http_500]] Fail."))
    bad = wide.locator(f'#live-rows tr[data-id="{failed}"]')
    bad.wait_for()
    wide.wait_for_function(f"document.querySelector('#live-rows tr[data-id=\"{failed}\"]').classList.contains('done')")
    assert "error" in (bad.get_attribute("class") or "") and "error" not in (row.get_attribute("class") or "")
    assert bad.locator("td").first.evaluate("c => getComputedStyle(c).backgroundColor") != \
        row.locator("td").first.evaluate("c => getComputedStyle(c).backgroundColor")
    # Errors only hides the success; the time reads as in the stored list.
    wide.check("#live-errors")
    assert row.is_hidden() and bad.is_visible()
    wide.uncheck("#live-errors")
    assert len(row.locator("td").first.inner_text()) == len("02:35:10")
    assert wide.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(wide, "live-tail.png")
    # Paused, new summaries wait; resumed, they appear.
    wide.click("#live-pause")
    held = sent(prompt("Held while paused."))
    wide.wait_for_function("document.getElementById('live-waiting').textContent.indexOf('waiting') >= 0")
    assert wide.locator(f'#live-rows tr[data-id="{held}"]').count() == 0
    wide.click("#live-pause")
    wide.locator(f'#live-rows tr[data-id="{held}"]').wait_for()
