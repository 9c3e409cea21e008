"""`python manage.py mockbackend`: serve the scripted OpenAI-compatible backend until killed."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gateway.mockbackend.scenarios import REASONING_FIELDS, SCENARIOS
from gateway.mockbackend.server import mock_server_start


class Command(BaseCommand):
    help = "Serve the scripted OpenAI-compatible mock backend (e2e tests, benchmarks, the demo)."
    # It touches neither the database nor settings, so it can start before the project is set up.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
        parser.add_argument("--scenario", default="demo", choices=sorted(SCENARIOS), help="default scenario")
        parser.add_argument("--delay-ms", type=float, default=0.0, help="pause between stream chunks")
        parser.add_argument("--reasoning-field", default="reasoning_content", choices=REASONING_FIELDS)
        parser.add_argument("--events", type=int, default=20, help="text deltas in the bench scenario")
        parser.add_argument("--stall-ms", type=float, default=30000.0, help="pause in the stall scenario")
        parser.add_argument(
            "--first-byte-ms", type=float, default=2000.0, help="pause in the slow_first_byte scenario"
        )
        parser.add_argument(
            "--max-records", type=int, default=1000, help="chat requests kept for /_mock/requests"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._serve(options))

    async def _serve(self, options: dict[str, Any]) -> None:
        server = await mock_server_start(
            options["host"],
            options["port"],
            scenario=options["scenario"],
            delay_ms=options["delay_ms"],
            reasoning_field=options["reasoning_field"],
            events=options["events"],
            stall_ms=options["stall_ms"],
            first_byte_ms=options["first_byte_ms"],
            max_records=options["max_records"],
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        # One line, flushed: scripts and fixtures wait for it (and read the port from it).
        self.stdout.write(f"mock backend listening on {server.url}")
        self.stdout.flush()
        try:
            await stop.wait()
        finally:
            await server.close()
