"""dragoman.yaml: a route's ``targets:`` (replicas and fallbacks), applied idempotently, and every
bad target named by its route and its backend in one message.

The first target of the lowest priority is the route's own backend (``Route.backend``, group 0);
the others are ``RouteTarget`` rows with priorities shifted so that group is 0. Re-applying the
file changes nothing; a target dropped from the file is deleted from the route.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from gateway.config import ConfigError, config_apply, config_parse
from gateway.models import Backend, Route, RouteTarget

pytestmark = pytest.mark.django_db

BACKENDS = """
backends:
  - {name: vllm-a, base_url: 'http://a:8000/v1', preset: vllm}
  - {name: vllm-b, base_url: 'http://b:8000/v1', preset: vllm}
  - {name: vllm-c, base_url: 'http://c:8000/v1', preset: vllm}
  - {name: cloud, base_url: 'https://api.example.com/v1', preset: openai}
"""

REPLICAS_AND_FALLBACK = BACKENDS + """
routes:
  - model: claude-*
    max_attempts: 4
    failover_seconds: 20
    targets:
      - {backend: cloud, upstream_model: gpt-5, priority: 11, capabilities: {max_tokens_cap: 16384}}
      - {backend: vllm-a, upstream_model: qwen3-coder, priority: 10, weight: 2}
      - {backend: vllm-b, upstream_model: qwen3-coder, priority: 10}
      - {backend: vllm-c, upstream_model: qwen3-coder, priority: 10, enabled: false}
"""


def apply(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "dragoman.yaml"
    path.write_text(text)
    out = StringIO()
    call_command("applyconfig", str(path), stdout=out)
    return out.getvalue().splitlines()


def targets_of(route: Route) -> list[tuple[str, str, int, int, bool]]:
    return [(t.backend.name, t.upstream_model, t.priority, t.weight, t.enabled)
            for t in route.targets.select_related("backend").order_by("priority", "backend__name")]


def test_the_first_target_of_the_lowest_priority_becomes_the_routes_own_backend(tmp_path: Path) -> None:
    apply(tmp_path, REPLICAS_AND_FALLBACK)
    route = Route.objects.get(model="claude-*")
    assert (route.backend.name, route.upstream_model, route.weight) == ("vllm-a", "qwen3-coder", 2)
    assert (route.max_attempts, route.failover_seconds) == (4, 20.0)
    assert targets_of(route) == [("vllm-b", "qwen3-coder", 0, 1, True), ("vllm-c", "qwen3-coder", 0, 1, False),
                                 ("cloud", "gpt-5", 1, 1, True)]
    assert RouteTarget.objects.get(backend__name="cloud").capability_overrides == {"max_tokens_cap": 16384}


def test_applying_targets_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    first = apply(tmp_path, REPLICAS_AND_FALLBACK)
    assert "route claude-* → vllm-a: target cloud (gpt-5) created" in first
    assert apply(tmp_path, REPLICAS_AND_FALLBACK)[-1].endswith("no changes")
    assert Route.objects.count() == 1 and RouteTarget.objects.count() == 3


def test_a_target_removed_from_the_file_is_deleted_and_a_changed_one_reported(tmp_path: Path) -> None:
    apply(tmp_path, REPLICAS_AND_FALLBACK)
    text = (REPLICAS_AND_FALLBACK.replace("      - {backend: vllm-c, upstream_model: qwen3-coder, priority: 10, "
                                          "enabled: false}\n", "")
            .replace("{backend: vllm-b, upstream_model: qwen3-coder, priority: 10}",
                     "{backend: vllm-b, upstream_model: qwen3-coder, priority: 10, weight: 3}"))
    report = apply(tmp_path, text)
    assert "route claude-* → vllm-a: target vllm-c (qwen3-coder) deleted (not in the file)" in report
    assert "route claude-* → vllm-a: target vllm-b (qwen3-coder) updated weight" in report
    assert targets_of(Route.objects.get()) == [("vllm-b", "qwen3-coder", 0, 3, True), ("cloud", "gpt-5", 1, 1, True)]


def test_the_one_backend_form_still_works_and_leaves_targets_added_in_the_admin_alone(tmp_path: Path) -> None:
    text = BACKENDS + "routes: [{model: m, backend: vllm-a, max_attempts: 2}]\n"
    apply(tmp_path, text)
    route = Route.objects.get()
    assert (route.backend.name, route.max_attempts, route.failover_seconds) == ("vllm-a", 2, 30.0)
    RouteTarget.objects.create(route=route, backend=Backend.objects.get(name="cloud"), priority=1)
    assert apply(tmp_path, text)[-1].endswith("no changes")
    assert RouteTarget.objects.count() == 1


def test_the_spec_applies_the_same_without_the_command() -> None:
    report = config_apply(config_parse(REPLICAS_AND_FALLBACK))
    assert report[:5] == ["backend vllm-a: created", "backend vllm-b: created", "backend vllm-c: created",
                          "backend cloud: created", "route claude-* → vllm-a: created"]


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        config_parse(BACKENDS + text)
    return str(excinfo.value).splitlines()


def test_every_bad_target_is_named_by_its_route_and_backend_in_one_message() -> None:
    lines = problems_of("""
routes:
  - model: claude-*
    max_attempts: 0
    failover_seconds: soon
    targets:
      - {backend: vllm-a, weight: 0, colour: teal}
      - {backend: vllm-b, priority: -1, enabled: maybe, capabilities: {prefill: sometimes}}
      - {backend: ghost}
      - {upstream_model: x}
  - model: other
    backend: vllm-a
    targets: [{backend: vllm-b}]
""")
    assert lines[0] == "config: 10 problems"
    assert lines[1] == (
        "  route claude-*: target vllm-a: colour: unknown field; target vllm-a: weight must be a whole number "
        "of at least 1; target vllm-b: priority must be a whole number (0 or more); target vllm-b: enabled must "
        "be true or false; target vllm-b: capabilities.prefill: \"sometimes\" is not one of native, "
        "continue_final_message, prefix_flag, rewrite, reject; target ghost: backend 'ghost' is not defined; "
        "targets[3]: backend None is not defined; max_attempts must be a whole number of at least 1; "
        "failover_seconds must be a number of seconds (0 or more)")
    assert lines[2] == "  route other: backend: give it on each target, not beside targets"


@pytest.mark.parametrize(("targets", "message"), [
    ("[]", "targets must be a list of at least one {backend, ...} mapping"),
    ("vllm-a", "targets must be a list of at least one {backend, ...} mapping"),
    ("[{backend: vllm-a}, {backend: vllm-a}]",
     "targets[1] (vllm-a): the same backend and upstream_model are listed twice"),
    ("[{backend: vllm-a, enabled: false}, {backend: vllm-b, priority: 1}]",
     "target vllm-a: the first target of the lowest priority is the route's own backend and cannot be disabled "
     "(disable the route, or give another target the lowest priority)"),
    ("[nope]", "targets[0]: must be a mapping"),
])
def test_a_bad_targets_list_is_a_named_problem(targets: str, message: str) -> None:
    assert problems_of(f"routes: [{{model: m, targets: {targets}}}]\n") == [f"config: route m: {message}"]


def test_two_routes_of_one_model_with_targets_are_told_apart_by_their_first_backend() -> None:
    lines = problems_of("routes:\n"
                        "  - {model: m, order: x, targets: [{backend: vllm-b, priority: 1}, {backend: vllm-a}]}\n"
                        "  - {model: m, order: y, targets: [{backend: cloud}]}\n")
    assert lines[1:] == ["  route m → vllm-a: order must be an integer", "  route m → cloud: order must be an integer"]


def test_a_bad_file_with_targets_changes_nothing(tmp_path: Path) -> None:
    apply(tmp_path, REPLICAS_AND_FALLBACK)
    with pytest.raises(CommandError) as excinfo:
        apply(tmp_path, REPLICAS_AND_FALLBACK.replace("weight: 2", "weight: 0"))
    assert "route claude-*: target vllm-a: weight must be a whole number of at least 1" in str(excinfo.value)
    assert Route.objects.get().weight == 2
