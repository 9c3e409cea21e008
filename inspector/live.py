"""Live tail: every instance publishes exchange summaries to one channel-layer group.

Publishing never blocks the request: ``group_send`` runs as a fire-and-forget task on the
running loop (in-memory layer: a queue put; Redis: one network write off the request's path).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

if TYPE_CHECKING:
    from inspector.recorder import ExchangeRecord

log = logging.getLogger(__name__)

GROUP = "inspector-live"
_tasks: set[asyncio.Task[None]] = set()


def exchange_summary(record: ExchangeRecord, *, state: str) -> dict[str, Any]:
    usage = record.usage or {}
    return {
        "id": record.id, "state": state, "created_at": record.created_at.isoformat(),
        "endpoint": record.endpoint, "key_name": record.key_name, "client_model": record.client_model,
        "backend_name": record.backend_name, "upstream_model": record.upstream_model, "stream": record.stream,
        "status": record.status, "stop_reason": record.stop_reason, "error_type": record.error_type,
        "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
        "rewrite_count": len(record.notes), "ttft_ms": record.ttft_ms(),
        "duration_ms": record.timings.get("finished"),
    }


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
