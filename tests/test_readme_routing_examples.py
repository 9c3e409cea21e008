"""The README's routing examples are real configs: each yaml block of its Routing section parses
and applies to the targets its prose describes, so the section cannot drift from the code."""

from __future__ import annotations

import re

import pytest

from gateway.config import config_apply, config_parse
from gateway.models import Route
from tests.conftest import REPO

pytestmark = pytest.mark.django_db

SECTION = "### Routing: replicas, fallbacks and failover"


def routing_examples() -> list[str]:
    readme = (REPO / "README.md").read_text()
    assert SECTION in readme
    section = readme.split(SECTION, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


def applied(text: str, monkeypatch: pytest.MonkeyPatch) -> Route:
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text):
        monkeypatch.setenv(name, f"{name.lower()}-0123456789abcdef")
    config_apply(config_parse(text, source="README.md"))
    return Route.objects.get(model="claude-*")


def groups_of(route: Route) -> list[tuple[int, str, str, int]]:
    rows = [(0, route.backend.name, route.upstream_model, route.weight)]
    rows += [(t.priority, t.backend.name, t.upstream_model, t.weight)
             for t in route.targets.select_related("backend").order_by("priority", "id")]
    return rows


def test_the_section_has_the_two_examples() -> None:
    assert len(routing_examples()) == 2


def test_three_vllm_replicas_with_an_anthropic_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    route = applied(routing_examples()[0], monkeypatch)
    qwen = "Qwen/Qwen3-Coder-30B-A3B-Instruct"
    assert groups_of(route) == [(0, "vllm-1", qwen, 1), (0, "vllm-2", qwen, 1), (0, "vllm-3", qwen, 2),
                                (1, "anthropic", "", 1)]
    assert route.targets.get(priority=1).backend.kind == "anthropic"
    assert (route.max_attempts, route.failover_seconds) == (3, 20.0)


def test_ollama_on_a_laptop_with_a_cloud_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    route = applied(routing_examples()[1], monkeypatch)
    assert groups_of(route) == [(0, "ollama", "qwen3:8b", 1), (1, "deepseek", "deepseek-chat", 1)]
    assert route.backend.preset == "ollama"
    assert route.targets.get().capability_overrides == {"max_tokens_cap": 8192}
    assert route.failover_seconds == 10.0


@pytest.mark.parametrize("index", [0, 1])
def test_applying_an_example_twice_changes_nothing(monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    text = routing_examples()[index]
    applied(text, monkeypatch)
    assert config_apply(config_parse(text)) == []
