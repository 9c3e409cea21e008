"""Failover before the first byte: a message tries its route's targets in ``gateway.routing``'s
order until one answers, within the route's attempt limit and its ``failover_seconds`` deadline.

A target's failure (refused or dropped connection, a timeout before its answer, 5xx, 429, 529:
an ``ApiError`` whose source is the backend or transient) moves the request to the next target,
translated afresh for that target's kind and capabilities. A failure that is the client's (a
400 for its request, a prompt too long) is answered at once: another target would refuse it too.
Once an attempt's answer is accepted (a non-streamed message translated, or a stream's head
received) the client's response comes from it; a later failure of its stream is the client's
``event: error``, never replayed elsewhere. Every attempt is recorded (``ExchangeRecord.attempts``)
and reported to the backend's passive health (``gateway.health``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.exchange import Exchange
from gateway.health import health
from gateway.routing import Reason, targets_order
from gateway.snapshot import RouteInfo, Target
from translation.errors import ApiError
from translation.masking import secrets_redact
from translation.schemas import CountTokensRequest, MessagesRequest
from translation.session import session_of

R = TypeVar("R")
Send = Callable[[MessagesRequest, RouteInfo, Exchange], Awaitable[R]]


def retry_after_seconds(error: ApiError) -> float | None:
    """A backend's ``retry-after`` in seconds (the HTTP-date form is not used by model servers)."""
    if error.retry_after is None:
        return None
    try:
        return float(error.retry_after)
    except ValueError:
        return None


def failover_allowed(error: ApiError) -> bool:
    """Whether another target might answer where this one failed: not for the client's own mistakes."""
    return error.source != "client"


def targets_planned(route: RouteInfo, req: MessagesRequest | CountTokensRequest,
                    exchange: Exchange) -> list[tuple[Target, Reason]]:
    """The targets this request tries, in order (a route built without targets is its own one)."""
    targets = route.targets or (Target(route=route, group=0, weight=1, seed=b""),)
    if len(targets) == 1:
        return [(targets[0], "only target")]
    metadata = getattr(req, "metadata", None)
    session = session_of(exchange.client_headers, metadata.model_dump() if metadata is not None else None)
    return targets_order(targets, session=session, available=health.available, inflight=health.inflight)


async def attempts_run(req: MessagesRequest, route: RouteInfo, exchange: Exchange, send: Send[R]) -> R:
    """``send`` the request to each planned target in turn until one answers; the last error otherwise."""
    plan = targets_planned(route, req, exchange)[:max(1, route.max_attempts)]
    deadline_ms = route.failover_seconds * 1000
    errors: list[ApiError] = []
    for number, (target, reason) in enumerate(plan):
        late = exchange.clock() > deadline_ms
        # Past the deadline no further target is tried, except the one after a target that was
        # left silent at the deadline (that wait is what the deadline was for).
        if number and late and errors[-1].type != "timeout_error":
            break
        name = target.name
        exchange.attempt_started(target, reason)
        exchange.failover_set(deadline_ms if number < len(plan) - 1 and not late else None)
        health.attempt_started(name)
        try:
            result = await send(req, target.route, exchange)
        except ApiError as exc:
            health.attempt_ended(name)
            if not failover_allowed(exc):
                exchange.attempt_failed(exc, outcome="gave up")
                raise
            health.failed(name, secrets_redact(exc.message, exchange.record.secrets),
                          retry_after=retry_after_seconds(exc))
            last = number == len(plan) - 1
            exchange.attempt_failed(exc, outcome="gave up" if last else "failed")
            errors.append(exc)
            continue
        except BaseException:
            health.attempt_ended(name)
            raise
        health.succeeded(name)
        exchange.attempt_succeeded(_release(name))
        return result
    exchange.attempts_exhausted()
    raise _final_error(errors)


def _release(name: str) -> Callable[[str], None]:
    def release(broke: str) -> None:
        health.attempt_ended(name)
        if broke:
            health.failed(name, broke)
    return release


def _final_error(errors: list[ApiError]) -> ApiError:
    """The client's error when no target answered: the last one's, naming the others' too."""
    last = errors[-1]
    if len(errors) > 1 and last.body is None:
        earlier = "; ".join(e.message[:200] for e in errors[:-1])
        last.message = f"{last.message} (after {len(errors)} attempts; earlier: {earlier})"
    return last
