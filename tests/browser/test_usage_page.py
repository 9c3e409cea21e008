"""Usage for a team in a real headless Chromium: two keys send requests through the gateway under
daphne (one of them a short Claude Code session, a cached-prompt reply and a backend failure), then
the usage page's chart, table and CSV and the second key's page show them as an operator sees them."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import SCREENSHOTS, messages_post
from tests.claude_code_session import claude_code_session
from tests.e2e.conftest import Gateway

WIDTH = 1440
TEAM_KEY = "dgm_usage_team_b_0123456789abcdefgh"
TEAM = "usage-team-b"
TEXT = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Say hi."}]}


def shot(page: Any, name: str) -> None:
    """The README's screenshots (DRAGOMAN_SCREENSHOTS=1); a plain run writes them to a temporary
    folder so it leaves the working tree clean."""
    folder = SCREENSHOTS if os.environ.get("DRAGOMAN_SCREENSHOTS") else Path(tempfile.gettempdir()) / "dragoman-shots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=False)


def _post(gw: Gateway, key: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.stream("POST", f"{gw.url}/v1/messages", content=body, timeout=30,
                      headers={"content-type": "application/json", "anthropic-version": "2023-06-01",
                               **(headers or {}), "x-api-key": key}) as response:
        response.read()
        return response


@pytest.fixture(scope="module")
def team_traffic(admin_gateway: Gateway) -> dict[str, Any]:
    """A second key (created as an operator would, then picked up by the gateway's config watcher)
    and the requests both keys send; returns what the second key sent."""
    admin_gateway.manage("shell", "--no-imports", "-c",
                         "from gateway.models import ApiKey\nfrom gateway.services import apikey_create\n"
                         f"ApiKey.objects.filter(name={TEAM!r}).exists() or apikey_create(name={TEAM!r}, "
                         f"secret={TEAM_KEY!r})")

    deadline = time.monotonic() + 10
    while (status := _post(admin_gateway, TEAM_KEY, json.dumps(TEXT).encode()).status_code) == 401:
        assert time.monotonic() < deadline, "the gateway never accepted the new key"
        time.sleep(0.1)
    assert status == 200
    requests, errors = 1, 0
    session = str(uuid.uuid4())
    for turn in claude_code_session(3, session_id=session):
        assert _post(admin_gateway, TEAM_KEY, turn.raw(), turn.headers).status_code == 200
        requests += 1
    cached = _post(admin_gateway, TEAM_KEY, json.dumps({**TEXT, "model": "mock-usage_cached"}).encode())
    assert cached.status_code == 200
    failed = _post(admin_gateway, TEAM_KEY, json.dumps({**TEXT, "model": "mock-http_500"}).encode())
    assert failed.status_code >= 500
    requests, errors = requests + 2, errors + 1
    for model in ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-sonnet-4-5"):
        messages_post(admin_gateway, {**TEXT, "model": model, "stream": True})
    return {"requests": requests, "errors": errors, "session": session, "failed": failed.headers["request-id"]}


def usage_open(page: Any, url: str, requests: int) -> Any:
    """Open the usage page once the recorder has written every request of the second key (it
    writes in batches); returns that key's row of the table."""
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    deadline = time.monotonic() + 15
    while True:
        page.goto(url)
        row = page.locator("#usage-table tbody tr", has=page.locator(f'a:text-is("{TEAM}")'))
        shown = row.locator("td").nth(1).inner_text() if row.count() else "0"
        if shown == str(requests) or time.monotonic() > deadline:
            assert shown == str(requests), f"the usage page shows {shown} requests of {TEAM}, not {requests}"
            return row
        time.sleep(0.2)


def test_the_usage_chart_stacks_both_keys_with_a_legend_and_exact_hover_numbers(
        page: Any, team_traffic: dict[str, Any]) -> None:
    row = usage_open(page, "/admin/inspector/exchange/usage/", team_traffic["requests"])
    assert row.locator("td").nth(2).inner_text() == str(team_traffic["errors"])
    bars = page.locator("#usage-chart rect.usage-bar")
    assert bars.count() >= 2
    legend = page.locator("#usage-legend").inner_text()
    assert "e2e" in legend and TEAM in legend
    titles = [bars.nth(i).locator("title").text_content() for i in range(bars.count())]
    team = [t for t in titles if t.startswith(f"{TEAM} · ")]
    assert team and " tokens (in " in team[0] and f"{team_traffic['requests']} requests, 1 errors" in team[0]
    # The bars are drawn: the second key's segment has a height on screen.
    box = bars.nth(titles.index(team[0])).bounding_box()
    assert box is not None and box["height"] > 1
    page.locator("#usage-chart").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")


def test_the_csv_download_has_the_pages_numbers(page: Any, team_traffic: dict[str, Any]) -> None:
    usage_open(page, "/admin/inspector/exchange/usage/?group=key&bucket=hour", team_traffic["requests"])
    with page.expect_download() as info:
        page.click("#usage-csv")
    download = info.value
    assert download.suggested_filename.startswith("dragoman-usage-key-hour-")
    lines = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    team = [line for line in lines if line["key"] == TEAM]
    assert sum(int(line["requests"]) for line in team) == team_traffic["requests"]
    assert sum(int(line["errors"]) for line in team) == team_traffic["errors"]
    assert sum(int(line["cache_read_tokens"]) for line in team) > 0  # the mock-usage_cached reply


def test_the_key_page_shows_its_models_errors_and_sessions(page: Any, team_traffic: dict[str, Any]) -> None:
    row = usage_open(page, "/admin/inspector/exchange/usage/", team_traffic["requests"])
    row.locator(f'a:text-is("{TEAM}")').click()
    page.wait_for_url(f"**/usage/key/{TEAM}/**")
    assert page.locator("#key-totals td").first.inner_text() == str(team_traffic["requests"])
    assert page.locator("#usage-chart rect.usage-bar").count() >= 1
    models = page.locator("#key-models").inner_text()
    assert "claude-sonnet-4-5" in models and "mock-usage_cached" in models and "mock-http_500" in models
    assert "claude-haiku-4-5" not in models  # the other key's model
    errors = page.locator("#key-errors")
    assert "mock-http_500" in errors.inner_text()
    sessions = page.locator("#key-sessions")
    assert team_traffic["session"] in sessions.inner_text()
    assert sessions.locator("td").nth(3).inner_text() == "3"
    shot(page, "usage-key.png")
    errors.locator("a").first.click()
    page.wait_for_url("**/change/")
    assert team_traffic["failed"] in page.content()


# A day of a team's traffic, stored as the writer stores exchanges (hours back from now, two keys).
HISTORY = """
from datetime import timedelta
from django.utils import timezone
from inspector.models import Exchange
now = timezone.now().replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
rows = []
for hour in range(1, 21):
    for team, scale in (("team-platform", 3), ("team-research", 2)):
        for n in range(scale):
            rows.append(Exchange(id=f"req_history_{team}_{hour}_{n}", created_at=now - timedelta(hours=hour),
                                 key_name=team, client_model="claude-sonnet-4-5", backend_name="vllm-big",
                                 status=200, stream=True, stop_reason="end_turn", ttft_ms=180.0 + 10 * hour,
                                 input_tokens=20000 + 1000 * ((hour * scale) % 7), output_tokens=400,
                                 cache_read_tokens=15000 if hour % 3 else 0))
Exchange.objects.bulk_create(rows, ignore_conflicts=True)
"""


def test_a_day_of_two_teams_is_a_chart_of_hours(page: Any, team_traffic: dict[str, Any],
                                                 admin_gateway: Gateway) -> None:
    """Rows stored for the last 20 hours: every hour has its bar, each team its colour."""
    admin_gateway.manage("shell", "--no-imports", "-c", HISTORY)
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    page.goto("/admin/inspector/exchange/usage/?range=24h&bucket=hour&group=key")
    bars = page.locator("#usage-chart rect.usage-bar")
    titles = [bars.nth(i).locator("title").text_content() or "" for i in range(bars.count())]
    platform = [t for t in titles if t.startswith("team-platform · ")]
    research = [t for t in titles if t.startswith("team-research · ")]
    assert len(platform) == 20 and len(research) == 20, titles
    assert all("3 requests" in t for t in platform) and all("2 requests" in t for t in research)
    legend = page.locator("#usage-legend").inner_text()
    assert "team-platform" in legend and "team-research" in legend
    row = page.locator("#usage-table tbody tr", has=page.locator('a:text-is("team-platform")'))
    assert row.locator("td").nth(1).inner_text() == "60"
    shot(page, "usage.png")
