"""From raw benchmark runs to numbers: per scenario and target a summary row, the issue's
targets checked against them, and the results written as JSON, a Markdown table and a chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MB = 1024


def percentile(values: list[int], p: float) -> float | None:
    """Nearest-rank percentile of µs values, in ms."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1] / 1000


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (scenario, target), with added latency and TTFT against ``direct``."""
    events = {s["name"]: s["events"] for s in results["scenarios"]}
    rows = []
    for run in results["runs"]:
        sent = max(1, run["sent"])
        row = {
            "scenario": run["scenario"], "target": run["target"], "events": events[run["scenario"]],
            "sent": run["sent"], "ok": run["ok"], "errors": run["errors"], "error_kinds": run["error_kinds"],
            "rps": run["ok"] / run["wall_s"] if run["wall_s"] else 0.0,
            "ttft_p50": percentile(run["ttft_us"], 50), "ttft_p99": percentile(run["ttft_us"], 99),
            "lat_p50": percentile(run["total_us"], 50), "lat_p99": percentile(run["total_us"], 99),
            "cpu_ms_per_req": run["cpu_s"] * 1000 / sent if run["target"] != "direct" else None,
            "backend_cpu_ms_per_req": run["backend_cpu_s"] * 1000 / sent,
            "loadgen_cpu_ms_per_req": run["loadgen_cpu_s"] * 1000 / sent,
            "rss_peak_mb": run["rss_peak_process_kb"] / MB if run["target"] != "direct" else None,
            "rss_total_mb": run["rss_peak_total_kb"] / MB if run["target"] != "direct" else None,
            "persisted": run["persisted"],
        }
        row["cpu_us_per_event"] = (row["cpu_ms_per_req"] * 1000 / row["events"]
                                   if row["cpu_ms_per_req"] is not None else None)
        # The tail: how far the slowest 1 % of first tokens are behind the median.
        row["ttft_p99_p50"] = (row["ttft_p99"] / row["ttft_p50"]
                               if row["ttft_p50"] and row["ttft_p99"] is not None else None)
        row["by_size"] = by_size(run)
        rows.append(row)
    direct = {r["scenario"]: r for r in rows if r["target"] == "direct"}
    for row in rows:
        base = direct.get(row["scenario"])
        for key in ("ttft_p50", "ttft_p99", "lat_p50", "lat_p99"):
            row[f"added_{key}"] = _diff(row[key], base[key]) if base and row["target"] != "direct" else None
    return rows


SIZE_BUCKET_KB = 10


def by_size(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Requests grouped by body size (10 KB buckets): TTFT, and with per-request CPU (one client
    at a time, ``loadgen.py``'s ``cpu_pid``) the process's CPU while each ran. Only for runs of
    more than one body size (the Claude Code sessions)."""
    sizes = run.get("req_bytes") or []
    if len(set(sizes)) < 2:
        return []
    cpu = run.get("cpu_ns") or []
    buckets: dict[int, list[int]] = {}
    for i, size in enumerate(sizes):
        buckets.setdefault(size // (SIZE_BUCKET_KB * 1000), []).append(i)
    out = []
    for bucket, indexes in sorted(buckets.items()):
        ttft = [run["ttft_us"][i] for i in indexes]
        per_cpu = [cpu[i] // 1000 for i in indexes] if cpu else []  # µs, for percentile()
        out.append({
            "kb_from": bucket * SIZE_BUCKET_KB, "kb_to": (bucket + 1) * SIZE_BUCKET_KB, "requests": len(indexes),
            "ttft_p50": percentile(ttft, 50), "ttft_p99": percentile(ttft, 99),
            "cpu_ms_p50": percentile(per_cpu, 50) if per_cpu else None,
            "cpu_ms_mean": sum(per_cpu) / len(per_cpu) / 1000 if per_cpu else None,
        })
    return out


def _row(rows: list[dict[str, Any]], scenario: str, target: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["scenario"] == scenario and r["target"] == target), None)


def targets_check(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets: (what, target, measured, verdict). A scenario that did not run is
    reported as not measured, never as passed."""
    checks: list[dict[str, Any]] = []

    def check(what: str, target: str, measured: float | None, ok: bool | None, fmt: str = "{:.2f}") -> None:
        checks.append({"what": what, "target": target,
                       "measured": "not measured" if measured is None else fmt.format(measured),
                       "verdict": "n/a" if ok is None else ("met" if ok else "NOT met")})

    gw, peer = _row(rows, "stream20-c100", "dragoman"), _row(rows, "stream20-c100", "litellm")
    ratio = gw["rps"] / peer["rps"] if gw and peer and peer["rps"] else None
    check("stream20-c100: requests/s vs LiteLLM", "≥ 10x", ratio, None if ratio is None else ratio >= 10,
          "{:.1f}x")
    cpu = gw["cpu_ms_per_req"] if gw else None
    check("stream20-c100: gateway CPU per request", "≤ 5 ms", cpu, None if cpu is None else cpu <= 5,
          "{:.2f} ms")
    paced = _row(rows, "paced-c1", "dragoman")
    for p, limit in (("p50", 3.0), ("p99", 10.0)):
        added = paced[f"added_ttft_{p}"] if paced else None
        check(f"paced-c1: added TTFT {p}", f"≤ {limit:g} ms", added, None if added is None else added <= limit,
              "{:.2f} ms")
    per_event = {}
    for name in ("stream20-c10", "stream200-c10", "stream1000-c10"):
        row = _row(rows, name, "dragoman")
        per_event[name] = row
    big = per_event["stream1000-c10"]
    check("stream1000-c10: gateway CPU per event", "≤ 40 µs", big["cpu_us_per_event"] if big else None,
          None if not big else big["cpu_us_per_event"] <= 40, "{:.1f} µs")
    a, b, c = per_event["stream20-c10"], per_event["stream200-c10"], per_event["stream1000-c10"]
    if a and b and c:
        first = (b["cpu_ms_per_req"] - a["cpu_ms_per_req"]) * 1000 / (b["events"] - a["events"])
        second = (c["cpu_ms_per_req"] - b["cpu_ms_per_req"]) * 1000 / (c["events"] - b["events"])
        check("per-event CPU flat: µs/event 200→1000 vs 20→200", "≤ 1.5x (no quadratic cost)",
              second / first if first > 0 else None, first > 0 and second <= 1.5 * first,
              f"{first:.1f} → {second:.1f} µs ({{:.2f}}x)")
    else:
        check("per-event CPU flat 20→1000 events", "≤ 1.5x", None, None)
    hold = _row(rows, "hold-c500", "dragoman")
    check("hold-c500: errors", "0", hold["errors"] if hold else None, None if not hold else hold["errors"] == 0,
          "{:.0f}")
    check("hold-c500: peak RSS per process", "≤ 200 MB", hold["rss_peak_mb"] if hold else None,
          None if not hold else hold["rss_peak_mb"] <= 200, "{:.0f} MB")
    # Issue 17: the shape real servers send, the tail at 100 clients, Claude Code's sizes.
    gw, peer = _row(rows, "vllm-shape-c100", "dragoman"), _row(rows, "vllm-shape-c100", "litellm")
    ratio = gw["rps"] / peer["rps"] if gw and peer and peer["rps"] else None
    check("vllm-shape-c100: requests/s vs LiteLLM", "≥ 10x", ratio, None if ratio is None else ratio >= 10,
          "{:.1f}x")
    cpu = gw["cpu_ms_per_req"] if gw else None
    check("vllm-shape-c100: gateway CPU per request", "≤ 5 ms", cpu, None if cpu is None else cpu <= 5,
          "{:.2f} ms")
    for name in ("vllm-shape-c100", "stream20-c100", "cc-session-c100"):
        row = _row(rows, name, "dragoman")
        tail = row["ttft_p99_p50"] if row else None
        check(f"{name}: TTFT p99 / p50", "≤ 2x", tail, None if tail is None else tail <= 2, "{:.2f}x")
    paced = _row(rows, "vllm-shape-paced-c1", "dragoman")
    added = paced["added_ttft_p50"] if paced else None
    check("vllm-shape-paced-c1: added TTFT p50", "≤ 3 ms", added, None if added is None else added <= 3,
          "{:.2f} ms")
    # A Claude Code turn, two ways: all the gateway's CPU over the turns (writer included; at
    # 100 sessions, where idle time is nothing), and while the largest turns ran, one at a time.
    sessions = _row(rows, "cc-session-c100", "dragoman")
    all_in = sessions["cpu_ms_per_req"] if sessions else None
    check("cc-session-c100: CPU per 115-161 KB turn, all threads (writer included)", "≤ 8 ms", all_in,
          None if all_in is None else all_in <= 8, "{:.2f} ms")
    session = _row(rows, "cc-session-c1", "dragoman")
    biggest = session["by_size"][-1] if session and session["by_size"] else None
    turn_cpu = biggest["cpu_ms_mean"] if biggest else None
    check("cc-session-c1: CPU while the largest turns ran" + (
        f" ({biggest['kb_from']}-{biggest['kb_to']} KB)" if biggest else ""), "≤ 8 ms", turn_cpu,
        None if turn_cpu is None else turn_cpu <= 8, "{:.2f} ms")
    gw_rows = [r for r in rows if r["target"] == "dragoman"]
    missing = sum(r["sent"] - (r["persisted"] or 0) for r in gw_rows)
    check("inspector: exchanges missing (sent - persisted, all scenarios)", "0", missing if gw_rows else None,
          None if not gw_rows else missing == 0, "{:.0f}")
    return checks


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(a: float | None, b: float | None, digits: int = 1) -> str:
    return f"{_fmt(a, digits)} / {_fmt(b, digits)}"


def markdown(results: dict[str, Any], rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    m = results["machine"]
    lines = [
        f"Run {results['started_at']}, {results['duration_s']} s, {results['rounds']} alternating round(s)"
        f"{' (QUICK)' if results['quick'] else ''}; {m['cores']} cores ({m['cpu'] or 'unknown CPU'}), "
        f"{m['memory_gib']} GiB, Python {m['python']}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_avg_at_start'])}; gateway idle CPU "
        f"{results['gateway_idle_cpu_ms_per_s']} ms/s.",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {c['what']}: {c['target']} | {c['measured']} | {c['verdict']} |" for c in checks]
    lines += [
        "",
        "| scenario | target | ok/sent | req/s | TTFT p50 / p99 ms | TTFT p99/p50 | added TTFT p50 / p99 "
        "| latency p50 / p99 ms | added latency p50 / p99 | CPU ms/req | CPU µs/event | peak RSS MB | errors "
        "| persisted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['target']} | {r['ok']}/{r['sent']} | {r['rps']:.0f} "
            f"| {_pair(r['ttft_p50'], r['ttft_p99'])} | {_fmt(r['ttft_p99_p50'], 1)}x "
            f"| {_pair(r['added_ttft_p50'], r['added_ttft_p99'])} "
            f"| {_pair(r['lat_p50'], r['lat_p99'])} | {_pair(r['added_lat_p50'], r['added_lat_p99'])} "
            f"| {_fmt(r['cpu_ms_per_req'])} | {_fmt(r['cpu_us_per_event'], 1)} | {_fmt(r['rss_peak_mb'], 0)} "
            f"| {r['errors']} | {'-' if r['persisted'] is None else r['persisted']} |")
    sized = [r for r in rows if r["by_size"]]
    if sized:
        lines += [
            "",
            "Claude Code sessions by request size (CPU per turn: the gateway's, all threads, while the "
            "turn ran; one session at a time only):",
            "",
            "| scenario | target | request KB | requests | TTFT p50 / p99 ms | CPU ms per turn p50 / mean |",
            "|---|---|---|---|---|---|",
        ]
        for r in sized:
            for b in r["by_size"]:
                lines.append(
                    f"| {r['scenario']} | {r['target']} | {b['kb_from']}-{b['kb_to']} | {b['requests']} "
                    f"| {_pair(b['ttft_p50'], b['ttft_p99'])} | {_pair(b['cpu_ms_p50'], b['cpu_ms_mean'], 2)} |")
    errors = {f"{r['scenario']}/{r['target']}": r["error_kinds"] for r in rows if r["error_kinds"]}
    if errors:
        lines += ["", "Errors: " + "; ".join(f"{k}: {v}" for k, v in errors.items())]
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    targets = list(dict.fromkeys(r["target"] for r in rows))
    colors = {"direct": "#9e9e9e", "dragoman": "#1f77b4", "litellm": "#d62728"}
    fig, axes = plt.subplots(3, 1, figsize=(12, 11))
    panels = (("rps", "requests/s (log)", True, targets),
              ("cpu_ms_per_req", "gateway CPU ms per request (log)", True, [t for t in targets if t != "direct"]),
              ("added_ttft_p50", "added TTFT p50, ms (vs direct)", False, [t for t in targets if t != "direct"]))
    for ax, (key, title, log, shown) in zip(axes, panels, strict=True):
        width = 0.8 / max(1, len(shown))
        for i, target in enumerate(shown):
            values = []
            for s in scenarios:
                row = _row(rows, s, target)
                values.append((row or {}).get(key) or 0.0)
            xs = [x + i * width for x in range(len(scenarios))]
            ax.bar(xs, values, width, label=target, color=colors.get(target))
        ax.set_title(title)
        ax.set_xticks([x + width * (len(shown) - 1) / 2 for x in range(len(scenarios))])
        ax.set_xticklabels(scenarios, rotation=20, fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def results_write(results: dict[str, Any], out: Path) -> tuple[Path, Path, Path, str]:
    """``results.json`` (raw latencies included), ``results.md`` and ``results.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(results)
    checks = targets_check(rows)
    table = markdown(results, rows, checks)
    json_path, md_path, png_path = out / "results.json", out / "results.md", out / "results.png"
    json_path.write_text(json.dumps({**results, "summary": rows, "targets_check": checks}, indent=1))
    md_path.write_text(table)
    chart(rows, png_path)
    return json_path, md_path, png_path, table


DOCS_BEGIN, DOCS_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def docs_update(path: Path, table: str) -> None:
    """Replace the generated block of ``docs/performance.md`` with the latest table."""
    text = path.read_text()
    head, sep, rest = text.partition(DOCS_BEGIN)
    _, sep2, tail = rest.partition(DOCS_END)
    if not sep or not sep2:
        raise SystemExit(f"{path} has no {DOCS_BEGIN} … {DOCS_END} block")
    path.write_text(f"{head}{DOCS_BEGIN}\n{table}{DOCS_END}{tail}")
