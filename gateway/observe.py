"""Where a finished exchange is reported to what watches the process from outside (``/metrics``,
OpenTelemetry traces): every exchange the inspector records passes through ``exchange_observed``
exactly once, just before the recorder takes it (``Exchange.finish`` for the pipeline's,
``gateway.middleware`` for the failures that never reached it).

Observers run on the event loop, on the request path: each must be cheap (counter updates, a
span handed to a batching exporter) and must not raise; one that does is logged and the
exchange goes on to the inspector regardless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from inspector.recorder import ExchangeRecord

log = logging.getLogger(__name__)

Observer = Callable[[ExchangeRecord], None]

_observers: list[Observer] = []


def observer_add(observer: Observer) -> None:
    """Register ``observer`` (once: adding it again changes nothing)."""
    if observer not in _observers:
        _observers.append(observer)


def observer_remove(observer: Observer) -> None:
    if observer in _observers:
        _observers.remove(observer)


def exchange_observed(record: ExchangeRecord) -> None:
    for observer in _observers:
        try:
            observer(record)
        except Exception:
            log.exception("observer %r failed on exchange %s", observer, record.id)
