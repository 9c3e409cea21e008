"""Retention: delete exchanges older than a number of days, beyond the newest N, and the
oldest while rows and pieces take more than a number of bytes; then the pieces no kept exchange
uses.

Deletes go in batches of primary keys chosen through the ``created_at`` index, so each statement
is short on a big table and never holds a long lock against the writer or the admin.

Pieces have no reference table (``inspector.storage``): the writer keeps a piece's ``last_used``
within half of ``PIECE_SLACK`` of the ``created_at`` of every exchange that holds it (or later),
and retention only ever deletes the oldest exchanges, so a piece last used ``PIECE_SLACK`` before
the oldest exchange kept, and twice that before now (an exchange still being written), is held
by none of them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Sum

from inspector.models import Exchange, Piece
from inspector.storage import PIECE_SLACK

log = logging.getLogger(__name__)

PRUNE_BATCH = 1000


def _delete_older_than(cutoff: datetime, *, batch: int) -> int:
    deleted = 0
    while True:
        ids = list(Exchange.objects.filter(created_at__lt=cutoff).order_by("created_at")
                   .values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += Exchange.objects.filter(pk__in=ids).delete()[0]


def pieces_prune(*, now: datetime | None = None, batch: int = PRUNE_BATCH) -> int:
    """Delete the pieces no exchange kept can hold; returns how many."""
    return _pieces_prune(now=now, batch=batch)[0]


def _pieces_prune(*, now: datetime | None, batch: int) -> tuple[int, int]:
    """(pieces deleted, their bytes)."""
    now = now or datetime.now(UTC)
    cutoff = now - 2 * PIECE_SLACK  # also room for an exchange still being written, when none is kept
    oldest = Exchange.objects.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is not None:
        cutoff = min(cutoff, oldest - PIECE_SLACK)
    deleted = freed = 0
    while True:
        found = list(Piece.objects.filter(last_used__lt=cutoff).order_by("last_used")
                     .values_list("pk", "stored")[:batch])
        if not found:
            return deleted, freed
        deleted += Piece.objects.filter(pk__in=[h for h, _ in found], last_used__lt=cutoff).delete()[0]
        freed += sum(size for _, size in found)


def stored_bytes() -> int:
    """What the inspector's rows and pieces take, as counted for retention by size (rows written
    before pieces count 0 until ``manage.py compactexchanges`` rewrites them)."""
    rows = Exchange.objects.aggregate(n=Sum("stored_bytes"))["n"] or 0
    pieces = Piece.objects.aggregate(n=Sum("stored"))["n"] or 0
    return int(rows) + int(pieces)


def _delete_until_fits(max_bytes: int, *, batch: int, now: datetime | None) -> int:
    """The oldest exchanges until rows and the pieces still used fit: the total is summed once,
    then each step deletes the fewest oldest rows whose own bytes cover the excess, and the
    pieces nothing kept holds any more. The last ``2 * PIECE_SLACK`` are never deleted for
    size: their pieces could not go with them."""
    now = now or datetime.now(UTC)
    total = stored_bytes()
    deleted = 0
    while total > max_bytes:
        oldest = list(Exchange.objects.filter(created_at__lt=now - 2 * PIECE_SLACK).order_by("created_at", "pk")
                      .values_list("pk", "stored_bytes")[:batch])
        if not oldest:
            log.warning("inspector: %d bytes stored, over DRAGOMAN_INSPECTOR_RETENTION_MAX_BYTES (%d), "
                        "all of it from the last %s", total, max_bytes, 2 * PIECE_SLACK)
            return deleted
        ids, covered = [], 0
        for pk, size in oldest:
            ids.append(pk)
            covered += size
            if covered >= total - max_bytes:
                break
        deleted += Exchange.objects.filter(pk__in=ids).delete()[0]
        total -= covered + _pieces_prune(now=now, batch=batch)[1]
    return deleted


def exchanges_prune(*, days: float | None = None, max_count: int | None = None, max_bytes: int | None = None,
                    batch: int = PRUNE_BATCH, now: datetime | None = None) -> int:
    """Delete exchanges older than ``days``, all but the newest ``max_count``, and the oldest
    while rows and pieces take more than ``max_bytes`` (defaults: ``INSPECTOR_RETENTION_DAYS``,
    ``INSPECTOR_RETENTION_MAX_COUNT`` and ``INSPECTOR_RETENTION_MAX_BYTES``; 0 means no limit),
    then the pieces only they used. Returns how many exchanges were deleted."""
    days = settings.INSPECTOR_RETENTION_DAYS if days is None else days
    max_count = settings.INSPECTOR_RETENTION_MAX_COUNT if max_count is None else max_count
    max_bytes = settings.INSPECTOR_RETENTION_MAX_BYTES if max_bytes is None else max_bytes
    deleted = 0
    if days > 0:
        deleted += _delete_older_than((now or datetime.now(UTC)) - timedelta(days=days), batch=batch)
    if max_count > 0:
        # The newest exchange that must go (one walk down the created_at index); it and every
        # exchange after it in (-created_at, -id) order are deleted.
        boundary = (Exchange.objects.order_by("-created_at", "-pk").values_list("created_at", "pk")
                    [max_count:max_count + 1])
        for cutoff, last_pk in boundary:
            deleted += _delete_older_than(cutoff, batch=batch)
            deleted += Exchange.objects.filter(created_at=cutoff, pk__lte=last_pk).delete()[0]
    pieces = pieces_prune(now=now, batch=batch)
    if max_bytes > 0:
        deleted += _delete_until_fits(max_bytes, batch=batch, now=now)
    if deleted or pieces:
        log.info("inspector: pruned %d exchanges and %d pieces", deleted, pieces)
    return deleted
