"""The optional per-key rate limit: a token bucket per key, in memory, O(1) per request; over
the limit a client gets 429 rate_limit_error with an integer retry-after, and the inspector
records the refusal."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client

from gateway.config import ConfigError, config_apply, config_parse
from gateway.models import ApiKey
from gateway.ratelimit import RateLimiter, ratelimit_check
from inspector.models import Exchange
from inspector.recorder import recorder
from tests.conftest import Upstream
from tests.gateway.helpers import chat_completion, user_request
from tests.security.conftest import api_post, error_of
from translation.errors import ApiError

KeyMake = Callable[..., Awaitable[str]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_may_burst_its_minute_then_one_request_per_share_of_it() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert [limiter.take(key_id=1, per_minute=6) for _ in range(6)] == [0.0] * 6
    assert limiter.take(key_id=1, per_minute=6) == pytest.approx(10.0)  # 60 s / 6
    clock.now += 4
    assert limiter.take(key_id=1, per_minute=6) == pytest.approx(6.0)
    clock.now += 6
    assert limiter.take(key_id=1, per_minute=6) == 0.0
    assert limiter.take(key_id=2, per_minute=6) == 0.0  # keys do not share a bucket


def test_a_refused_request_costs_nothing_and_a_quiet_key_refills_to_its_limit_only() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(3):
        limiter.take(key_id=1, per_minute=3)
    for _ in range(5):
        assert limiter.take(key_id=1, per_minute=3) > 0
    clock.now += 20
    assert limiter.take(key_id=1, per_minute=3) == 0.0  # refusals did not dig a deeper hole
    clock.now += 3600
    assert [limiter.take(key_id=1, per_minute=3) for _ in range(4)][-1] > 0  # a burst of 3, not 180


def test_a_changed_limit_applies_from_the_next_request() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(100):
        limiter.take(key_id=1, per_minute=1000)
    # Lowered: the 900 left are clamped to the new burst of 2.
    assert [limiter.take(key_id=1, per_minute=2) for _ in range(3)] == [0.0, 0.0, pytest.approx(30.0)]
    clock.now += 30
    assert limiter.take(key_id=1, per_minute=2) == 0.0


def test_memory_stays_bounded_however_many_keys_come_and_go() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, max_buckets=100)
    for key_id in range(10_000):
        limiter.take(key_id=key_id, per_minute=60)
        clock.now += 1.0  # each bucket is full again before the next key arrives
        assert len(limiter) <= 100
    busy = RateLimiter(clock=clock, max_buckets=100)
    for key_id in range(1000):
        busy.take(key_id=key_id, per_minute=60)  # all busy at once: still bounded
        assert len(busy) <= 100


def test_checking_the_limit_touches_no_database_and_is_cheap() -> None:
    # No django_db mark: any query here would raise.
    start = time.perf_counter()
    for i in range(100_000):
        ratelimit_check(key_id=i % 50, per_minute=1_000_000)
    assert time.perf_counter() - start < 2.0  # about 1 µs each; generous for a busy CI box
    ratelimit_check(key_id=1, per_minute=None)
    with pytest.raises(ApiError) as refused:
        for _ in range(3):
            ratelimit_check(key_id=999, per_minute=2)
    assert refused.value.status == 429 and refused.value.type == "rate_limit_error"
    assert refused.value.retry_after == "30"


@pytest.mark.django_db(transaction=True)
async def test_over_the_limit_is_429_rate_limit_error_with_retry_after_and_recorded(
        key_make: KeyMake, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion())
    limited = await key_make("limited", rate_limit_per_minute=2)
    statuses = [(await api_post(user_request(), key=limited)).status_code for _ in range(2)]
    assert statuses == [200, 200]
    refused = await api_post(user_request(), key=limited)
    assert refused.status_code == 429
    error = error_of(refused)
    assert error["type"] == "rate_limit_error" and "2 requests per minute" in error["message"]
    assert int(refused["retry-after"]) >= 1 and refused["retry-after"] == str(int(refused["retry-after"]))
    assert len(upstream.requests) == 2  # the refused request never reached the backend
    counted = await api_post({"model": "test-model", "messages": [{"role": "user", "content": "x"}]},
                             key=limited, path="/v1/messages/count_tokens")
    assert counted.status_code == 429
    # Another key, and an unlimited one, are not affected.
    other = await key_make("other", rate_limit_per_minute=2)
    assert (await api_post(user_request(), key=other)).status_code == 200
    unlimited = await key_make("unlimited")
    assert {(await api_post(user_request(), key=unlimited)).status_code for _ in range(10)} == {200}

    await sync_to_async(recorder.flush)(10)
    row = await Exchange.objects.aget(id=refused["request-id"])
    assert (row.status, row.error_type, row.key_name) == (429, "rate_limit_error", "limited")


@pytest.mark.django_db(transaction=True)
async def test_the_real_sdk_raises_rate_limit_error_with_retry_after(key_make: KeyMake, upstream: Upstream) -> None:
    import anthropic
    import httpx2

    from gateway.asgi import application

    upstream.handler = lambda request: httpx.Response(200, json=chat_completion())
    limited = await key_make("sdk", rate_limit_per_minute=1)
    transport = httpx2.ASGITransport(app=application)
    async with anthropic.AsyncAnthropic(base_url="http://testserver", api_key=limited, max_retries=0,
                                        http_client=httpx2.AsyncClient(transport=transport)) as sdk:
        first = await sdk.messages.create(model="test-model", max_tokens=10,
                                          messages=[{"role": "user", "content": "hi"}])
        assert first.content
        with pytest.raises(anthropic.RateLimitError) as refused:
            await sdk.messages.create(model="test-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert refused.value.response.headers["retry-after"] == "60"
    assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


@pytest.mark.django_db
def test_applyconfig_sets_and_validates_the_limit(tmp_path: Path) -> None:
    text = "keys:\n  - name: ci\n    key: dgm_ci_key_0123456789abcdef\n    rate_limit_per_minute: 30\n"
    config_apply(config_parse(text))
    assert ApiKey.objects.get(name="ci").rate_limit_per_minute == 30
    config_apply(config_parse(text.replace("    rate_limit_per_minute: 30\n", "")))
    assert ApiKey.objects.get(name="ci").rate_limit_per_minute is None
    for bad in ("0", "-5", "fast", "1.5", "true"):
        with pytest.raises(ConfigError, match="rate_limit_per_minute"):
            config_parse(text.replace(": 30", f": {bad}"))


@pytest.mark.django_db
def test_the_admin_edits_the_limit_and_refuses_zero() -> None:
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    staff = Client()
    staff.force_login(user)
    key = ApiKey.objects.create(name="k", prefix="dgm_x", key_hash="0" * 64)
    url = f"/admin/gateway/apikey/{key.pk}/change/"
    assert "rate_limit_per_minute" in staff.get(url).content.decode()
    form = {"name": "k", "enabled": "on", "allowed_models": "", "rate_limit_per_minute": "120"}
    assert staff.post(url, form).status_code == 302
    key.refresh_from_db()
    assert key.rate_limit_per_minute == 120
    page = staff.post(url, {**form, "rate_limit_per_minute": "0"})
    assert page.status_code == 200 and "greater than or equal to 1" in page.content.decode()
