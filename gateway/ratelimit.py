"""Per-key request rate limits: one token bucket per key, shared by every gateway process through
Redis when ``REDIS_URL`` is set, else in this process's memory. Neither touches the database.

A key limited to N requests per minute may send a burst of N, then one more every 60/N seconds;
the bucket refills continuously, so there is no window edge at which twice the limit gets
through.

**Without Redis** the bucket is a dict entry of this process (``RateLimiter.take``, O(1), no
lock: it runs on the event loop between two awaits, so no other request can interleave with it).
The limit is then per process: behind a load balancer with P processes a key may send P x N.

**With Redis** (``RateLimiter.atake``) the same bucket lives in one Redis hash per key
(``dragoman:ratelimit:<key id>``), updated by a Lua script in one EVALSHA round trip, atomically
however many processes ask at once, on Redis's clock (``TIME``) so the hosts' clocks need not
agree. The hash expires once it would be full again, so idle keys leave nothing behind. Keys
without a limit never reach Redis. A limit exists to stop a runaway client, not to bill one, so
Redis being down or slow (no answer within ``REDIS_TIMEOUT_SECONDS``) never fails a request: this
process's own bucket decides instead, the outage is logged once and counted (``outages``), and
Redis is asked again at most once per ``REDIS_RETRY_SECONDS``; when it answers, the shared bucket
decides again.

Redis clients are bound to the event loop that created their connections, so there is one per
loop (tests run each in a new one; the server has one).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from translation.errors import ApiError

log = logging.getLogger(__name__)

# Buckets live as long as their key is used; past this many, full ones (indistinguishable from
# new ones) are dropped, so memory stays bounded even if keys come and go for months.
MAX_BUCKETS = 10_000
# A request waits at most this long for Redis's answer (for each connect, write and read) before
# its own process's bucket decides.
REDIS_TIMEOUT_SECONDS = 0.075
# While Redis does not answer, one request per this interval tries it again.
REDIS_RETRY_SECONDS = 1.0
REDIS_KEY_PREFIX = "dragoman:ratelimit:"

# KEYS[1]: the key's bucket, a hash {tokens, at}. ARGV[1]: the limit per minute; ARGV[2]: now in
# seconds, or "" for the server's clock. Returns the seconds to wait as a string ("0": allowed),
# since Redis would truncate a Lua number to an integer. Same arithmetic as RateLimiter.take.
TAKE_LUA = """
local per_minute = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then
  tokens = per_minute
else
  tokens = math.min(per_minute, tokens + math.max(0, now - at) * per_minute / 60)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) * 60 / per_minute
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((per_minute - tokens) * 60000 / per_minute) + 1000)
return string.format('%.6f', wait)
"""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    per_minute: int


class RateLimiter:
    """The buckets of one process. ``redis_url``: None reads ``settings.REDIS_URL`` on first use,
    "" keeps everything local. ``shared_clock``: the time the Redis script counts with (None:
    Redis's ``TIME``); ``clock`` is the local buckets' and the retry interval's."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_BUCKETS,
                 redis_url: str | None = None, shared_clock: Callable[[], float] | None = None,
                 redis_timeout: float = REDIS_TIMEOUT_SECONDS, redis_retry: float = REDIS_RETRY_SECONDS) -> None:
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[int, _Bucket] = {}
        self._redis_url_given = redis_url
        self._redis_url = redis_url
        self._shared_clock = shared_clock
        self._redis_timeout = redis_timeout
        self._redis_retry = redis_retry
        self._scripts: dict[asyncio.AbstractEventLoop, tuple[str, Redis, AsyncScript]] = {}
        self._down = False
        self._retry_at = 0.0
        self.outages = 0  # times Redis stopped answering
        self.fallbacks = 0  # requests this process's bucket decided because Redis did not answer

    def take(self, *, key_id: int, per_minute: int) -> float:
        """Spend one request of ``key_id``'s allowance in this process: 0.0 if allowed, else the
        seconds until the next request would be. A changed limit applies from the next request on."""
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

    async def atake(self, *, key_id: int, per_minute: int) -> float:
        """``take`` in the bucket all processes share (Redis), or in this process's when there is
        no Redis or it does not answer."""
        if not self.redis_url:
            return self.take(key_id=key_id, per_minute=per_minute)
        if self._down:
            if self._clock() < self._retry_at:
                return self._local(key_id=key_id, per_minute=per_minute)
            self._retry_at = self._clock() + self._redis_retry  # one probe per interval, not one per request
        now = "" if self._shared_clock is None else f"{self._shared_clock():.6f}"
        try:
            wait = await self._script()(keys=[f"{REDIS_KEY_PREFIX}{key_id}"], args=[per_minute, now])
        except (RedisError, OSError, TimeoutError) as exc:
            return self._redis_failed(exc, key_id=key_id, per_minute=per_minute)
        if self._down:
            self._down = False
            log.warning("rate limits: Redis answers again; limits are shared by all processes again")
        return float(wait)

    @property
    def redis_down(self) -> bool:
        """Whether Redis failed to answer last time (this process's buckets decide meanwhile)."""
        return self._down

    @property
    def redis_url(self) -> str:
        if self._redis_url is None:
            from django.conf import settings

            self._redis_url = settings.REDIS_URL
        return self._redis_url

    def _local(self, *, key_id: int, per_minute: int) -> float:
        self.fallbacks += 1
        return self.take(key_id=key_id, per_minute=per_minute)

    def _redis_failed(self, exc: BaseException, *, key_id: int, per_minute: int) -> float:
        if not self._down:
            self._down = True
            self.outages += 1
            log.warning("rate limits: Redis did not answer (%s); each process limits by itself until it does",
                        str(exc) or type(exc).__name__)
        self._retry_at = self._clock() + self._redis_retry
        return self._local(key_id=key_id, per_minute=per_minute)

    def _script(self) -> AsyncScript:
        """The take script bound to this event loop's Redis client (made on first use)."""
        loop = asyncio.get_running_loop()
        found = self._scripts.get(loop)
        if found is None or found[0] != self.redis_url:
            for stale in [other for other in self._scripts if other.is_closed()]:
                del self._scripts[stale]
            # The timeout bounds each connect, read and write rather than the whole call, so that a
            # Redis a few milliseconds away can still be connected to (connect, handshake, script
            # load: several round trips, once), and no retries: a request waits for one attempt.
            client = Redis.from_url(self.redis_url, socket_timeout=self._redis_timeout,
                                    socket_connect_timeout=self._redis_timeout, retry=Retry(NoBackoff(), 0))
            found = self._scripts[loop] = (self.redis_url, client, client.register_script(TAKE_LUA))
        return found[2]

    async def aclose(self) -> None:
        """Close this event loop's Redis client (the next ``atake`` makes a new one)."""
        found = self._scripts.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[1].aclose()

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * b.per_minute / 60.0 >= b.per_minute]
        for key_id in full:
            del self._buckets[key_id]
        if len(self._buckets) >= self._max_buckets:  # every key busy at once: forgive them all
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)

    def reset(self) -> None:
        """Forget this process's buckets and any outage (the Redis buckets are left alone), and
        read ``settings.REDIS_URL`` again if it was read from there."""
        self._buckets.clear()
        self._redis_url = self._redis_url_given
        self._down, self._retry_at = False, 0.0
        self.outages = self.fallbacks = 0


limiter = RateLimiter()


def ratelimit_check(*, key_id: int, per_minute: int | None) -> None:
    """Raise the 429 a client should see when ``key_id`` is over its limit in this process's
    bucket (None: unlimited). The request path uses ``ratelimit_acheck``, which shares it."""
    if per_minute is None:
        return
    # 0 cannot be saved through the admin or the config file; should it reach here, it blocks.
    _refuse_if_waiting(limiter.take(key_id=key_id, per_minute=per_minute) if per_minute > 0 else 60.0, per_minute)


async def ratelimit_acheck(*, key_id: int, per_minute: int | None) -> None:
    """``ratelimit_check`` against the bucket every gateway process shares when Redis is set."""
    if per_minute is None:
        return
    _refuse_if_waiting(await limiter.atake(key_id=key_id, per_minute=per_minute) if per_minute > 0 else 60.0,
                       per_minute)


def _refuse_if_waiting(wait: float, per_minute: int) -> None:
    if wait <= 0.0:
        return
    retry_after = max(1, math.ceil(wait))
    raise ApiError(429, f"This API key is limited to {per_minute} requests per minute; retry after "
                        f"{retry_after} s", source="transient", retry_after=str(retry_after))
