"""The exchange list's search: one box that finds an exchange by whatever the operator has at
hand (a request id or part of one, the msg_… id an SDK user saw, a key, a model, a path, an
error, a word of the prompt or the reply)."""

from __future__ import annotations

from django.db import connection
from django.db.models import BooleanField, F, Func, Q, QuerySet, Value

from inspector.models import Exchange

SEARCH_HELP = ("Request id (whole or part), message id (msg_…), key name or key hint, model or backend, path, "
               "error text, or words of the turn (the last user message, the reply, the error)")


class _WordsMatch(Func):
    """PostgreSQL full-text match of ``search_text``, written exactly as the index of migration
    0003 (``to_tsvector('simple', search_text)``) so the planner can use it."""

    conditional = True
    output_field = BooleanField()
    # Two arguments, the column and the query: to_tsvector('simple', <column>) @@ plainto_tsquery('simple', <query>)
    template = "to_tsvector('simple', %(expressions)s)"
    arg_joiner = ") @@ plainto_tsquery('simple', "


def words_match(text: str) -> Q | _WordsMatch:
    """The condition "the turn's words contain ``text``": full-text on PostgreSQL (every word, in
    any order), a substring elsewhere (SQLite)."""
    if connection.vendor == "postgresql":
        return _WordsMatch(F("search_text"), Value(text))
    return Q(search_text__icontains=text)


def exchanges_search(queryset: QuerySet[Exchange], *, text: str) -> QuerySet[Exchange]:
    """The exchanges of ``queryset`` that ``text`` finds (an OR of every way to find one); all of
    them for an empty text."""
    text = text.strip()
    if not text:
        return queryset
    condition = (Q(id__icontains=text) | Q(message_id=text) | Q(key_name__icontains=text)
                 | Q(key_hint__icontains=text) | Q(client_model__icontains=text)
                 | Q(upstream_model__icontains=text) | Q(backend_name__icontains=text) | Q(path__icontains=text)
                 | Q(error_message__icontains=text) | Q(session_id=text))
    return queryset.filter(condition | words_match(text))
