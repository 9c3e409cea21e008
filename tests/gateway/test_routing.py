"""Choosing a route's target (gateway.routing): session affinity by weighted rendezvous hashing,
least in-flight by weight without a session, priority groups as fallbacks, ejected targets last."""

from __future__ import annotations

import random
from collections import Counter

from gateway.routing import rendezvous_score, targets_order
from gateway.snapshot import BackendInfo, RouteInfo, Target
from translation.capabilities import Capabilities


def target(name: str, *, group: int = 0, weight: int = 1) -> Target:
    backend = BackendInfo(id=hash(name) & 0xFFFF, name=name, kind="openai_chat", base_url=f"http://{name}/v1",
                          api_key="", preset="vllm", capabilities=Capabilities(), connect_timeout=1,
                          read_timeout=1, updated=0.0)
    view = RouteInfo(id=1, pattern="m", is_glob=False, backend=backend, upstream_model="", capabilities=Capabilities(),
                     created_at="")
    return Target(route=view, group=group, weight=weight, seed=f"{name}\n".encode())


def names(order: list[tuple[Target, str]]) -> list[str]:
    return [t.name for t, _ in order]


def always(name: str) -> bool:
    return True


def idle(name: str) -> int:
    return 0


REPLICAS = [target("a"), target("b"), target("c")]


def test_a_session_always_lands_on_the_same_replica() -> None:
    for n in range(200):
        session = f"session-{n}"
        first = {names(targets_order(REPLICAS, session=session, available=always, inflight=idle))[0]
                 for _ in range(5)}
        assert len(first) == 1
    # and sessions spread over every replica, about evenly
    spread = Counter(names(targets_order(REPLICAS, session=f"s{n}", available=always, inflight=idle))[0]
                     for n in range(3000))
    assert set(spread) == {"a", "b", "c"}
    assert min(spread.values()) > 800, spread


def test_a_replica_leaving_moves_only_its_own_sessions() -> None:
    before = {f"s{n}": names(targets_order(REPLICAS, session=f"s{n}", available=always, inflight=idle))
              for n in range(2000)}
    after = {s: names(targets_order(REPLICAS, session=s, available=lambda name: name != "b", inflight=idle))
             for s in before}
    for session, order in before.items():
        if order[0] != "b":
            assert after[session][0] == order[0]  # untouched
        else:
            assert after[session][0] == order[1]  # its second choice
        assert after[session][-1] == "b"  # the ejected one is the last resort
    assert dict(targets_order(REPLICAS, session="s1", available=lambda name: name != "b",
                              inflight=idle))[REPLICAS[1]] == "last resort"


def test_weights_share_sessions_and_idle_traffic() -> None:
    weighted = [target("big", weight=3), target("small", weight=1)]
    sessions = Counter(names(targets_order(weighted, session=f"s{n}", available=always, inflight=idle))[0]
                       for n in range(4000))
    assert 0.70 < sessions["big"] / 4000 < 0.80, sessions
    rng = random.Random(7)
    idle_traffic = Counter(names(targets_order(weighted, session="", available=always, inflight=idle, rng=rng))[0]
                           for _ in range(4000))
    assert 0.70 < idle_traffic["big"] / 4000 < 0.80, idle_traffic


def test_without_a_session_the_least_loaded_replica_per_weight_goes_first() -> None:
    load = {"a": 4, "b": 1, "c": 2}
    order = targets_order(REPLICAS, session="", available=always, inflight=load.__getitem__)
    assert names(order) == ["b", "c", "a"]
    assert {reason for _, reason in order} == {"least in-flight"}
    weighted = [target("a", weight=4), target("b", weight=1)]
    assert names(targets_order(weighted, session="", available=always, inflight={"a": 3, "b": 1}.__getitem__)) == [
        "a", "b"]  # 3/4 < 1/1


def test_fallback_groups_come_after_every_replica_and_ejected_targets_last() -> None:
    route = [target("a"), target("b"), target("cloud", group=1), target("small", group=2)]
    order = targets_order(route, session="s", available=always, inflight=idle)
    assert names(order)[2:] == ["cloud", "small"]
    assert [reason for _, reason in order] == ["affinity", "affinity", "fallback", "fallback"]
    down = targets_order(route, session="s", available=lambda name: name not in ("a", "b"), inflight=idle)
    assert names(down)[:2] == ["cloud", "small"]
    assert [reason for _, reason in down] == ["fallback", "fallback", "last resort", "last resort"]


def test_one_target_is_the_only_target() -> None:
    assert targets_order([REPLICAS[0]], session="s", available=lambda n: False, inflight=idle) == [
        (REPLICAS[0], "only target")]


def test_scores_are_in_range_and_weight_scales_them() -> None:
    light, heavy = target("x", weight=1), target("x", weight=5)
    for n in range(100):
        key = f"s{n}".encode()
        assert 0 < rendezvous_score(key, light) < rendezvous_score(key, heavy)
