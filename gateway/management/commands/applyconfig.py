from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from gateway.config import ConfigError, config_apply, config_load


class Command(BaseCommand):
    help = "Create or update backends, routes and keys from a dragoman.yaml file (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path to the YAML config file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = config_apply(config_load(options["file"]))
        except ConfigError as exc:
            raise CommandError(f"{exc}\nNothing was changed.") from None
        except DatabaseError as exc:
            # Typically a database nobody has migrated yet (no tables): say so, not a traceback.
            raise CommandError(f"the database is not ready ({exc}); run `python manage.py migrate` first "
                               "(make applyconfig does). Nothing was changed.") from None
        for line in report:
            self.stdout.write(line)
        self.stdout.write(f"{options['file']}: {len(report) or 'no'} change{'s' if len(report) != 1 else ''}")
