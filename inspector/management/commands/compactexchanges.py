from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from inspector.storage import exchanges_compact


class Command(BaseCommand):
    help = ("Store the bodies of inspector exchanges written whole (before bodies were stored as shared "
            "pieces) as pieces, oldest first; they read back as before and take a fraction of the space.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=200, help="Rows per transaction (default %(default)s).")

    def handle(self, *args: Any, batch: int, **options: Any) -> None:
        if batch < 1:
            self.stderr.write("--batch must be at least 1")
            raise SystemExit(2)
        done = exchanges_compact(batch=batch)
        self.stdout.write(f"Compacted {done} exchanges.")
