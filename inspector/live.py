"""Live tail: every instance publishes exchange summaries to one channel-layer group.

Publishing never blocks the request: ``group_send`` runs as a fire-and-forget task on the
running loop (in-memory layer: a queue put; Redis: one network write off the request's path).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

from inspector.rows import VERDICT_LABELS, endpoint_label, status_label, time_label, verdict_of
from translation.session import SESSION_HEADER, header

if TYPE_CHECKING:
    from inspector.recorder import ExchangeRecord

log = logging.getLogger(__name__)

GROUP = "inspector-live"
_tasks: set[asyncio.Task[None]] = set()


def summary_row(*, id: str, created_at: datetime, endpoint: str, method: str, path: str, key_name: str,
                key_hint: str, session_id: str, client_model: str, backend_name: str, upstream_model: str,
                stream: bool, status: int, stop_reason: str, error_type: str, disconnected: bool,
                input_tokens: int | None, output_tokens: int | None, rewrite_count: int,
                ttft_ms: float | None, overhead_ms: float | None, valid: bool | None) -> dict[str, Any]:
    """One row of the live tail, for a stored exchange or one happening now: the columns and
    labels of the stored list (inspector.rows)."""
    time_short, time_full = time_label(created_at)
    status_text, is_error = status_label(status=status, error_type=error_type, disconnected=disconnected)
    verdict = verdict_of(valid=valid, error_type=error_type)
    return {
        "id": id, "created_at": created_at.isoformat(), "time": time_short, "time_title": time_full,
        "endpoint": endpoint, "endpoint_label": endpoint_label(endpoint=endpoint, method=method, path=path),
        "path": path, "key_name": key_name, "key_hint": key_hint, "session_id": session_id,
        "client_model": client_model, "backend_name": backend_name, "upstream_model": upstream_model,
        "stream": stream, "status": status, "status_label": status_text, "is_error": is_error,
        "stop_reason": stop_reason, "error_type": error_type, "input_tokens": input_tokens,
        "output_tokens": output_tokens, "rewrite_count": rewrite_count, "ttft_ms": ttft_ms,
        "overhead_ms": overhead_ms, "verdict": verdict, "verdict_label": VERDICT_LABELS[verdict][0],
        "verdict_title": VERDICT_LABELS[verdict][1],
    }


def exchange_summary(record: ExchangeRecord, *, state: str) -> dict[str, Any]:
    """What the live tail shows of ``record`` (``state``: in-flight | done). Cheap dictionary
    reads only: it runs on the request path. The stream verdict is the writer's (too costly
    here), so a live row shows none until the page is reloaded."""
    usage = record.usage or {}
    request = record.client_request
    return {**summary_row(
        id=record.id, created_at=record.created_at, endpoint=record.endpoint,
        method=str(request.get("method") or ""), path=str(request.get("path") or ""), key_name=record.key_name,
        key_hint=record.key_hint, session_id=header(request.get("headers"), SESSION_HEADER),
        client_model=record.client_model, backend_name=record.backend_name, upstream_model=record.upstream_model,
        stream=record.stream, status=record.status if state == "done" else 0, stop_reason=record.stop_reason,
        error_type=record.error_type, disconnected=record.disconnected, input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"), rewrite_count=len(record.notes), ttft_ms=record.ttft_ms(),
        overhead_ms=record.overhead_ms() if state == "done" else None, valid=None), "state": state}


def live_publish(record: ExchangeRecord, *, state: str, stream: bool | None = None) -> None:
    """Tell live-tail pages about ``record`` (``state``: in-flight | done). Never raises."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # not on the request path (a management command, the writer thread)
    try:
        layer = get_channel_layer()
        if layer is None or (isinstance(layer, InMemoryChannelLayer) and not layer.groups.get(GROUP)):
            return  # nobody watches this process's tail (a shared layer cannot tell: it always sends)
        summary = exchange_summary(record, state=state)
        if stream is not None:
            summary["stream"] = stream
        task = loop.create_task(layer.group_send(GROUP, {"type": "exchange.summary", "exchange": summary}))
    except Exception:
        log.debug("inspector live tail: publish failed", exc_info=True)
        return
    _tasks.add(task)
    task.add_done_callback(_task_done)


def _task_done(task: asyncio.Task[None]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("inspector live tail: publish failed: %s", task.exception())
