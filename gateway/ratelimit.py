"""Per-key request rate limits, enforced in memory on the request path: no DB query, no lock.

One token bucket per key id. A key limited to N requests per minute may send a burst of N, then
one more every 60/N seconds; the bucket refills continuously, so there is no window edge at
which twice the limit gets through. A request costs O(1) (one dict lookup and a few floats).

The limit is **per gateway process**: with several processes behind a load balancer a key may
send up to (processes x N) per minute. A shared counter (Redis) would cost a network round trip
and a new failure mode on every request of every key, for a limit whose job is to stop a runaway
client, not to bill one; divide N by the number of processes if the exact total matters.

There is no lock because there is nothing to race: ``take`` runs on the event loop between two
awaits, so no other request can interleave with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from translation.errors import ApiError

# Buckets live as long as their key is used; past this many, full ones (indistinguishable from
# new ones) are dropped, so memory stays bounded even if keys come and go for months.
MAX_BUCKETS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    per_minute: int


class RateLimiter:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_BUCKETS) -> None:
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[int, _Bucket] = {}

    def take(self, *, key_id: int, per_minute: int) -> float:
        """Spend one request of ``key_id``'s allowance: 0.0 if allowed, else the seconds until
        the next request would be. A changed limit applies from the next request on."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._prune(now)
            bucket = self._buckets[key_id] = _Bucket(tokens=float(per_minute), at=now, per_minute=per_minute)
        else:
            bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.at) * per_minute / 60.0)
            bucket.at, bucket.per_minute = now, per_minute
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) * 60.0 / per_minute

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * b.per_minute / 60.0 >= b.per_minute]
        for key_id in full:
            del self._buckets[key_id]
        if len(self._buckets) >= self._max_buckets:  # every key busy at once: forgive them all
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)

    def reset(self) -> None:
        self._buckets.clear()


limiter = RateLimiter()


def ratelimit_check(*, key_id: int, per_minute: int | None) -> None:
    """Raise the 429 a client should see when ``key_id`` is over its limit (None: unlimited)."""
    if per_minute is None:
        return
    # 0 cannot be saved through the admin or the config file; should it reach here, it blocks.
    wait = limiter.take(key_id=key_id, per_minute=per_minute) if per_minute > 0 else 60.0
    if wait <= 0.0:
        return
    retry_after = max(1, math.ceil(wait))
    raise ApiError(429, f"This API key is limited to {per_minute} requests per minute; retry after "
                        f"{retry_after} s", source="transient", retry_after=str(retry_after))
