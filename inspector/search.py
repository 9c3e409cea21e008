"""The exchange list's search: one box that finds an exchange by whatever the operator has at
hand (a request id or part of one, the msg_… id an SDK user saw, a key, a model, a path, an
error, a word of the prompt or the reply)."""

from __future__ import annotations

from django.db import connection
from django.db.models import BooleanField, F, Func, Q, QuerySet, Value

from inspector.models import Exchange

SEARCH_HELP = ("Request id (whole or part), message id (msg_…), key name or key hint, model or backend (any it "
               "tried), path, error text, or words of the turn (the last user message, the reply, the error)")


# How many rows the words must match to count as common (see exchanges_search).
COMMON_WORDS = 2000


class _WordsMatch(Func):
    """PostgreSQL full-text match of ``search_text``, written exactly as the index of migration
    0003 (``to_tsvector('simple', search_text)``) so the planner can use it."""

    conditional = True
    output_field = BooleanField()
    # Two arguments, the column and the query: to_tsvector('simple', <column>) @@ plainto_tsquery('simple', <query>)
    template = "to_tsvector('simple', %(expressions)s)"
    arg_joiner = ") @@ plainto_tsquery('simple', "


def exchanges_search(queryset: QuerySet[Exchange], *, text: str) -> QuerySet[Exchange]:
    """The exchanges of ``queryset`` that ``text`` finds (an OR of every way to find one); all of
    them for an empty text."""
    text = text.replace("\x00", "").strip()  # PostgreSQL refuses a NUL in a query parameter
    if not text:
        return queryset
    columns = (Q(id__icontains=text) | Q(message_id=text) | Q(key_name__icontains=text)
               | Q(key_hint__icontains=text) | Q(client_model__icontains=text)
               | Q(upstream_model__icontains=text) | Q(backend_name__icontains=text) | Q(path__icontains=text)
               | Q(error_message__icontains=text) | Q(session_id=text))
    if connection.vendor != "postgresql":
        return queryset.filter(columns | Q(search_text__icontains=text))
    # PostgreSQL: which plan finds a page fastest depends on how common the words are, and the
    # GIN index tells cheaply (a bitmap of the matches, at most COMMON_WORDS rows fetched).
    words = _WordsMatch(F("search_text"), Value(text))
    matches = Exchange.objects.filter(words).order_by().values("pk")
    if matches[:COMMON_WORDS].count() >= COMMON_WORDS:
        # Common words: walking the newest rows in time order meets a page of matches soon.
        return queryset.filter(columns | words)
    # Rare words: their few rows from the index, the columns in one pass over short strings,
    # as a union of ids (one OR would compute to_tsvector for every row it scans: seconds on a
    # few hundred thousand rows for a word found nowhere).
    return queryset.filter(pk__in=Exchange.objects.filter(columns).order_by().values("pk").union(matches))
