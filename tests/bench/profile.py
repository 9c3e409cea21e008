"""``python -m tests.bench.profile [--scenario NAME] [--gil]``: py-spy on the gateway while one
benchmark scenario runs against it (the same stack as ``make bench``: the mock backend, daphne,
capture full, the load generator in its own process), then the top frames.

py-spy (``.venv/bin/pip install py-spy``) samples the daphne process without pausing it
(``--nonblocking``, so the latencies stay those of an unprofiled run), every thread, into
collapsed stacks (``--format raw``); ``--gil`` keeps only the samples of the thread holding the
GIL, i.e. the Python work that excludes everyone else. The summary: samples per thread, the
functions with the most samples on top of the stack (self) and anywhere in it (total), and the
same per package (translation, orjson's callers, httpx/httpcore, Twisted/daphne, Django, the
inspector, asyncio), written to ``<out>/profile-<scenario>.md`` beside the raw stacks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.bench.harness import (
    QUICK_SCENARIOS,
    REPO,
    SCENARIOS,
    dragoman_serving,
    mock_serving,
    run_one,
    target_check,
    warm_up,
)
from tests.bench.report import percentile

# Where a frame's file lives (py-spy names it relative to its sys.path entry) -> the package
# the summary names; the first prefix that matches wins.
PACKAGES = (
    ("translation/", "translation (ours)"),
    ("gateway/", "gateway (ours)"),
    ("inspector/", "inspector (ours)"),
    ("httpcore/", "httpcore"),
    ("httpx/", "httpx"),
    ("h11/", "h11"),
    ("anyio/", "anyio"),
    ("twisted/", "twisted"),
    ("daphne/", "daphne"),
    ("autobahn/", "daphne"),
    ("ninja/", "django-ninja"),
    ("pydantic", "pydantic"),
    ("django/db/", "django db"),
    ("django/", "django"),
    ("asgiref/", "asgiref"),
    ("asyncio/", "asyncio"),
    ("sqlite3/", "sqlite3"),
    ("email/", "email (header parsing)"),
    ("logging/", "logging"),
    ("threading.py", "threading"),
    ("queue.py", "threading"),
)


def _package(frame: str) -> str:
    path = frame[frame.rfind("(") + 1:frame.rfind(":")]
    for prefix, name in PACKAGES:
        if path.startswith(prefix):
            return name
    return "other"


def stacks_read(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's collapsed stacks: ``frame;frame;... count``, outermost first."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out.append((stack.split(";"), int(count)))
    return out


def summary_markdown(stacks: list[tuple[list[str], int]], *, title: str, top: int = 25) -> str:
    total = sum(n for _, n in stacks) or 1
    threads: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    total_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    total_pkg: Counter[str] = Counter()
    for frames, n in stacks:
        thread, calls = (frames[0], frames[1:]) if frames[0].startswith(("thread", "process")) else ("", frames)
        threads[thread] += n
        if not calls:
            continue
        self_fn[calls[-1]] += n
        self_pkg[_package(calls[-1])] += n
        for fn in set(calls):
            total_fn[fn] += n
        for pkg in {_package(fn) for fn in calls}:
            total_pkg[pkg] += n

    def pct(n: int) -> str:
        return f"{100 * n / total:.1f} %"

    lines = [f"# {title}", "", f"{total} samples.", "", "| thread | samples |", "|---|---|"]
    lines += [f"| {t or '(all)'} | {pct(n)} |" for t, n in threads.most_common()]
    lines += ["", "| package | self | total |", "|---|---|---|"]
    lines += [f"| {p} | {pct(self_pkg[p])} | {pct(n)} |" for p, n in total_pkg.most_common()]
    lines += ["", "| function (self) | self | total |", "|---|---|---|"]
    lines += [f"| `{f}` | {pct(n)} | {pct(total_fn[f])} |" for f, n in self_fn.most_common(top)]
    lines += ["", "| function (total) | total | self |", "|---|---|---|"]
    lines += [f"| `{f}` | {pct(n)} | {pct(self_fn[f])} |" for f, n in total_fn.most_common(top)]
    return "\n".join(lines) + "\n"


def tail_markdown(result: dict[str, Any], timings: list[dict[str, float]]) -> str:
    """Where the time to first token goes, p50 and p99: the gateway's own marks (ms since its
    pipeline took the request: ``ExchangeRecord.timings``) beside what the client saw; and the
    client's TTFT per second of the run (a tail at the start is a burst, one spread out is not)."""
    lines = ["| time to first token, ms | exchanges | p50 | p99 |", "|---|---|---|---|"]
    marks: dict[str, list[int]] = {}
    for t in timings:
        for name, value in t.items():
            if isinstance(value, int | float):
                marks.setdefault(name, []).append(int(value * 1000))
    # The marks, in the order they happen (by their median); first_token last.
    shown = sorted((n for n in marks if n != "finished"),
                   key=lambda n: (n == "first_token", percentile(marks[n], 50) or 0))
    for name in shown:
        values = marks[name]
        lines.append(f"| gateway: {name} | {len(values)} | {percentile(values, 50)} | {percentile(values, 99)} |")
    ttft = result["ttft_us"]
    lines.append(f"| client: first token | {len(ttft)} | {percentile(ttft, 50)} | {percentile(ttft, 99)} |")
    by_second: dict[int, list[int]] = {}
    for start, value in zip(result.get("start_ms", []), ttft, strict=False):
        by_second.setdefault(start // 1000, []).append(value)
    lines += ["", "| second of the run | requests | TTFT p50 ms | TTFT p99 ms |", "|---|---|---|---|"]
    lines += [f"| {sec} | {len(v)} | {percentile(v, 50)} | {percentile(v, 99)} |" for sec, v in sorted(by_second.items())]
    return "\n".join(lines) + "\n"


def _timings(db: Path, limit: int) -> list[dict[str, float]]:
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute("SELECT timings FROM inspector_exchange ORDER BY created_at DESC LIMIT ?", (limit,))
        return [json.loads(r[0]) for r in rows if r[0]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profile", description=__doc__)
    parser.add_argument("--scenario", default="vllm-shape-c100", help="a scenario's exact name")
    parser.add_argument("--gil", action="store_true", help="only samples of the thread holding the GIL")
    parser.add_argument("--native", action="store_true", help="C frames too (the garbage collector, orjson, zlib)")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--py-spy", default=str(Path(sys.executable).with_name("py-spy")))
    parser.add_argument("--out", type=Path, default=REPO / "bench-results")
    args = parser.parse_args(argv)
    scenario = next((s for s in (*SCENARIOS, *QUICK_SCENARIOS) if s.name == args.scenario), None)
    if scenario is None:
        parser.error(f"no scenario {args.scenario!r}")
    if not shutil.which(args.py_spy):
        parser.error(f"{args.py_spy} is missing: .venv/bin/pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = ("-gil" if args.gil else "") + ("-native" if args.native else "")
    raw = args.out / f"profile-{scenario.name}{suffix}.txt"
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dragoman-profile-")))
        mock_port, mock_pid = stack.enter_context(mock_serving(tmp))
        gateway = stack.enter_context(dragoman_serving(tmp, mock_port))
        assert gateway.pid is not None
        target_check(gateway)
        warm_up(gateway, mock_pid, requests=200)
        cmd = [args.py_spy, "record", "--pid", str(gateway.pid), "--format", "raw", "--output", str(raw),
               "--rate", str(args.rate), "--threads", *(["--gil"] if args.gil else []),
               # C frames are read from a stopped process: --native cannot be --nonblocking.
               *(["--native"] if args.native else ["--nonblocking"])]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            result = run_one(gateway, scenario, requests=scenario.requests // 2,
                             time_limit_s=scenario.time_limit_s / 2, mock_pid=mock_pid)
        finally:
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=60)
        timings = _timings(tmp / "dragoman.sqlite3", result["ok"])
    if not raw.exists():
        raise SystemExit(f"py-spy wrote nothing: {err.decode()[-2000:]}")
    sent = max(1, result["sent"])
    title = (f"{scenario.name}{' (GIL holder only)' if args.gil else ''}: {result['ok']}/{result['sent']} ok, "
             f"{result['ok'] / result['wall_s']:.0f} req/s, CPU {result['cpu_s'] * 1000 / sent:.2f} ms/req, "
             f"TTFT p50 {percentile(result['ttft_us'], 50)} ms / p99 {percentile(result['ttft_us'], 99)} ms")
    md = summary_markdown(stacks_read(raw), title=title) + "\n" + tail_markdown(result, timings)
    md_path = raw.with_suffix(".md")
    md_path.write_text(md)
    (raw.with_suffix(".json")).write_text(json.dumps({k: v for k, v in result.items()
                                                       if k not in ("ttfb_us", "total_us")}))
    print(md)
    print(f"wrote {raw} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
