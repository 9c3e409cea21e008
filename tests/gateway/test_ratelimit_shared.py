"""Rate limits shared by gateway processes through Redis (REDIS_URL): against a real redis-server.

Two ``RateLimiter`` objects stand for two processes. They allow a key's N per minute once in
total, refill exactly like the in-process bucket, and when Redis stops or stalls they fall back
to their own buckets (requests are still answered, the outage is logged once) until Redis
answers again. The clock is injected so refill is tested without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from gateway import ratelimit, snapshot
from gateway.models import ApiKey
from gateway.ratelimit import REDIS_KEY_PREFIX, RateLimiter
from tests.conftest import Upstream, unavailable
from tests.e2e.conftest import free_port
from tests.gateway.helpers import chat_completion, user_request
from tests.multi import services
from tests.multi.services import ServiceMissing, redis_server


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """One port for every ``redis_server()`` of the test, so a restarted server is the same Redis."""
    port = free_port()
    monkeypatch.setattr(services, "free_port", lambda: port)
    return port


@pytest.fixture
def redis_url(redis_port: int) -> Iterator[str]:
    try:
        with redis_server() as url:
            yield url
    except ServiceMissing as missing:
        unavailable("redis-server", str(missing))


def processes(url: str, clock: Clock, count: int = 2) -> list[RateLimiter]:
    return [RateLimiter(redis_url=url, clock=clock, shared_clock=clock) for _ in range(count)]


async def test_two_processes_sharing_one_redis_allow_the_limit_once_not_twice(redis_url: str) -> None:
    a, b = processes(redis_url, Clock())
    server = redis.Redis.from_url(redis_url)
    assert [await limiter.atake(key_id=6, per_minute=100) for limiter in (a, b)] == [0.0, 0.0]  # connected
    server.config_resetstat()
    waits = [await limiter.atake(key_id=7, per_minute=5) for _ in range(5) for limiter in (a, b)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == [pytest.approx(12.0)] * 5  # 60 s / 5, from either process
    calls = {name: stats["calls"] for name, stats in server.info("commandstats").items()}
    # One round trip per request: its EVALSHA (the rest ran inside the script).
    assert calls == {"cmdstat_evalsha": 10, "cmdstat_hmget": 10, "cmdstat_hset": 10, "cmdstat_pexpire": 10,
                     "cmdstat_config|resetstat": 1}
    assert (a.outages, b.outages, len(a), len(b)) == (0, 0, 0, 0)  # Redis decided, no local bucket
    assert await a.atake(key_id=8, per_minute=5) == 0.0  # keys do not share a bucket
    await a.aclose()
    await b.aclose()


async def test_the_shared_bucket_refills_continuously_exactly_like_the_local_one(redis_url: str) -> None:
    clock = Clock()
    shared = processes(redis_url, clock, count=3)
    local = RateLimiter(clock=clock, redis_url="")
    rng = random.Random(16)
    for _ in range(400):
        clock.now += rng.choice([0.0, 0.0, 0.5, 3.0, 11.0, 75.0])
        per_minute = rng.choice([2, 6, 6, 6, 60])  # a changed limit applies from the next request
        expected = local.take(key_id=1, per_minute=per_minute)
        got = await rng.choice(shared).atake(key_id=1, per_minute=per_minute)
        assert got == pytest.approx(expected, abs=1e-5)
    assert [limiter.outages for limiter in shared] == [0, 0, 0]
    for limiter in shared:
        await limiter.aclose()


async def test_without_an_injected_clock_redis_time_counts_and_idle_buckets_expire(redis_url: str) -> None:
    limiter = RateLimiter(redis_url=redis_url)
    assert [await limiter.atake(key_id=3, per_minute=2) for _ in range(2)] == [0.0, 0.0]
    assert 29.0 < await limiter.atake(key_id=3, per_minute=2) <= 30.0
    ttl = redis.Redis.from_url(redis_url).pttl(f"{REDIS_KEY_PREFIX}3")
    assert 0 < ttl <= 61_000  # gone once it would be full again: an idle key leaves nothing
    await limiter.aclose()


def test_each_event_loop_gets_its_own_redis_client(redis_url: str) -> None:
    limiter = RateLimiter(redis_url=redis_url, redis_timeout=1.0)
    assert asyncio.run(limiter.atake(key_id=4, per_minute=3)) == 0.0
    assert asyncio.run(limiter.atake(key_id=4, per_minute=3)) == 0.0  # a client of a closed loop would fail
    assert asyncio.run(limiter.atake(key_id=4, per_minute=3)) == 0.0
    assert asyncio.run(limiter.atake(key_id=4, per_minute=3)) > 0.0
    assert limiter.outages == 0


async def test_redis_stopped_falls_back_to_each_process_bucket_then_shares_again(
        redis_port: int, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    a, b = processes(f"redis://127.0.0.1:{redis_port}/0", clock)
    try:
        with redis_server():
            assert [await limiter.atake(key_id=9, per_minute=2) for limiter in (a, b)] == [0.0, 0.0]
            assert await a.atake(key_id=9, per_minute=2) > 0.0
    except ServiceMissing as missing:
        unavailable("redis-server", str(missing))

    caplog.set_level(logging.WARNING, logger="gateway.ratelimit")
    start = time.monotonic()
    local = [await a.atake(key_id=9, per_minute=2) for _ in range(3)]
    assert time.monotonic() - start < 1.0
    assert local == [0.0, 0.0, pytest.approx(30.0)]  # a's own bucket: its burst, then refused
    assert await b.atake(key_id=9, per_minute=2) == 0.0  # b's own, full
    assert (a.outages, a.fallbacks, b.outages, b.fallbacks) == (1, 3, 1, 1)
    assert len([r for r in caplog.records if "did not answer" in r.message]) == 2  # once each, not per request

    with redis_server():
        assert await a.atake(key_id=9, per_minute=2) > 0.0  # within a second of the failure: not asked yet
        assert a.fallbacks == 4
        clock.now += 1.0
        assert [await limiter.atake(key_id=9, per_minute=2) for limiter in (a, b)] == [0.0, 0.0]  # the new Redis
        assert await b.atake(key_id=9, per_minute=2) > 0.0  # ...shared again
        assert await a.atake(key_id=9, per_minute=2) > 0.0
        assert (a.outages, a.fallbacks, b.outages, b.fallbacks) == (1, 4, 1, 1)
        assert not a.redis_down and not b.redis_down
        assert len([r for r in caplog.records if "answers again" in r.message]) == 2
        await a.aclose()
        await b.aclose()


async def test_a_stalled_redis_costs_a_request_its_timeout_not_an_error(redis_url: str) -> None:
    clock = Clock()
    limiter = RateLimiter(redis_url=redis_url, clock=clock, redis_timeout=0.075)
    assert await limiter.atake(key_id=5, per_minute=10) == 0.0
    redis.Redis.from_url(redis_url).client_pause(1000, all=True)
    start = time.monotonic()
    assert await limiter.atake(key_id=5, per_minute=10) == 0.0
    assert time.monotonic() - start < 0.5
    assert (limiter.outages, limiter.fallbacks) == (1, 1)
    deadline = time.monotonic() + 10
    while limiter.redis_down:  # the pause ends after a second; asked again once per (injected) second
        assert time.monotonic() < deadline, "Redis was not asked again, or never answered"
        await asyncio.sleep(0.05)
        clock.now += 1.0
        await limiter.atake(key_id=5, per_minute=10)
    assert limiter.outages == 1
    await limiter.aclose()


@pytest.mark.django_db(transaction=True)
async def test_a_request_is_answered_while_redis_is_down(
        gateway_setup: str, upstream: Upstream, settings: Any) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion())
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    await sync_to_async(ApiKey.objects.filter(name="tester").update)(rate_limit_per_minute=2)
    snapshot.snapshot_invalidate()
    ratelimit.limiter.reset()  # reads REDIS_URL again
    try:
        statuses = []
        for _ in range(3):
            response = await AsyncClient().post("/v1/messages", data=user_request(), content_type="application/json",
                                                headers={"x-api-key": gateway_setup})
            statuses.append(response.status_code)
        assert statuses == [200, 200, 429]
        assert ratelimit.limiter.outages == 1
    finally:
        ratelimit.limiter.reset()  # REDIS_URL is read again after the settings are restored
