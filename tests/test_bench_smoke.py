"""The benchmark (``make bench``) in its quickest mode: it starts the mock backend and the
gateway under daphne, drives every quick scenario from its own load-generator process and
writes JSON, Markdown and a PNG chart — with numbers that make sense, and every request the
gateway served persisted by the inspector."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def test_quick_benchmark_writes_results_and_the_inspector_loses_nothing(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tests.bench", "--quick", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    scenarios = {s["name"]: s for s in results["scenarios"]}
    rows = {(r["scenario"], r["target"]): r for r in results["summary"]}
    assert set(rows) == {(name, target) for name in scenarios for target in ("direct", "dragoman")}
    for (name, target), row in rows.items():
        assert row["sent"] == scenarios[name]["requests"], (name, target)
        assert row["ok"] == row["sent"] and row["errors"] == 0, (name, target, row["error_kinds"])
        assert 0 < row["ttft_p50"] <= row["lat_p50"] and row["rps"] > 0, (name, target)
        if target == "dragoman":
            assert row["persisted"] == row["sent"], name  # the inspector kept every exchange
            assert row["cpu_ms_per_req"] >= 0 and row["rss_peak_mb"] > 20, name
    # The paced stream sends its first token after 20 ms and its last after 16 x 20 ms: the
    # load generator must see that through the gateway as well as directly.
    for target in ("direct", "dragoman"):
        paced = rows[("paced-c1", target)]
        assert paced["ttft_p50"] >= 19 and paced["lat_p50"] >= 15 * 20, target
    assert sum(r["cpu_ms_per_req"] for r in results["summary"] if r["target"] == "dragoman") > 0
    # Claude Code sessions (115 KB and growing, every turn one more tool result) through the
    # gateway, TTFT by request size; the tail (p99 / p50) is reported for every row.
    session = rows[("cc-session-c2", "dragoman")]
    assert len(session["by_size"]) >= 2, session
    assert sum(b["requests"] for b in session["by_size"]) == session["sent"]
    assert all(r["ttft_p99_p50"] >= 1 for r in results["summary"])
    missing = next(c for c in results["targets_check"] if c["what"].startswith("inspector"))
    assert missing["verdict"] == "met", missing

    table = (tmp_path / "results.md").read_text()
    assert "| paced-c1 | dragoman |" in table and "| target | measured | verdict |" in table
    assert "| vllm-shape-c10 | dragoman |" in table and "| cc-session-c2 | dragoman | 110-120 |" in table
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
