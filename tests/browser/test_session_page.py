"""A Claude Code session in a real headless Chromium: a replayed session (10 main turns, a Task
subagent of 3 turns after the third, an edit of system[2].text at char 4,102 on the seventh) sent
through the gateway under daphne, then read on its session page as an operator would."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import SCREENSHOTS
from tests.claude_code_session import claude_code_session
from tests.e2e.conftest import Gateway

WIDTH = 1440
SUB = "agent-explore-0002"


def shot(page: Any, name: str) -> None:
    """The README's screenshots (DRAGOMAN_SCREENSHOTS=1); a plain run writes them to a temporary
    folder so it leaves the working tree clean."""
    folder = SCREENSHOTS if os.environ.get("DRAGOMAN_SCREENSHOTS") else Path(tempfile.gettempdir()) / "dragoman-shots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=False)


@pytest.fixture(scope="module")
def session_id(admin_gateway: Gateway) -> str:
    """One replayed session per run (its own id, so runs against one database never mix)."""
    sid = str(uuid.uuid4())
    with httpx.Client(base_url=admin_gateway.url, timeout=30) as client:
        for turn in claude_code_session(10, session_id=sid, subagent_at=3, edit_at=7):
            headers = {**turn.headers, "x-api-key": admin_gateway.key}
            with client.stream("POST", "/v1/messages", content=turn.raw(), headers=headers) as response:
                response.read()
                assert response.status_code == 200, response.text
    return sid


def session_open(page: Any, session_id: str, turns: int) -> None:
    """Open the session page once the recorder has written all its turns (it writes in batches)."""
    page.set_viewport_size({"width": WIDTH, "height": 900})
    deadline = time.monotonic() + 15
    while True:
        response = page.goto(f"/admin/inspector/exchange/sessions/{session_id}/")
        shown = page.locator("tr.turn").count() if response.status == 200 else 0
        if shown == turns or time.monotonic() > deadline:
            assert shown == turns, f"the session page shows {shown} turns, not {turns}"
            return
        time.sleep(0.1)


def test_the_session_page_shows_ten_main_turns_with_the_subagent_nested_under_the_third(
        page: Any, session_id: str) -> None:
    session_open(page, session_id, 13)
    assert "13 turns by 2 agents" in page.locator("#session-turns").inner_text()
    main = page.locator("#session-thread > .agent")
    assert main.count() == 1
    assert main.locator(":scope > table > tbody > tr.turn").count() == 10
    sub = page.locator(".agent.subagent")
    assert sub.count() == 1 and SUB in sub.locator("h3").inner_text()
    assert sub.locator("tr.turn").count() == 3
    spawner = page.evaluate("document.querySelector('tr.nested').previousElementSibling.dataset.number")
    assert spawner == "3"
    # Nested: the subagent's rows start to the right of the main agent's.
    main_left = main.locator(":scope > table > tbody > tr.turn").first.bounding_box()["x"]
    assert sub.locator("tr.turn").first.bounding_box()["x"] > main_left + 20
    assert "session_id=" in (page.locator("#session-list-link").get_attribute("href") or "")
    shot(page, "session.png")


def test_the_edited_turn_is_flagged_in_red_as_a_prefix_break_at_system_2_text_char_4102(
        page: Any, session_id: str) -> None:
    session_open(page, session_id, 13)
    broken = page.locator("tr.turn.broken")
    assert broken.count() == 1 and broken.get_attribute("data-number") == "7"
    client = broken.locator('.tc[data-side="client"]')
    assert client.inner_text().startswith("prefix broken at system[2].text, char 4,102")
    assert client.evaluate("e => getComputedStyle(e).color") == "rgb(207, 34, 46)"
    assert "prefix broken at messages[0].content" in broken.locator('.tc[data-side="backend"]').inner_text()
    assert broken.locator("del").count() >= 1 and broken.locator("ins").count() >= 1
    appended = page.locator('tr.turn:not(.broken) .tc-appended[data-side="client"]')
    assert appended.count() == 10  # 13 turns, less two agents' first and the edit: +2 messages, in grey
    assert appended.first.inner_text().startswith("+2 messages")
    assert "1 turn broke the prompt prefix" in page.locator("#session-problems").inner_text()
    broken.evaluate("e => e.scrollIntoView({block: 'center'})")
    shot(page, "session-prefix-break.png")


def test_the_sessions_index_links_to_the_session(page: Any, session_id: str) -> None:
    session_open(page, session_id, 13)
    page.goto("/admin/inspector/exchange/sessions/")
    row = page.locator(f'#sessions-table tr[data-session="{session_id}"]')
    assert row.locator("td").nth(3).inner_text() == "13" and row.locator("td").nth(4).inner_text() == "2"
    shot(page, "sessions.png")
    row.locator("a").click()
    page.wait_for_url(f"**/sessions/{session_id}/")
