from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from inspector.retention import exchanges_prune


class Command(BaseCommand):
    help = ("Delete inspector exchanges older than --days, beyond the newest --max-count and the oldest while "
            "they take more than --max-bytes, then the stored pieces no kept exchange uses (defaults: "
            "DRAGOMAN_INSPECTOR_RETENTION_DAYS, _MAX_COUNT and _MAX_BYTES; 0: no limit).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=float, default=settings.INSPECTOR_RETENTION_DAYS,
                            help="Keep exchanges at most this many days old (default %(default)s).")
        parser.add_argument("--max-count", type=int, default=settings.INSPECTOR_RETENTION_MAX_COUNT,
                            help="Keep at most this many exchanges, the newest (default %(default)s).")
        parser.add_argument("--max-bytes", type=int, default=settings.INSPECTOR_RETENTION_MAX_BYTES,
                            help="Keep exchanges and their pieces within this many bytes (default %(default)s).")

    def handle(self, *args: Any, days: float, max_count: int, max_bytes: int, **options: Any) -> None:
        if days < 0 or max_count < 0 or max_bytes < 0:
            self.stderr.write("--days, --max-count and --max-bytes must not be negative")
            raise SystemExit(2)
        deleted = exchanges_prune(days=days, max_count=max_count, max_bytes=max_bytes)
        self.stdout.write(f"Deleted {deleted} exchanges.")
