"""Sessions: a replayed Claude Code session (10 main turns, a Task subagent of 3 turns after the
third, an edit of system[2].text at char 4,102 on the seventh) sent through the gateway, then
read back as a thread (inspector/sessions.py) and on the admin's session pages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.admin.utils import quote
from django.template.loader import render_to_string
from django.test import Client

from inspector import admin_sessions
from inspector.models import Exchange
from inspector.recorder import recorder
from inspector.sessions import session_panel_context, session_thread, sessions_recent
from inspector.storage import exchanges_load
from inspector.turns import turn_change
from tests.claude_code_session import Turn, claude_code_session
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import sse_chunks, sse_response

pytestmark = pytest.mark.django_db(transaction=True)

SESSION = "5e55f0a1-0000-4000-8000-000000000001"
MAIN, SUB = "agent-main-0001", "agent-explore-0002"


async def _drain(parts: Any) -> bytes:
    return b"".join([part async for part in parts])


def turn_send(turn: Turn, key: str = KEY) -> str:
    headers = {k: v for k, v in turn.headers.items() if k.lower() != "content-type"}
    response = Client().post("/v1/messages", turn.raw(), content_type="application/json",
                             headers={**headers, "x-api-key": key})
    if response.streaming:
        async_to_sync(_drain)(response.streaming_content)  # type: ignore[attr-defined]
    assert response.status_code == (200 if key == KEY else 401)
    return str(response["request-id"])


@pytest.fixture
def session_ids(gateway_setup: str, upstream: Upstream) -> list[str]:
    """The request ids of the replayed session, in the order Claude Code sent them."""
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "On it."}]))
    ids = [turn_send(turn) for turn in claude_code_session(10, session_id=SESSION, subagent_at=3, edit_at=7)]
    assert recorder.flush(10)
    return ids


def test_the_thread_has_the_main_turns_in_order_and_the_subagent_under_the_turn_that_spawned_it(
        session_ids: list[str]) -> None:
    thread = session_thread(SESSION)
    assert thread is not None and thread.agent_count == 2 and thread.totals.turns == 13
    (main,) = thread.agents
    assert main.agent_id == MAIN and [t.number for t in main.turns] == list(range(1, 11))
    assert [t.exchange.id for t in main.turns] == session_ids[:3] + session_ids[6:]
    spawner = main.turns[2]
    (sub,) = spawner.subagents
    assert sub.agent_id == SUB and sub.parent_agent_id == MAIN and len(sub.turns) == 3
    assert sub.spawned_by_task  # the main agent's next request re-sends the Task call
    assert [t.exchange.id for t in sub.turns] == session_ids[3:6]
    assert all(not t.subagents for t in main.turns if t is not spawner)
    assert sub.totals.turns == 3 and main.totals.turns == 10
    assert thread.totals.input_tokens == sum(a.totals.input_tokens for a in (main, sub)) > 0


def test_every_turn_is_appended_except_the_edit_which_breaks_the_prefix_for_client_and_backend(
        session_ids: list[str]) -> None:
    thread = session_thread(SESSION)
    assert thread is not None
    main, sub = thread.agents[0], thread.agents[0].turns[2].subagents[0]
    kinds = [t.client.kind if t.client else None for t in main.turns]
    assert kinds == ["first", *["appended"] * 5, "prefix_broken", *["appended"] * 3]
    edited = main.turns[6].client
    assert edited is not None and edited.broken is not None
    assert (edited.broken.path, edited.broken.char) == ("system[2].text", 4102)
    # The backend (OpenAI Chat) got the system prompt as its first message: broken there too.
    backend = main.turns[6].backend
    assert backend is not None and backend.broken is not None
    assert backend.broken.path.startswith("messages[0].content")
    assert all(t.backend is not None and t.backend.kind in ("first", "appended") for t in main.turns[7:])
    assert [t.client.kind if t.client else None for t in sub.turns] == ["first", "appended", "appended"]
    assert thread.totals.prefix_breaks == 1


def test_the_session_page_shows_the_thread_the_break_and_links(staff: Client, session_ids: list[str],
                                                              django_assert_max_num_queries: Any) -> None:
    with django_assert_max_num_queries(12):
        response = staff.get(f"/admin/inspector/exchange/sessions/{SESSION}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('<tr class="turn') == 13
    assert "prefix broken at system[2].text, char 4,102" in page
    assert f"/admin/inspector/exchange/?session_id={SESSION}" in page
    for request_id in session_ids:
        assert f"/admin/inspector/exchange/{quote(request_id)}/change/" in page
    nested = page.split('class="agent subagent"', 1)[1]
    assert SUB in nested.split("</h3>", 1)[0] and "(Task tool)" in nested.split("</h3>", 1)[0]
    assert "13 turns by 2 agents" in page


def test_an_unknown_or_overlong_session_gets_a_clear_message_not_an_error(staff: Client, gateway_setup: str) -> None:
    missing = staff.get("/admin/inspector/exchange/sessions/no-such-session/")
    assert missing.status_code == 404 and "No exchange recorded for session no-such-session" in missing.content.decode()
    long = staff.get(f"/admin/inspector/exchange/sessions/{'x' * 300}/")
    assert long.status_code == 400 and "at most 100 characters" in long.content.decode()


def test_a_session_longer_than_the_cap_shows_its_first_turns_with_a_notice(
        staff: Client, session_ids: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    thread = session_thread(SESSION, turns_max=5)
    assert thread is not None and thread.capped and thread.totals.turns == 5
    monkeypatch.setattr(admin_sessions, "TURNS_MAX", 5)
    page = staff.get(f"/admin/inspector/exchange/sessions/{SESSION}/").content.decode()
    assert 'id="session-capped"' in page and "the first 5 are shown" in page
    assert page.count('<tr class="turn') == 5


def test_the_sessions_index_lists_the_session_with_its_counts(staff: Client, session_ids: list[str],
                                                             django_assert_max_num_queries: Any) -> None:
    (row,) = sessions_recent()
    assert row["session_id"] == SESSION and row["turns"] == 13 and row["agents"] == 2 and row["errors"] == 0
    with django_assert_max_num_queries(6):
        page = staff.get("/admin/inspector/exchange/sessions/").content.decode()
    assert f'href="/admin/inspector/exchange/sessions/{SESSION}/"' in page


def test_the_exchange_panel_names_the_session_agent_previous_turn_and_the_change(session_ids: list[str]) -> None:
    exchange = Exchange.objects.get(pk=session_ids[9])  # the main agent's seventh turn: the edit
    exchanges_load([exchange])
    panel = session_panel_context(exchange)
    assert panel is not None
    assert panel["session_url"] == f"/admin/inspector/exchange/sessions/{SESSION}/"
    assert panel["agent_id"] == MAIN and panel["turn_number"] == 7
    assert panel["previous_id"] == session_ids[8] and panel["next_id"] == session_ids[10]
    assert panel["client"].label() == "prefix broken at system[2].text, char 4,102; +2 messages"
    first_sub = Exchange.objects.get(pk=session_ids[3])
    exchanges_load([first_sub])
    sub_panel = session_panel_context(first_sub)
    assert sub_panel is not None and sub_panel["parent_agent_id"] == MAIN and sub_panel["client"].kind == "first"


def test_an_exchange_without_a_session_has_no_panel(gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "Hi"}]))
    body = {"model": "test-model", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    response = Client().post("/v1/messages", json.dumps(body), content_type="application/json",
                             headers={"x-api-key": KEY})
    async_to_sync(_drain)(response.streaming_content)  # type: ignore[attr-defined]
    assert recorder.flush(10)
    exchange = Exchange.objects.get(pk=response["request-id"])
    assert session_panel_context(exchange) is None


def test_a_break_only_the_backend_saw_is_shown_beside_the_clients_appended_messages() -> None:
    """A gateway rewrite can break the prefix the client kept: both lines are shown."""
    client = turn_change({"messages": [{"role": "user", "content": "hi"}]},
                         {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    backend = turn_change({"messages": [{"role": "system", "content": "Note: turn 1."}]},
                          {"messages": [{"role": "system", "content": "Note: turn 2."},
                                        {"role": "assistant", "content": "yo"}]})
    html = render_to_string("admin/inspector/exchange/_session_change.html", {"change": client, "backend": backend})
    assert "client: +1 message (+" in html
    assert "backend: prefix broken at messages[0].content, char 11" in html
    assert "<del>1</del><ins>2</ins>." in html


def test_the_backends_line_is_left_out_when_it_tells_nothing_more() -> None:
    grown = turn_change({"messages": [{"role": "user", "content": "hi"}]},
                        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    html = render_to_string("admin/inspector/exchange/_session_change.html", {"change": grown, "backend": grown})
    assert "+1 message" in html and "backend:" not in html and "client:" not in html


def test_the_exchange_panel_renders_links_to_the_session_and_the_neighbouring_turns(session_ids: list[str]) -> None:
    exchange = Exchange.objects.get(pk=session_ids[9])
    exchanges_load([exchange])
    html = render_to_string("admin/inspector/exchange/_session_panel.html",
                            {"session_panel": session_panel_context(exchange)})
    assert f'href="/admin/inspector/exchange/sessions/{SESSION}/"' in html
    assert f'/admin/inspector/exchange/{quote(session_ids[8])}/change/" id="session-previous"' in html
    assert f'/admin/inspector/exchange/{quote(session_ids[10])}/change/" id="session-next"' in html
    assert "prefix broken at system[2].text, char 4,102" in html


def test_the_exchange_page_shows_its_session_panel(staff: Client, session_ids: list[str]) -> None:
    page = staff.get(f"/admin/inspector/exchange/{quote(session_ids[9])}/change/").content.decode()
    panel = page.split('id="session-panel"', 1)[1]
    assert f'/admin/inspector/exchange/{quote(session_ids[8])}/change/" id="session-previous"' in panel
    assert "prefix broken at system[2].text, char 4,102" in panel


def exchange_row(request_id: str, second: int, agent: str, parent: str = "", **columns: Any) -> Exchange:
    """A stored exchange of session "s-rows" (metadata capture: no bodies), ``second`` s after noon."""
    from datetime import UTC, datetime

    return Exchange.objects.create(id=request_id, created_at=datetime(2026, 1, 1, 12, 0, second, tzinfo=UTC),
                                   session_id="s-rows", agent_id=agent, parent_agent_id=parent,
                                   capture="metadata", **{"status": 200, **columns})


def test_subagents_nest_at_every_depth_and_parallel_ones_sit_under_the_same_turn(transactional_db: None) -> None:
    exchange_row("r1", 1, "main")
    exchange_row("r2", 2, "main")
    exchange_row("a1", 3, "explore-a", "main")
    exchange_row("b1", 4, "explore-b", "main")
    exchange_row("c1", 5, "deep", "explore-a")
    exchange_row("r3", 6, "main", status=529, error_type="overloaded_error")
    thread = session_thread("s-rows")
    assert thread is not None and [a.agent_id for a in thread.agents] == ["main"]
    main = thread.agents[0]
    assert [s.agent_id for s in main.turns[1].subagents] == ["explore-a", "explore-b"]
    assert [s.agent_id for s in main.turns[1].subagents[0].turns[0].subagents] == ["deep"]
    assert thread.totals.turns == 6 and thread.totals.errors == 1 and main.totals.errors == 1
    assert main.turns[0].client is not None and main.turns[0].client.kind == "unknown"
    assert "not recorded" in main.turns[0].client.label()


def test_a_main_agent_without_an_id_still_gets_its_subagents_and_a_parent_cycle_is_cut(
        transactional_db: None) -> None:
    exchange_row("r1", 1, "")
    exchange_row("a1", 2, "explore", "agent-never-seen")
    exchange_row("x1", 3, "x", "y")
    exchange_row("y1", 4, "y", "x")
    thread = session_thread("s-rows")
    assert thread is not None
    roots = {a.agent_id: a for a in thread.agents}
    assert set(roots) == {"", "x", "y"}
    assert [s.agent_id for s in roots[""].turns[0].subagents] == ["explore"]


def test_the_session_page_of_rows_without_bodies_renders(staff: Client) -> None:
    exchange_row("r1", 1, "main")
    exchange_row("a1", 2, "sub", "main")
    page = staff.get("/admin/inspector/exchange/sessions/s-rows/")
    assert page.status_code == 200 and "not compared: this request" in page.content.decode()


def test_a_rejected_turn_is_in_the_thread_and_the_retry_compares_with_what_the_backend_last_got(
        gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: sse_response(sse_chunks([{"content": "On it."}]))
    first, second = claude_code_session(2, session_id="s-retry")
    ids = [turn_send(first), turn_send(second, key="dgm_wrong_key_0000000000000000"), turn_send(second)]
    assert recorder.flush(10)
    thread = session_thread("s-retry")
    assert thread is not None and thread.totals.errors == 1
    turns = thread.agents[0].turns
    assert [t.exchange.id for t in turns] == ids
    assert [t.client.kind if t.client else None for t in turns] == ["first", "appended", "same"]
    assert turns[1].failed and turns[1].backend is None  # it never reached a backend
    assert turns[2].backend is not None and turns[2].backend.kind == "appended"
    exchange = Exchange.objects.get(pk=ids[2])
    exchanges_load([exchange])
    panel = session_panel_context(exchange)
    assert panel is not None and panel["previous_id"] == ids[1]
    assert panel["client"].kind == "same" and panel["backend"].kind == "appended"
