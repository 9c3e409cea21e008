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


def test_the_readme_pairs_an_output_cap_with_claude_codes_own_limit() -> None:
    """Issue 13, finding 8: with max_tokens_cap alone Claude Code retries with 128,000 and ends in
    a misleading "exceeded the 128000 output token maximum"; the README must say to set both."""
    section = README[README.index("## Use with Claude Code"):README.index("### Claude Code's gateway contract")]
    assert "max_tokens_cap" in section and "CLAUDE_CODE_MAX_OUTPUT_TOKENS" in section


def test_the_readme_gives_the_server_flags_each_backend_needs() -> None:
    section = README[README.index("## Running the backends"):]
    for flag in ("--jinja", "-np", "--override-kv llama.context_length", "--max-model-len", "OLLAMA_CONTEXT_LENGTH"):
        assert flag in section, flag
