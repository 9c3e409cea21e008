"""The benchmark: the mock backend and Dragoman under daphne (as a user runs them, inspector
capture ``full``), optionally LiteLLM, and the load generator in its own process.

Every scenario is sent to each target in turn — straight to the mock (``direct``: the
baseline that added latency and time to first token are measured against), to Dragoman, and
to LiteLLM with ``--peers`` — in rounds whose order alternates, so a noisy minute on a shared
machine hurts every target alike. Per run it records the load generator's latencies, the
target's CPU (utime+stime of its process tree from ``/proc``), its RSS sampled every 100 ms,
errors, and for Dragoman the Exchange rows the inspector persisted (read from its SQLite
database once the writer has drained), which must equal the requests sent.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.bench.procs import RssSampler, cpu_seconds, free_port, memory_kb, process_tree, serving
from tests.bench.sessions import PLACEHOLDER, session_turns
from tests.e2e.conftest import daphne_serving

REPO = Path(__file__).resolve().parents[2]
BENCH_KEY = "dgm_bench_key_0123456789abcdefghij"
MODEL = "claude-bench"
TOKEN = " tok"  # every text delta of the mock's bench scenario


@dataclass(frozen=True)
class Scenario:
    name: str
    stream: bool
    events: int
    concurrency: int
    requests: int  # in total, over all rounds
    time_limit_s: float  # in total, over all rounds
    delay_ms: float = 0.0
    about: str = ""
    chunks: str = "openai"  # the mock's stream chunk shape (tests/mockbackend: "openai" or "vllm")
    # Claude Code sessions (sessions.py) of this many turns, each client replaying one after
    # another; the mock (`direct`) gets the plain chat request, the baseline of added TTFT.
    session_turns: int = 0
    result_bytes: int = 4500  # the tool result each turn adds

    @property
    def directive(self) -> str:
        shape = f" chunks={self.chunks}" if self.chunks != "openai" else ""
        return f"[[mock:bench events={self.events} delay_ms={self.delay_ms:g}{shape}]]"


SCENARIOS = (
    Scenario("nonstream-c1", False, 20, 1, 400, 15, about="non-streaming short request"),
    Scenario("nonstream-c10", False, 20, 10, 1500, 15),
    Scenario("nonstream-c100", False, 20, 100, 3000, 20),
    Scenario("stream20-c1", True, 20, 1, 400, 15, about="streamed 20-event response, unpaced"),
    Scenario("stream20-c10", True, 20, 10, 1500, 15),
    Scenario("stream20-c100", True, 20, 100, 3000, 20),
    Scenario("stream200-c10", True, 200, 10, 400, 15, about="streamed 200 events (per-event cost)"),
    Scenario("stream1000-c10", True, 1000, 10, 120, 20, about="streamed 1,000 events (per-event cost)"),
    Scenario("paced-c1", True, 16, 1, 50, 25, delay_ms=20, about="16 events 20 ms apart: added TTFT"),
    Scenario("paced-c100", True, 16, 100, 600, 20, delay_ms=20),
    Scenario("hold-c500", True, 20, 500, 500, 30, delay_ms=200, about="500 streams held open ~4 s"),
    Scenario("vllm-shape-paced-c1", True, 16, 1, 50, 25, delay_ms=20, chunks="vllm",
             about="16 chunks in vLLM's full shape, 20 ms apart: added TTFT"),
    Scenario("vllm-shape-c100", True, 16, 100, 3000, 20, chunks="vllm",
             about="16 chunks in vLLM's full shape (id, created, model, logprobs, token_ids, usage chunk, "
                   "system_fingerprint), 100 clients"),
    Scenario("cc-session-c1", True, 16, 1, 60, 60, chunks="vllm", session_turns=10,
             about="Claude Code sessions replayed, 10 turns of 115-160 KB, one at a time: CPU per turn"),
    Scenario("cc-session-c100", True, 16, 100, 2000, 60, chunks="vllm", session_turns=10,
             about="100 Claude Code sessions at once, 10 turns of 115-160 KB each"),
)

# A few seconds in all: the smoke test in `make test` and QUICK=1.
QUICK_SCENARIOS = (
    Scenario("nonstream-c1", False, 20, 1, 10, 5),
    Scenario("stream20-c10", True, 20, 10, 40, 5),
    Scenario("stream200-c10", True, 200, 10, 20, 5),
    Scenario("stream1000-c2", True, 1000, 2, 4, 5),
    Scenario("paced-c1", True, 16, 1, 3, 5, delay_ms=20),
    Scenario("hold-c50", True, 5, 50, 50, 10, delay_ms=50),
    Scenario("vllm-shape-c10", True, 16, 10, 40, 5, chunks="vllm"),
    Scenario("cc-session-c2", True, 16, 2, 6, 20, chunks="vllm", session_turns=3),
)


@dataclass
class Target:
    """Somewhere to send a scenario: its port, request shape, and the process to measure."""

    name: str
    port: int
    path: str
    headers: dict[str, str]
    body: Callable[[Scenario], str]
    end: Callable[[Scenario], str]  # bytes every complete response contains
    pid: int | None = None  # the server process (with its children); None for the mock itself
    exchanges: Callable[[], int] | None = None  # persisted inspector rows so far


def _messages_body(s: Scenario) -> str:
    return json.dumps({"model": MODEL, "max_tokens": 1024, "stream": s.stream,
                       "messages": [{"role": "user", "content": f"{s.directive} Say something."}]})


def _chat_body(s: Scenario) -> str:
    body: dict[str, Any] = {"model": "mock", "max_tokens": 1024, "stream": s.stream,
                            "messages": [{"role": "user", "content": f"{s.directive} Say something."}]}
    if s.stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body)


def anthropic_end(s: Scenario) -> str:
    return "message_stop" if s.stream else '"stop_reason":"end_turn"'


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a server under test: nothing inherited that configures Dragoman
    (pytest's settings module, a CI DATABASE_URL, test-speed inspector knobs)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DRAGOMAN_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL", "DEBUG")}
    env.update(extra)
    return env


@dataclass
class Stack:
    tmp: Path
    mock_port: int
    mock_pid: int
    targets: list[Target] = field(default_factory=list)


@contextmanager
def mock_serving(tmp: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    cmd = [sys.executable, "-m", "tests.mockbackend", "--port", str(port), "--scenario", "bench",
           "--max-records", "20"]
    with serving(cmd, env=_clean_env(DEBUG="1"), cwd=REPO, log_path=tmp / "mock.log",
                 ready_url=f"http://127.0.0.1:{port}/health") as proc:
        yield port, proc.pid


@contextmanager
def dragoman_serving(tmp: Path, mock_port: int) -> Iterator[Target]:
    """Dragoman as a user runs it: migrated SQLite, ``dragoman.yaml`` applied at start-up,
    ``daphne gateway.asgi:application``, capture ``full``, production settings (DEBUG off)."""
    db = tmp / "dragoman.sqlite3"
    config = tmp / "dragoman.yaml"
    config.write_text(f"""
backends:
  - name: mock
    base_url: http://127.0.0.1:{mock_port}/v1
    preset: vllm
    read_timeout: 120
routes:
  - model: "claude-*"
    backend: mock
    upstream_model: mock
keys:
  - name: bench
    key: {BENCH_KEY}
""")
    env = _clean_env(DATABASE_URL=f"sqlite:///{db}", DRAGOMAN_SECRET_KEY="bench-secret", DEBUG="0",
                     ALLOWED_HOSTS="127.0.0.1,localhost", DRAGOMAN_CONFIG=str(config),
                     DRAGOMAN_INSPECTOR_CAPTURE="full", DRAGOMAN_VAR_DIR=str(tmp),
                     DJANGO_SETTINGS_MODULE="gateway.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=120)
    port = free_port()

    def exchanges() -> int:
        with sqlite3.connect(db, timeout=30) as conn:
            count: int = conn.execute("SELECT COUNT(*) FROM inspector_exchange").fetchone()[0]
        return count

    # daphne's default listen backlog (Twisted's 50) drops SYNs when 500 clients connect at once;
    # LiteLLM's uvicorn listens with 2048. docs/performance.md says how to set it.
    with daphne_serving(url=f"http://127.0.0.1:{port}", port=port, env=env, log_path=tmp / "daphne.log",
                        backlog=1024) as proc:
        yield Target("dragoman", port, "/v1/messages",
                     {"x-api-key": BENCH_KEY, "anthropic-version": "2023-06-01"},
                     _messages_body, anthropic_end, pid=proc.pid, exchanges=exchanges)


def direct_target(mock_port: int) -> Target:
    return Target("direct", mock_port, "/v1/chat/completions", {}, _chat_body,
                  lambda s: "[DONE]" if s.stream else '"finish_reason":"stop"')


def target_check(target: Target) -> None:
    """Short streamed and plain requests, and the longest stream, must complete before anything
    is measured (LiteLLM, for one, ends a stream of 100 identical chunks with an error)."""
    for stream, events in ((True, 3), (False, 3), (True, 1000)):
        s = Scenario("check", stream, events, 1, 1, 10)
        body = target.body(s)
        resp = httpx.post(f"http://127.0.0.1:{target.port}{target.path}", content=body,
                          headers={"content-type": "application/json", **target.headers}, timeout=30)
        text = resp.text
        if resp.status_code != 200 or text.count(TOKEN) != events or target.end(s) not in text:
            raise RuntimeError(f"{target.name} does not answer the benchmark request (stream={stream}, "
                               f"{events} events): {resp.status_code} {text[-800:]}")


def _loadgen(target: Target, s: Scenario, *, requests: int, time_limit_s: float) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "host": "127.0.0.1", "port": target.port, "path": target.path, "headers": target.headers,
        "body": target.body(s), "concurrency": min(s.concurrency, requests), "requests": requests,
        "time_limit_s": time_limit_s, "token": TOKEN, "end": target.end(s)}
    if s.session_turns and target.path == "/v1/messages":
        bodies, headers = session_turns(turns=s.session_turns, result_bytes=s.result_bytes, model=MODEL,
                                        directive=s.directive)
        spec.update(bodies=list(bodies), placeholder=PLACEHOLDER, headers={**dict(headers), **target.headers},
                    concurrency=min(s.concurrency, max(1, requests // s.session_turns)))
        if s.concurrency == 1 and target.pid:
            spec["cpu_pid"] = target.pid  # CPU per turn: one request at a time
    done = subprocess.run([sys.executable, "-m", "tests.bench.loadgen"], input=json.dumps(spec).encode(),
                          cwd=REPO, capture_output=True, timeout=time_limit_s + 180)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_one(target: Target, s: Scenario, *, requests: int, time_limit_s: float, mock_pid: int) -> dict[str, Any]:
    pids = process_tree(target.pid) if target.pid else []
    before = target.exchanges() if target.exchanges else 0
    cpu0, mock0 = cpu_seconds(pids), cpu_seconds([mock_pid])
    with RssSampler(lambda: process_tree(target.pid) if target.pid else []) as rss:
        result = _loadgen(target, s, requests=requests, time_limit_s=time_limit_s)
        persisted = None
        if target.exchanges:
            # The writer batches every DRAGOMAN_INSPECTOR_FLUSH_SECONDS (0.5 s): wait for the rows,
            # so their cost is in the CPU figure too.
            deadline = time.monotonic() + 30
            while (persisted := target.exchanges() - before) < result["sent"] and time.monotonic() < deadline:
                time.sleep(0.1)
    result.update(target=target.name, scenario=s.name, cpu_s=cpu_seconds(pids) - cpu0,
                  backend_cpu_s=cpu_seconds([mock_pid]) - mock0, persisted=persisted,
                  rss_peak_process_kb=rss.peak_process_kb, rss_peak_total_kb=rss.peak_total_kb,
                  hwm_kb=max((memory_kb(p, "VmHWM") for p in pids), default=0))
    return result


def warm_up(target: Target, mock_pid: int, *, requests: int) -> None:
    for s in (Scenario("warm", True, 20, 10, requests, 10), Scenario("warm", False, 20, 10, requests // 2, 10)):
        run_one(target, s, requests=s.requests, time_limit_s=s.time_limit_s, mock_pid=mock_pid)


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(runs[0])
    for run in runs[1:]:
        for key in ("sent", "ok", "errors", "wall_s", "loadgen_cpu_s", "cpu_s", "backend_cpu_s", "body_bytes"):
            out[key] += run[key]
        for key in ("ttft_us", "total_us", "ttfb_us", "req_bytes", "cpu_ns", "start_ms"):
            out[key] = out[key] + run[key]
        out["sessions"] += run["sessions"]
        for key in ("rss_peak_process_kb", "rss_peak_total_kb", "hwm_kb"):
            out[key] = max(out[key], run[key])
        if run["persisted"] is not None:
            out["persisted"] = (out["persisted"] or 0) + run["persisted"]
        kinds = dict(out["error_kinds"])
        for kind, n in run["error_kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + n
        out["error_kinds"] = kinds
    out["rounds"] = len(runs)
    return out


def bench_run(*, quick: bool, peers: bool, rounds: int, only: str = "", litellm_venv: Path | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Start everything, run every scenario against every target, return the raw results."""
    scenarios = [s for s in (QUICK_SCENARIOS if quick else SCENARIOS) if only in s.name]
    started = time.time()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dragoman-bench-")))
        mock_port, mock_pid = stack.enter_context(mock_serving(tmp))
        targets = [direct_target(mock_port), stack.enter_context(dragoman_serving(tmp, mock_port))]
        if peers:
            from tests.bench.peers import litellm_serving

            targets.append(stack.enter_context(litellm_serving(tmp, mock_port, venv=litellm_venv)))
        for target in targets:
            target_check(target)
            warm_up(target, mock_pid, requests=20 if quick else 200)
        gateway = next(t for t in targets if t.name == "dragoman")
        assert gateway.pid is not None
        idle_s = 0.5 if quick else 3.0
        idle0 = cpu_seconds([gateway.pid])
        time.sleep(idle_s)
        idle_ms_per_s = (cpu_seconds([gateway.pid]) - idle0) * 1000 / idle_s
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for s in scenarios:
            per_round = max(1, s.requests // rounds)
            for r in range(rounds):
                order = targets if r % 2 == 0 else targets[::-1]
                for target in order:
                    result = run_one(target, s, requests=per_round, time_limit_s=s.time_limit_s / rounds,
                                     mock_pid=mock_pid)
                    runs.setdefault((s.name, target.name), []).append(result)
                    log(f"{s.name:16} {target.name:9} round {r + 1}: {result['ok']}/{result['sent']} ok "
                        f"in {result['wall_s']:.1f}s, cpu {result['cpu_s'] * 1000 / max(1, result['sent']):.2f} "
                        f"ms/req, persisted {result['persisted']}")
    return {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1), "quick": quick, "rounds": rounds,
        "machine": machine_describe(), "gateway_idle_cpu_ms_per_s": round(idle_ms_per_s, 2),
        "scenarios": [asdict(s) for s in scenarios], "targets": [t.name for t in targets],
        "runs": [_merge(rs) for rs in runs.values()],
    }


def machine_describe() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = memory_kb_total()
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "python": sys.version.split()[0], "load_avg_at_start": os.getloadavg()}


def memory_kb_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

