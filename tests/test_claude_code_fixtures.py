"""The Claude Code request fixtures (tests/fixtures/claude-code): every one is a valid Messages
request, and the ones `make fixtures-claude-code` records (``*_recorded_*``) hold no secret."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli.record_fixtures import FAKE_DEVICE_ID, FILLER_OVER, RECORDINGS, filler
from tests.conftest import FIXTURES
from translation.schemas import MessagesRequest

ALL = sorted(p.name for p in FIXTURES.glob("*.json"))
RECORDED = [r.file for r in RECORDINGS]


@pytest.mark.parametrize("name", ALL)
def test_every_fixture_is_a_valid_messages_request(name: str) -> None:
    fixture = json.loads((FIXTURES / name).read_text())
    assert fixture["route"] == fixture["path"].split("?")[0]
    if fixture["route"] == "/v1/messages":
        MessagesRequest.model_validate(fixture["body"])


@pytest.mark.parametrize("name", RECORDED)
def test_a_recorded_fixture_exists_and_holds_no_secret(name: str) -> None:
    text = (FIXTURES / name).read_text()
    fixture = json.loads(text)
    assert fixture["headers"]["User-Agent"].startswith("claude-cli/")
    assert {v for k, v in fixture["headers"].items() if re.search("api-key|authorization", k, re.I)} == {"***(masked)"}
    assert not re.search(r"dgm_[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9]{8,}|/tmp/dragoman-cc-fixtures-", text)
    assert json.loads(fixture["body"]["metadata"]["user_id"])["device_id"] == FAKE_DEVICE_ID


def test_filler_keeps_length_and_line_breaks_and_is_stable() -> None:
    prose = "You are Claude Code.\n" * 20
    assert len(prose) > FILLER_OVER
    out = filler(prose)
    assert len(out) == len(prose) and [len(line) for line in out.split("\n")] == [len(line) for line in prose.split("\n")]
    assert out == filler(prose) and "Claude" not in out
