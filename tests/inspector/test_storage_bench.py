"""The storage benchmark (tests/bench/storage.py, part of ``make bench``) in its quick mode: a
replayed Claude Code session through the gateway and the writer, bodies whole and as pieces,
on SQLite. Pieces must cost a small part of what whole rows cost, and of what the client sent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def test_the_quick_storage_benchmark_shows_pieces_costing_a_fraction_of_whole_rows(tmp_path: Path) -> None:
    out = tmp_path / "storage.json"
    done = subprocess.run([sys.executable, "-m", "tests.bench.storage", "--quick", "--turns", "6", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = {r["pieces"]: r for r in json.loads(out.read_text())}
    whole, pieces = runs[False], runs[True]
    assert whole["client_bytes"] == pieces["client_bytes"] > 6 * 100_000
    assert whole["db_growth_bytes"] > whole["client_bytes"]  # before: more than was sent
    assert pieces["db_growth_bytes"] < whole["db_growth_bytes"] / 5
    assert pieces["piece_count"] > 0 and whole["piece_count"] == 0
    assert pieces["writer_cpu_ms_per_turn"] > 0
    assert "| sqlite | empty | as pieces |" in done.stdout
