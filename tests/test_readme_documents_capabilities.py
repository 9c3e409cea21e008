"""Operators configure backends from the README: every capability and preset must be explained there."""

from __future__ import annotations

from dataclasses import fields

import pytest

from tests.conftest import REPO
from translation.capabilities import FIELD_GROUPS, FIELD_HELP, PRESETS, Capabilities

README = (REPO / "README.md").read_text()
NAMES = [f.name for f in fields(Capabilities)]


@pytest.mark.parametrize("name", NAMES)
def test_every_capability_is_documented(name: str) -> None:
    assert f"`{name}`" in README
    assert FIELD_HELP.get(name), f"{name} has no admin help"


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_has_a_reason_in_the_readme(preset: str) -> None:
    assert f"| `{preset}` |" in README


def test_every_capability_is_in_exactly_one_admin_group() -> None:
    grouped = [name for _, names in FIELD_GROUPS for name in names]
    assert sorted(grouped) == sorted(NAMES)
