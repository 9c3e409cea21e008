"""A key's rate limit holds across gateway instances (issue 16): both count in one bucket in Redis.

Without sharing, each of the two instances would allow the key its N per minute, 2N in total.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.multi.conftest import KEYS, LIMITED_PER_MINUTE, Instances

pytestmark = pytest.mark.multi


def test_a_limited_key_sending_to_both_instances_gets_its_limit_once_then_429_from_either(
        instances: Instances) -> None:
    body = {"model": "multi-route", "max_tokens": 50, "messages": [{"role": "user", "content": "limited"}]}
    origins = [instances.a, instances.b] * (LIMITED_PER_MINUTE + 2)
    start = time.monotonic()
    with httpx.Client(timeout=10, headers={"x-api-key": KEYS["limited"]}) as http:
        responses = [(origin, http.post(f"{origin}/v1/messages", json=body)) for origin in origins]
    # One request more refills after 60/N s: done sooner, exactly N may succeed.
    assert time.monotonic() - start < 60 / LIMITED_PER_MINUTE
    statuses = [response.status_code for _, response in responses]
    print(f"statuses alternating A/B: {statuses}")
    assert statuses == [200] * LIMITED_PER_MINUTE + [429] * (len(origins) - LIMITED_PER_MINUTE)
    refused = responses[LIMITED_PER_MINUTE:]
    assert {origin for origin, _ in refused} == {instances.a, instances.b}
    for _, response in refused:
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert 1 <= int(response.headers["retry-after"]) <= 60 / LIMITED_PER_MINUTE
