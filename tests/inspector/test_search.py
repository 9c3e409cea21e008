"""The list's search box: whatever an operator has at hand finds the exchange, on SQLite and on
PostgreSQL (full-text over the turn's words there)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from inspector import search
from inspector.models import Exchange
from inspector.search import exchanges_search

pytestmark = pytest.mark.django_db


@pytest.fixture
def exchanges() -> dict[str, Exchange]:
    now = timezone.now()

    def make(id: str, **columns: Any) -> Exchange:
        return Exchange.objects.create(id=id, created_at=now, **columns)

    return {
        "chat": make("req_0a1b2c3d4e5f", message_id="msg_01XFDUDYJgAACzvnptvVoYEL", key_name="team-alpha",
                     key_hint="dgm_al…wxyz", client_model="claude-sonnet-4-5", backend_name="vllm-big",
                     upstream_model="Qwen/Qwen3-235B", path="/v1/messages", status=200,
                     search_text="Please refactor the tokenizer module\nHere is the refactored tokenizer."),
        "rejected": make("req_9f8e7d6c5b4a", key_hint="sk-ant-…9Q2Z", path="/v1/messages", status=401,
                         error_type="authentication_error", error_message="invalid x-api-key",
                         search_text="invalid x-api-key"),
        "count": make("req_77aa88bb99cc", key_name="ci-runner", client_model="claude-haiku-4-5",
                      backend_name="anthropic", path="/v1/messages/count_tokens", endpoint="messages/count_tokens",
                      session_id="5e0c1d2a-aaaa-bbbb-cccc-000000000001", status=200,
                      search_text="What is the weather in Lisbon today"),
    }


def found(text: str) -> set[str]:
    return set(exchanges_search(Exchange.objects.all(), text=text).values_list("id", flat=True))


@pytest.mark.parametrize(("text", "expected"), [
    ("req_0a1b2c3d4e5f", "chat"),               # the request id, whole
    ("7d6c5b", "rejected"),                      # any part of it
    ("msg_01XFDUDYJgAACzvnptvVoYEL", "chat"),   # the message id an SDK user sees
    ("team-al", "chat"),                         # a key name's prefix
    ("9Q2Z", "rejected"),                        # the hint of a key that was refused
    ("haiku", "count"),                          # part of a client model
    ("Qwen3-235B", "chat"),                      # the upstream model
    ("count_tokens", "count"),                   # the path
    ("invalid x-api", "rejected"),               # the error's text
    ("5e0c1d2a-aaaa-bbbb-cccc-000000000001", "count"),  # a session id
])
def test_each_way_of_naming_an_exchange_finds_it_alone(exchanges: dict[str, Exchange], text: str,
                                                       expected: str) -> None:
    assert found(text) == {exchanges[expected].id}


@pytest.mark.parametrize("common", [1, 10**6], ids=["common-words-plan", "rare-words-plan"])
def test_a_word_of_the_prompt_or_the_reply_finds_the_exchange(exchanges: dict[str, Exchange], common: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "COMMON_WORDS", common)  # PostgreSQL's two plans give the same answer
    assert found("tokenizer") == {exchanges["chat"].id}
    assert found("Lisbon") == {exchanges["count"].id}
    assert found("refactor") == {exchanges["chat"].id}
    assert found("9Q2Z") == {exchanges["rejected"].id}


def test_words_match_on_postgresql_in_any_order_and_on_sqlite_as_written(exchanges: dict[str, Exchange]) -> None:
    if connection.vendor == "postgresql":
        assert found("Lisbon weather") == {exchanges["count"].id}
    else:
        assert found("weather in Lisbon") == {exchanges["count"].id}
        assert found("Lisbon weather") == set()


def test_text_found_nowhere_finds_nothing_and_an_empty_box_finds_everything(exchanges: dict[str, Exchange]) -> None:
    assert found("no-such-thing-anywhere") == set()
    assert found("  ") == {e.id for e in exchanges.values()}


def test_a_nul_in_the_box_is_ignored_rather_than_refused_by_the_database(exchanges: dict[str, Exchange]) -> None:
    assert found("tokenizer\x00") == {exchanges["chat"].id}


def test_the_search_stays_within_the_filtered_queryset(exchanges: dict[str, Exchange]) -> None:
    errors = Exchange.objects.filter(status__gte=400)
    assert set(exchanges_search(errors, text="req_").values_list("id", flat=True)) == {exchanges["rejected"].id}


def test_postgresql_answers_the_words_from_the_full_text_index(exchanges: dict[str, Exchange]) -> None:
    queryset = exchanges_search(Exchange.objects.all(), text="tokenizer")
    if connection.vendor != "postgresql":
        assert "to_tsvector" not in str(queryset.query)
        return
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a three-row table: only a usable index avoids it
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "exchange_search_fts" in plan, plan
