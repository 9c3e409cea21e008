"""``make newkey NAME=…``: a new API key, its secret printed once (only its hash is kept)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.models import ApiKey
from gateway.services import apikey_create


class Command(BaseCommand):
    help = "Create an API key and print its secret once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Who or what uses the key, e.g. laptop")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("a key needs a name, e.g. make newkey NAME=laptop")
        if ApiKey.objects.filter(name=name).exists():
            raise CommandError(f"a key named {name!r} exists; pick another name, or rotate it in the admin")
        _, secret = apikey_create(name=name)
        self.stdout.write(self.style.WARNING(f"API key {name} created: {secret}  (shown once)"))
