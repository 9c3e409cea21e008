"""The storage benchmark: a replayed 30-turn Claude Code session (tests/claude_code_session.py)
sent through the gateway to the mock backend, every exchange written by the inspector's writer
as in production, once with the bodies stored as shared pieces (inspector/storage.py) and once
whole, as before (``DRAGOMAN_INSPECTOR_STORE_PIECES=0``), on SQLite and, when the Debian package
is installed, on a throwaway PostgreSQL.

Reported per run: the bytes the client sent, how much the database grew (SQLite: pages in use
after a WAL checkpoint; PostgreSQL: ``pg_total_relation_size`` of the inspector's tables, TOAST
and indexes included), and CPU per turn: the writer thread's own clock
(``pthread_getcpuclockid``) and the whole process's (request path, writer, test client).

Each run is a child process (``python -m tests.bench.storage --child``) with its own settings
and a fresh database: ``python -m tests.bench --only storage`` runs them all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TURNS = 30
KEY = "dgm_bench_key_0123456789abcdefghij"
INSPECTOR_TABLES = ("inspector_exchange", "inspector_piece")


# -- the child: one run ---------------------------------------------------------------------

def _db_bytes() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA freelist_count")
            free = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return int((pages - free) * cursor.fetchone()[0])
        total = 0
        for table in INSPECTOR_TABLES:
            cursor.execute("SELECT to_regclass(%s)", [table])
            if cursor.fetchone()[0] is not None:
                cursor.execute("SELECT pg_total_relation_size(%s)", [table])
                total += int(cursor.fetchone()[0])
        return total


def _writer_cpu() -> float:
    from inspector.recorder import recorder

    thread = recorder._thread  # the benchmark reads the writer's own CPU clock
    assert thread is not None and thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def child(turns: int, mock_port: int, *, warm: bool) -> dict[str, Any]:
    import django

    django.setup()
    from asgiref.sync import sync_to_async
    from django.conf import settings
    from django.core.management import call_command
    from django.test import AsyncClient

    from gateway.models import Backend, Route
    from gateway.runtime import runtime_get
    from gateway.services import apikey_create
    from inspector.recorder import recorder
    from tests.claude_code_session import claude_code_session

    call_command("migrate", verbosity=0)
    backend = Backend.objects.create(name="mock", base_url=f"http://127.0.0.1:{mock_port}/v1", preset="vllm")
    Route.objects.create(model="claude-*", backend=backend, upstream_model="mock", order=10)
    apikey_create(name="bench", secret=KEY)
    runtime = runtime_get()
    runtime.start()

    session = claude_code_session(turns)
    # Warm: another session (its own id and history, the same Claude Code system prompt and
    # tools) is stored first, as in a database in use; cold: the tables are empty.
    earlier = claude_code_session(turns, session_id="5e55f0a1-0000-4000-8000-0000000000aa", seed=11) if warm else []
    measured = {"sent": 0, "writer_cpu": 0.0, "process_cpu": 0.0}

    async def replay(turns: list[Any]) -> None:
        # One event loop for the whole session: the upstream pools live on it, as under daphne.
        for turn in turns:
            raw = turn.raw()
            measured["sent"] += len(raw)
            headers = {k: v for k, v in turn.headers.items() if k.lower() != "content-type"}
            cpu0, writer0 = time.process_time(), _writer_cpu()
            response = await AsyncClient().post("/v1/messages", raw, content_type="application/json",
                                                headers={**headers, "x-api-key": KEY})
            assert response.status_code == 200, (response.status_code, response.content[:500])
            b"".join([part async for part in response.streaming_content])  # type: ignore[attr-defined]
            # One turn, one batch (turns are seconds apart); blocking here holds up nothing else.
            assert recorder.flush(30), "the writer did not drain"
            measured["process_cpu"] += time.process_time() - cpu0
            measured["writer_cpu"] += _writer_cpu() - writer0

    async def run() -> int:
        nonlocal measured
        if earlier:
            await replay(earlier)
            measured = {"sent": 0, "writer_cpu": 0.0, "process_cpu": 0.0}
        before = await sync_to_async(_db_bytes)()
        await replay(session)
        return before

    before = asyncio.run(run())
    sent, writer_cpu, process_cpu = int(measured["sent"]), measured["writer_cpu"], measured["process_cpu"]
    grown = _db_bytes() - before
    stats = recorder.stats()
    runtime.stop()
    assert stats["persisted"] == len(session) + len(earlier) and stats["lost"] == 0, stats
    from django.db import connection
    from django.db.models import Sum

    from inspector.models import Exchange, Piece

    pieces = Piece.objects.aggregate(n=Sum("stored"), raw=Sum("size"))
    skeletons = sum(len(b or b"") for b in Exchange.objects.values_list("bodies", flat=True))
    return {"piece_count": Piece.objects.count(), "piece_bytes": pieces["n"] or 0,
            "piece_json_bytes": pieces["raw"] or 0, "skeleton_bytes": skeletons,
            "stored_bytes": sum(Exchange.objects.values_list("stored_bytes", flat=True)),
            "database": connection.vendor, "pieces": settings.INSPECTOR_STORE_PIECES, "turns": len(session),
            "warm": warm,
            "client_bytes": sent, "db_growth_bytes": grown, "growth_ratio": round(grown / sent, 4),
            "writer_cpu_ms_per_turn": round(writer_cpu * 1000 / len(session), 2),
            "process_cpu_ms_per_turn": round(process_cpu * 1000 / len(session), 2)}


# -- the parent: every run ------------------------------------------------------------------

@contextmanager
def _databases(tmp: Path, log: Callable[[str], None], *,
               postgresql: bool) -> Iterator[list[tuple[str, Callable[[str], str]]]]:
    """(name, a fresh DATABASE_URL per run label) for SQLite and, when installed, PostgreSQL."""
    dbs: list[tuple[str, Callable[[str], str]]] = [("sqlite", lambda label: f"sqlite:///{tmp / label}.sqlite3")]
    with ExitStack() as stack:
        if not postgresql:
            yield dbs
            return
        try:
            from tests.multi.services import ServiceMissing, postgres_server

            try:
                url = stack.enter_context(postgres_server())
            except ServiceMissing as exc:
                log(f"storage: PostgreSQL skipped ({exc})")
            else:
                import psycopg

                def fresh(label: str) -> str:
                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute(f'CREATE DATABASE "{label}"')
                    return url.rsplit("/", 1)[0] + f"/{label}"

                dbs.append(("postgresql", fresh))
        except ImportError as exc:  # psycopg missing
            log(f"storage: PostgreSQL skipped ({exc})")
        yield dbs


def storage_run(*, turns: int = TURNS, quick: bool = False, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every run; ``quick``: SQLite with empty tables only (the smoke run)."""
    from tests.bench.harness import _clean_env, mock_serving

    results = []
    with tempfile.TemporaryDirectory(prefix="dragoman-bench-storage.") as tmp_name:
        tmp = Path(tmp_name)
        with mock_serving(tmp) as (mock_port, _pid), _databases(tmp, log, postgresql=not quick) as dbs:
            for db_name, url_for in dbs:
                for warm, pieces in ((False, False), (False, True), *(() if quick else ((True, False), (True, True)))):
                    label = f"bench_{db_name}_{'warm' if warm else 'cold'}_{'pieces' if pieces else 'whole'}"
                    env = _clean_env(DATABASE_URL=url_for(label), DRAGOMAN_SECRET_KEY="bench-secret", DEBUG="0",
                                     ALLOWED_HOSTS="testserver", DRAGOMAN_VAR_DIR=str(tmp),
                                     DJANGO_SETTINGS_MODULE="gateway.settings", DRAGOMAN_LOG_LEVEL="WARNING",
                                     DRAGOMAN_INSPECTOR_CAPTURE="full", DRAGOMAN_INSPECTOR_PRUNE_SECONDS="0",
                                     DRAGOMAN_INSPECTOR_STORE_PIECES="1" if pieces else "0")
                    out = tmp / f"{label}.json"
                    subprocess.run([sys.executable, "-m", "tests.bench.storage", "--child", "--turns", str(turns),
                                    "--mock-port", str(mock_port), "--out", str(out), *(["--warm"] if warm else [])],
                                   cwd=REPO, env=env, check=True, timeout=600)
                    result = json.loads(out.read_text())
                    log(f"storage {db_name} {'warm' if warm else 'cold'} {'pieces' if pieces else 'whole '}: "
                        f"{result['client_bytes']:,} bytes "
                        f"sent, database +{result['db_growth_bytes']:,} ({result['growth_ratio']:.2f}x), writer "
                        f"{result['writer_cpu_ms_per_turn']} ms/turn, process {result['process_cpu_ms_per_turn']} ms/turn")
                    results.append(result)
    return results


def storage_markdown(results: list[dict[str, Any]]) -> str:
    lines = [f"Replayed Claude Code session ({results[0]['turns'] if results else TURNS} turns) through the "
             "gateway and the inspector's writer:", "",
             "| database | tables | bodies stored | client sent | database grew | growth / sent "
             "| writer CPU per turn | process CPU per turn |",
             "|---|---|---|--:|--:|--:|--:|--:|"]
    for r in results:
        lines.append(f"| {r['database']} | {'another session stored' if r['warm'] else 'empty'} "
                     f"| {'as pieces' if r['pieces'] else 'whole (before)'} "
                     f"| {r['client_bytes'] / 1e6:.2f} MB | {r['db_growth_bytes'] / 1e6:.2f} MB "
                     f"| {r['growth_ratio'] * 100:.1f} % | {r['writer_cpu_ms_per_turn']:.1f} ms "
                     f"| {r['process_cpu_ms_per_turn']:.1f} ms |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.storage", description=__doc__)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--turns", type=int, default=TURNS)
    parser.add_argument("--quick", action="store_true", help="SQLite with empty tables only")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--mock-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(REPO))
        result = child(args.turns, args.mock_port, warm=args.warm)
        assert args.out is not None
        args.out.write_text(json.dumps(result))
        return 0
    results = storage_run(turns=args.turns, quick=args.quick)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(storage_markdown(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    sys.exit(main())
