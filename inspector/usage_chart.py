"""The usage chart's geometry: stacked bars per bucket for the top groups (the rest as "other"),
drawn by the template as inline SVG. Every bar carries its exact numbers for the hover title."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from inspector.usage import Bucket, Metric, UsageRow

WIDTH, HEIGHT = 1000, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 30, 10, 28
# Okabe and Ito's palette, told apart also with the common colour blindnesses; grey for the rest.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D1F"]
OTHER, OTHER_COLOR = "other", "#9E9E9E"
UNKNOWN = "(none)"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class LegendEntry:
    name: str
    color: str
    total: int

    @property
    def total_text(self) -> str:
        return f"{self.total:,}"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    legend: list[LegendEntry]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    metric: Metric
    baseline: float


def group_label(name: str) -> str:
    return name or UNKNOWN


def compact(number: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= size:
            return f"{number / size:.3g}{suffix}"
    return f"{number:.0f}"


def _nice_step(peak: int) -> int:
    """The smallest 1, 2, 2.5 or 5 times a power of ten whose four steps reach ``peak`` (the
    axis has four ticks above zero)."""
    step = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            if factor * step == int(factor * step) and 4 * factor * step >= peak:
                return int(factor * step)
        step *= 10


def bucket_labels(buckets: list[datetime], bucket: Bucket, every: int) -> list[str]:
    """Every ``every``-th bucket's label; an hour shows its date too where the day changes."""
    out: list[str] = []
    day = None
    for start in buckets[::every]:
        local = timezone.localtime(start)
        if bucket == "day":
            out.append(local.strftime("%b %-d"))
        else:
            out.append(local.strftime("%H:%M" if local.date() == day else "%b %-d %H:%M"))
        day = local.date()
    return out


def _value(row: UsageRow, metric: Metric) -> int:
    return row.tokens if metric == "tokens" else row.requests


def _title(row: UsageRow, name: str, bucket: Bucket, metric: Metric) -> str:
    when = timezone.localtime(row.bucket).strftime("%Y-%m-%d %H:%M" if bucket == "hour" else "%Y-%m-%d")
    ttft = "" if row.ttft_avg_ms is None else f", TTFT avg {row.ttft_avg_ms:,.0f} ms"
    return (f"{name} · {when}: {row.tokens:,} tokens (in {row.input_tokens:,}, out {row.output_tokens:,}, "
            f"cache read {row.cache_read_tokens:,}, cache write {row.cache_creation_tokens:,}), "
            f"{row.requests:,} requests, {row.errors:,} errors{ttft}")


def _merge(rows: list[UsageRow], bucket: datetime) -> UsageRow:
    """The groups outside the top ones, added together for one bucket (no TTFT average: the
    groups' averages do not add up to it exactly)."""
    return UsageRow(bucket=bucket, group=OTHER, requests=sum(r.requests for r in rows),
                    errors=sum(r.errors for r in rows), input_tokens=sum(r.input_tokens for r in rows),
                    output_tokens=sum(r.output_tokens for r in rows),
                    cache_read_tokens=sum(r.cache_read_tokens for r in rows),
                    cache_creation_tokens=sum(r.cache_creation_tokens for r in rows),
                    ttft_avg_ms=None, failovers=sum(r.failovers for r in rows))


def usage_chart(*, rows: Iterable[UsageRow], buckets: list[datetime], bucket: Bucket, metric: Metric,
                top: int = 6) -> Chart:
    """Stacked bars, one per bucket of ``buckets``, a segment per group of the ``top`` largest (by
    ``metric`` over the range), the others as one grey segment."""
    found = list(rows)
    totals: dict[str, int] = {}
    for row in found:
        totals[row.group] = totals.get(row.group, 0) + _value(row, metric)
    ranked = sorted(totals, key=lambda g: (-totals[g], g))
    leaders = [g for g in ranked[:top] if totals[g] > 0]
    colors = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(leaders)}
    rest = [g for g in ranked if g not in colors and totals[g] > 0]
    legend = [LegendEntry(group_label(g), colors[g], totals[g]) for g in leaders]
    if rest:
        legend.append(LegendEntry(f"{OTHER} ({len(rest)})", OTHER_COLOR, sum(totals[g] for g in rest)))

    stacks: dict[datetime, list[UsageRow]] = {start: [] for start in buckets}
    spill: dict[datetime, list[UsageRow]] = {}
    for row in found:
        if row.bucket not in stacks:  # only when ``buckets`` does not cover ``rows``
            continue
        if row.group in colors:
            stacks[row.bucket].append(row)
        elif _value(row, metric) > 0:
            spill.setdefault(row.bucket, []).append(row)
    for start, others in spill.items():
        stacks[start].append(_merge(others, start))

    peak = max((sum(_value(r, metric) for r in stack) for stack in stacks.values()), default=0)
    step = _nice_step(peak)
    top_value = 4 * step
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(buckets), 1)
    gap = min(slot * 0.2, 6)
    order = {g: i for i, g in enumerate(leaders)}
    bars: list[Bar] = []
    for i, start in enumerate(buckets):
        y = float(TOP + plot_h)
        for row in sorted(stacks[start], key=lambda r: order.get(r.group, len(order))):
            value = _value(row, metric)
            if value <= 0:
                continue
            height = plot_h * value / top_value
            y -= height
            name = group_label(row.group) if row.group in colors else f"{OTHER} ({len(rest)})"
            bars.append(Bar(x=round(LEFT + i * slot + gap / 2, 2), y=round(y, 2), width=round(slot - gap, 2),
                            height=round(height, 2), color=colors.get(row.group, OTHER_COLOR),
                            title=_title(row, name, bucket, metric)))
    y_ticks = [Tick(x=LEFT - 6, y=round(TOP + plot_h * (1 - k / 4), 2), label=compact(step * k))
               for k in range(5)]
    every = max(1, -(-len(buckets) // 10))  # at most ten labels
    x_ticks = [Tick(x=round(LEFT + (i * every + 0.5) * slot, 2), y=HEIGHT - 8, label=label)
               for i, label in enumerate(bucket_labels(buckets, bucket, every))]
    return Chart(width=WIDTH, height=HEIGHT, bars=bars, legend=legend, y_ticks=y_ticks, x_ticks=x_ticks,
                 metric=metric, baseline=TOP + plot_h)
