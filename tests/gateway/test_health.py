"""Passive backend health (gateway.health): ejection after N failures in T seconds, the cool-down
and its single probe, retry-after, and ejections shared through the database and a real Redis."""

from __future__ import annotations

import pytest

from gateway.health import DatabaseHealthStore, Ejection, Health, HealthSync, RedisHealthStore
from tests.conftest import unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(instance: str = "one", clock: Clock | None = None) -> tuple[Health, Clock]:
    clock = clock or Clock()
    return Health(failures=3, window=10.0, cooldown=5.0, clock=clock, instance=instance), clock


def test_three_failures_within_the_window_eject_for_the_cool_down_then_one_probe() -> None:
    health, clock = make()
    health.failed("a", "refused")
    clock.now += 6
    health.failed("a", "refused")
    clock.now += 6  # the first failure is out of the window now
    health.failed("a", "refused")
    assert health.available("a") and health.state_of("a") == "failing"
    health.failed("a", "backend a is unreachable")
    assert not health.available("a") and health.state_of("a") == "ejected"
    assert health.report()["a"]["last_error"] == "backend a is unreachable"
    clock.now += 5
    assert health.available("a") and health.state_of("a") == "probing"
    health.attempt_started("a")  # the probe
    assert not health.available("a")  # one request only
    health.attempt_ended("a")
    health.succeeded("a")
    assert health.available("a") and health.state_of("a") == "healthy"


def test_a_failed_probe_ejects_again_at_once() -> None:
    health, clock = make()
    for _ in range(3):
        health.failed("a", "boom")
    clock.now += 5
    health.attempt_started("a")
    health.attempt_ended("a")
    health.failed("a", "still down")
    assert not health.available("a")
    assert health.report()["a"]["ejected_until"] == clock.now + 5


def test_a_lost_probe_is_given_up_after_a_cool_down() -> None:
    health, clock = make()
    for _ in range(3):
        health.failed("a", "boom")
    clock.now += 5
    health.attempt_started("a")  # never reports (its client left)
    assert not health.available("a")
    clock.now += 5.1
    assert health.available("a")


def test_retry_after_ejects_for_that_long_at_once() -> None:
    health, clock = make()
    health.failed("a", "429", retry_after=2.0)
    assert not health.available("a")
    clock.now += 1.9
    assert not health.available("a")
    clock.now += 0.2
    assert health.available("a")


def test_success_forgets_failures_and_in_flight_counts() -> None:
    health, _ = make()
    health.failed("a", "x")
    health.failed("a", "x")
    health.succeeded("a")
    health.failed("a", "x")
    assert health.available("a")
    health.attempt_started("a")
    health.attempt_started("a")
    health.attempt_ended("a")
    assert health.inflight("a") == 1


def test_other_instances_ejections_apply_and_only_extend() -> None:
    one, clock = make("one")
    two, _ = make("two", clock)
    for _ in range(3):
        one.failed("a", "refused")
    shared = one.ejections_to_publish()
    assert [e.backend for e in shared] == ["a"] and one.ejections_to_publish() == []
    two.ejections_apply(shared)
    assert not two.available("a")
    assert two.report()["a"]["ejected_by"] == "one"
    two.ejections_apply([Ejection("a", clock.now + 1, "older", clock.now, "three")])
    assert two.report()["a"]["ejected_until"] == clock.now + 5
    one.ejections_apply(shared)  # its own: ignored
    two.ejections_apply([Ejection("b", clock.now - 1, "over", clock.now, "one")])
    assert two.available("b")


def _shared_through(store_one: object, store_two: object) -> None:
    one, two = Health(failures=1, cooldown=30.0, instance="one"), Health(failures=1, cooldown=30.0, instance="two")
    HealthSync(one).sync_once(store_one)  # type: ignore[arg-type]
    one.failed("vllm-b", "backend vllm-b is unreachable")
    HealthSync(one).sync_once(store_one)  # type: ignore[arg-type]
    assert two.available("vllm-b")
    HealthSync(two).sync_once(store_two)  # type: ignore[arg-type]
    assert not two.available("vllm-b")
    assert two.report()["vllm-b"]["last_error"] == "backend vllm-b is unreachable"


@pytest.mark.django_db
def test_ejections_are_shared_through_the_database() -> None:
    _shared_through(DatabaseHealthStore(), DatabaseHealthStore())


def test_ejections_are_shared_through_redis() -> None:
    from tests.multi.services import ServiceMissing, redis_server

    try:
        server = redis_server()
        url = server.__enter__()
    except ServiceMissing as exc:
        unavailable("redis-server", str(exc))
    try:
        _shared_through(RedisHealthStore(url), RedisHealthStore(url))
    finally:
        server.__exit__(None, None, None)
