"""Retention: delete exchanges older than a number of days, and beyond the newest N.

Deletes go in batches of primary keys chosen through the ``created_at`` index, so each statement
is short on a big table and never holds a long lock against the writer or the admin.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings

from inspector.models import Exchange

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


def exchanges_prune(*, days: float | None = None, max_count: int | None = None, batch: int = PRUNE_BATCH,
                    now: datetime | None = None) -> int:
    """Delete exchanges older than ``days`` and all but the newest ``max_count`` (defaults:
    ``INSPECTOR_RETENTION_DAYS`` and ``INSPECTOR_RETENTION_MAX_COUNT``; 0 means no limit).
    Returns how many were deleted."""
    days = settings.INSPECTOR_RETENTION_DAYS if days is None else days
    max_count = settings.INSPECTOR_RETENTION_MAX_COUNT if max_count is None else max_count
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
    if deleted:
        log.info("inspector: pruned %d exchanges", deleted)
    return deleted
