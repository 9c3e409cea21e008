"""``python -m tests.mockbackend [--port N] …``: serve the scripted backend until killed.

Plain argparse and asyncio, no Django: ``make run``'s demo starts it from a runtime-only install.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from tests.mockbackend.scenarios import CHUNK_SHAPES, REASONING_FIELDS, SCENARIOS
from tests.mockbackend.server import mock_server_start


def parser_build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mockbackend",
        description="Serve the scripted OpenAI-compatible mock backend (e2e tests, benchmarks, the demo).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--scenario", default="demo", choices=sorted(SCENARIOS), help="default scenario")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="pause between stream chunks")
    parser.add_argument("--reasoning-field", default="reasoning_content", choices=REASONING_FIELDS)
    parser.add_argument("--chunks", default="openai", choices=CHUNK_SHAPES, help="stream chunk shape")
    parser.add_argument("--events", type=int, default=20, help="text deltas in the bench scenario")
    parser.add_argument("--stall-ms", type=float, default=30000.0, help="pause in the stall scenario")
    parser.add_argument("--first-byte-ms", type=float, default=2000.0, help="pause in the slow_first_byte scenario")
    parser.add_argument("--max-records", type=int, default=1000, help="chat requests kept for /_mock/requests")
    return parser


async def serve(args: argparse.Namespace) -> None:
    server = await mock_server_start(
        args.host,
        args.port,
        scenario=args.scenario,
        delay_ms=args.delay_ms,
        reasoning_field=args.reasoning_field,
        events=args.events,
        stall_ms=args.stall_ms,
        first_byte_ms=args.first_byte_ms,
        chunks=args.chunks,
        max_records=args.max_records,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # One line, flushed: scripts and fixtures wait for it (and read the port from it).
    print(f"mock backend listening on {server.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parser_build().parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
