"""A route's page edits all its targets: its own backend (the first target) with its weight and
the failover limits, and an inline of further targets, each one's capability overrides checked
against its own backend with every problem listed; the route list shows the targets by group."""

from __future__ import annotations

import pytest
from django.test import Client

from gateway.models import Backend, Route, RouteTarget
from tests.gateway.test_admin_capabilities import FormValues, form_errors, route_post, targets_post

pytestmark = pytest.mark.django_db

ADD = "/admin/gateway/route/add/"


@pytest.fixture
def backends() -> dict[str, Backend]:
    """Two replicas and a cloud fallback: the shape the inline exists for."""
    return {name: Backend.objects.create(name=name, base_url=f"http://{name}:8000/v1", preset=preset)
            for name, preset in (("vllm-a", "vllm"), ("vllm-b", "vllm"), ("cloud", "openai"))}


def target(backend: Backend, **fields: str) -> dict[str, str]:
    return {"backend": str(backend.pk), "upstream_model": "", "priority": "0", "weight": "1",
            "capability_overrides": "{}", "enabled": "on", **fields}


def test_a_route_is_saved_with_a_replica_and_a_fallback(staff: Client, backends: dict[str, Backend]) -> None:
    data = route_post(backends["vllm-a"], "{}", target(backends["vllm-b"], weight="2"),
                      target(backends["cloud"], priority="1", upstream_model="gpt-5",
                             capability_overrides='{"max_tokens_cap": 16384}'))
    data.update({"weight": "3", "max_attempts": "2", "failover_seconds": "12.5"})
    response = staff.post(ADD, data)
    assert response.status_code == 302, form_errors(response.content.decode())
    route = Route.objects.get()
    assert (route.backend.name, route.weight, route.max_attempts, route.failover_seconds) == ("vllm-a", 3, 2, 12.5)
    assert [(t.backend.name, t.priority, t.weight, t.upstream_model, t.capability_overrides)
            for t in route.targets.order_by("priority")] == [
        ("vllm-b", 0, 2, "", {}), ("cloud", 1, 1, "gpt-5", {"max_tokens_cap": 16384})]


def test_a_post_without_the_new_fields_keeps_their_defaults(staff: Client, backends: dict[str, Backend]) -> None:
    response = staff.post(ADD, route_post(backends["vllm-a"], "{}"))
    assert response.status_code == 302, form_errors(response.content.decode())
    route = Route.objects.get()
    assert (route.weight, route.max_attempts, route.failover_seconds) == (1, 3, 30.0)


def test_empty_numbers_on_the_change_page_keep_the_saved_values(staff: Client, backends: dict[str, Backend]) -> None:
    route = Route.objects.create(model="m", backend=backends["vllm-a"], weight=4, max_attempts=5)
    data = route_post(backends["vllm-a"], "{}") | {"model": "m", "weight": "", "max_attempts": ""}
    response = staff.post(f"/admin/gateway/route/{route.pk}/change/", data)
    assert response.status_code == 302, form_errors(response.content.decode())
    route.refresh_from_db()
    assert (route.weight, route.max_attempts) == (4, 5)


def test_every_bad_override_of_a_target_is_listed_and_nothing_is_saved(
    staff: Client, backends: dict[str, Backend],
) -> None:
    data = route_post(backends["vllm-a"], "{}", target(
        backends["cloud"], priority="1", capability_overrides='{"prefill": "sometimes", "max_tokens_cap": "lots"}'))
    response = staff.post(ADD, data)
    assert response.status_code == 200
    errors = form_errors(response.content.decode())
    assert 'prefill: "sometimes" is not one of' in errors
    assert 'max_tokens_cap: "lots" is not a whole number' in errors
    assert not Route.objects.exists() and not RouteTarget.objects.exists()


def test_a_target_override_is_checked_against_the_targets_own_backend(
    staff: Client, backends: dict[str, Backend],
) -> None:
    backends["cloud"].cap_prefill = "sideways"
    backends["cloud"].save()
    response = staff.post(ADD, route_post(backends["vllm-a"], "{}", target(
        backends["cloud"], priority="1", capability_overrides='{"max_tokens_cap": 10}')))
    assert response.status_code == 200
    assert "This backend's own capabilities are invalid" in form_errors(response.content.decode())


def test_the_change_page_posted_back_unchanged_keeps_every_target(staff: Client, backends: dict[str, Backend]) -> None:
    route = Route.objects.create(model="claude-*", backend=backends["vllm-a"], weight=2, failover_seconds=9.0)
    RouteTarget.objects.create(route=route, backend=backends["vllm-b"], weight=3)
    RouteTarget.objects.create(route=route, backend=backends["cloud"], priority=1,
                               capability_overrides={"max_tokens_cap": 100})
    url = f"/admin/gateway/route/{route.pk}/change/"
    page = staff.get(url).content.decode()
    assert "Backend (first target)" in page and "Further targets" in page and 'name="max_attempts"' in page
    form = FormValues()
    form.feed(page)
    response = staff.post(url, {k: v for k, v in form.values.items() if "__prefix__" not in k})
    assert response.status_code == 302, form_errors(response.content.decode())
    route.refresh_from_db()
    assert (route.weight, route.failover_seconds) == (2, 9.0)
    assert sorted((t.backend.name, t.priority, t.weight, t.capability_overrides) for t in route.targets.all()) == [
        ("cloud", 1, 1, {"max_tokens_cap": 100}), ("vllm-b", 0, 3, {})]


def test_a_target_is_removed_with_its_delete_box(staff: Client, backends: dict[str, Backend]) -> None:
    route = Route.objects.create(model="claude-*", backend=backends["vllm-a"])
    kept = RouteTarget.objects.create(route=route, backend=backends["vllm-b"])
    gone = RouteTarget.objects.create(route=route, backend=backends["cloud"], priority=1)
    data = route_post(backends["vllm-a"], "{}") | targets_post(
        target(backends["vllm-b"], id=str(kept.pk), route=str(route.pk)),
        target(backends["cloud"], id=str(gone.pk), route=str(route.pk), priority="1", DELETE="on"), initial=2)
    response = staff.post(f"/admin/gateway/route/{route.pk}/change/", data)
    assert response.status_code == 302, form_errors(response.content.decode())
    assert list(route.targets.values_list("backend__name", flat=True)) == ["vllm-b"]


def test_the_route_list_shows_the_targets_by_group(staff: Client, backends: dict[str, Backend]) -> None:
    route = Route.objects.create(model="claude-*", backend=backends["vllm-a"])
    RouteTarget.objects.create(route=route, backend=backends["vllm-b"], weight=2)
    RouteTarget.objects.create(route=route, backend=backends["cloud"], priority=1)
    Route.objects.create(model="solo", backend=backends["cloud"])
    page = staff.get("/admin/gateway/route/").content.decode()
    assert "vllm-a, vllm-b (weight 2) · fallback: cloud" in page
    assert '<td class="field-targets">cloud</td>' in page


def test_several_fallback_groups_are_numbered_and_a_disabled_target_is_marked(backends: dict[str, Backend]) -> None:
    from gateway.admin import route_targets_text

    route = Route.objects.create(model="m", backend=backends["vllm-a"])
    RouteTarget.objects.create(route=route, backend=backends["vllm-b"], priority=1, enabled=False)
    RouteTarget.objects.create(route=route, backend=backends["cloud"], priority=4)
    assert route_targets_text(route) == "vllm-a · fallback 1: vllm-b (off) · fallback 2: cloud"
