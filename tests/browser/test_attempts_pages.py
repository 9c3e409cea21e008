"""An exchange that failed over, in a real headless Chromium at 1440 px: its list row carries the
marker (the backends tried in its title) without pushing the list off the screen, and its page
tables the attempts."""

from __future__ import annotations

import uuid
from typing import Any

from tests.browser.conftest import exchange_stored
from tests.e2e.conftest import Gateway

WIDTH = 1440
LONG_MODEL = "claude-sonnet-4-5-20250929-experimental-extended-context-preview"

# The running gateway's own writer path builds the row (ExchangeRecord.as_model_kwargs), in its
# database; no request can fail over there until routes have several targets.
_STORE = """
from inspector.models import Exchange
from inspector.recorder import ExchangeRecord
record = ExchangeRecord(id={id!r}, key_name="tester", client_model={model!r}, backend_name="vllm-spare-backend-01",
                        upstream_model={model!r}, status=200)
record.attempts = [
    {{"backend": "vllm-east-backend-01", "upstream_model": {model!r}, "group": "primary", "weight": 1,
      "reason": "affinity", "outcome": "failed", "status": 503, "error": "<b>overloaded</b>",
      "error_type": "overloaded_error", "started_ms": 1.0, "ended_ms": 40.0}},
    {{"backend": "vllm-west-backend-01", "upstream_model": {model!r}, "group": "primary", "weight": 1,
      "reason": "least in-flight", "outcome": "gave up", "status": None, "error": "connect timeout",
      "error_type": "timeout", "started_ms": 41.0, "ended_ms": 1041.0}},
    {{"backend": "vllm-spare-backend-01", "upstream_model": {model!r}, "group": "spare", "weight": 2,
      "reason": "fallback", "outcome": "ok", "status": 200, "error": "", "error_type": "",
      "started_ms": 1042.0, "ended_ms": 1300.0}},
]
record.timings = {{"upstream_connected": 1.0, "upstream_done": 1300.0, "finished": 1302.0}}
Exchange.objects.create(**record.as_model_kwargs())
"""


def test_a_row_that_failed_over_is_marked_within_1440_px_and_its_page_tables_the_attempts(
        page: Any, admin_gateway: Gateway) -> None:
    request_id = f"req_failover_{uuid.uuid4().hex[:12]}"
    admin_gateway.manage("shell", "-c", _STORE.format(id=request_id, model=LONG_MODEL))
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto("/admin/inspector/exchange/?failed_over=yes")
    marker = page.locator("#result_list tbody tr", has=page.locator(f"a[href*='{request_id.replace('_', '_5F')}']")
                          ).locator(".failover")
    assert marker.inner_text() == "↻3" and marker.is_visible()
    assert "vllm-east-backend-01 failed 503 → vllm-west-backend-01 gave up" in (marker.get_attribute("title") or "")
    box = marker.bounding_box()
    assert box and box["x"] + box["width"] <= WIDTH
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
        f"the list is {page.evaluate('document.documentElement.scrollWidth')} px wide at {WIDTH}"
    exchange_stored(admin_gateway, request_id, page)
    rows = page.locator("#attempts tbody tr")
    assert rows.count() == 3
    assert rows.nth(0).locator(".attempt-error").inner_text() == "overloaded_error: <b>overloaded</b>"
    assert "fallback" in rows.nth(2).inner_text() and "ok" in rows.nth(2).locator(".outcome").inner_text()
    assert page.locator("#timeline-attempts .tl-attempt").count() == 3
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
