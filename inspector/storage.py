"""How an exchange's bodies and logs are stored and read back. Readers call ``exchanges_load``
on the exchanges they show before reading their body columns (``client_request``,
``upstream_request``, ``upstream_response``, ``client_response``)."""

from __future__ import annotations

from collections.abc import Iterable

from inspector.models import Exchange

# Columns that hold how the bodies are stored, not what was recorded: never exported.
INTERNAL_COLUMNS: frozenset[str] = frozenset()


def exchanges_load(exchanges: Iterable[Exchange]) -> None:
    """Fill in the body columns of ``exchanges`` (in place), whole and exact."""
