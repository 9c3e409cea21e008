"""The exact upstream body each preset produces for the requests that tell presets apart.

Bodies live in ``golden/<preset>/<case>.json`` beside their rewrite notes, so a reviewer reads
what each backend really receives; any change to a rewrite shows up as a diff of these files.
Strings longer than ``DIGEST_OVER`` characters (Claude Code's system prompt and tool texts) are
kept as a sha256 digest with their length: still exact, but reviewable. This test only compares;
``make golden`` (``python -m tests.translation.golden_update``) rewrites the files and lists the
changed ones, for review in ``git diff``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.translation.support import caps_make, claude_code_body
from translation import anthropic as anthropic_translation
from translation import openai_responses
from translation.capabilities import PRESETS
from translation.errors import ApiError
from translation.openai_chat import build_request
from translation.schemas import MessagesRequest

GOLDEN = Path(__file__).parent / "golden"
DIGEST_OVER = 300

# Each preset goes through the translator of the backend kind it is for: anthropic* through
# translation.anthropic, openai-responses through translation.openai_responses, the rest through
# translation.openai_chat.
ALL_PRESETS = list(PRESETS)

USER = {"role": "user", "content": "Pick a letter: (A) yes (B) no"}
THINKING = {"type": "thinking", "thinking": "The user wants a letter.", "signature": "EqQBCkgIARABGAIiQ"}

CASES: dict[str, dict[str, Any]] = {
    "prefill": {"messages": [USER, {"role": "assistant", "content": "The answer is ("}]},
    "prefill_trailing_space": {"messages": [USER, {"role": "assistant", "content": "The answer is "}]},
    "prefill_with_thinking": {
        "messages": [USER, {"role": "assistant", "content": "The answer is ("}],
        "thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4096,
    },
    "prefill_after_tool_result": {"messages": [
        {"role": "user", "content": "List the files"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.txt"}]},
        {"role": "assistant", "content": "The files are:"},
    ]},
    "history_thinking_and_tools": {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [THINKING, {"type": "text", "text": "Hello!"}]},
        {"role": "user", "content": "list the files"},
        {"role": "assistant", "content": [
            {**THINKING, "thinking": "I should run ls."},
            {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.txt"}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "functions.Bash:1", "name": "Bash", "input": {"command": "cat a.txt"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "functions.Bash:1", "content": "hello"}]},
    ], "tools": [{"name": "Bash", "description": "Run a command",
                  "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]},
    "thinking_enabled": {"messages": [USER], "thinking": {"type": "enabled", "budget_tokens": 10000},
                         "max_tokens": 16000},
    "thinking_adaptive": {"messages": [USER], "thinking": {"type": "adaptive"},
                          "output_config": {"effort": "medium"}},
    "thinking_disabled_with_effort": {"messages": [USER], "thinking": {"type": "disabled"},
                                      "output_config": {"effort": "high"}},
}


def _digest(value: Any) -> Any:
    if isinstance(value, str) and len(value) > DIGEST_OVER:
        return f"<sha256:{hashlib.sha256(value.encode()).hexdigest()[:16]}, {len(value)} chars>"
    if isinstance(value, dict):
        return {k: _digest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_digest(v) for v in value]
    return value


def _request(case: str) -> MessagesRequest:
    if case == "claude_code_04":
        return MessagesRequest.model_validate(claude_code_body("04"))
    return MessagesRequest.model_validate({"model": "claude-sonnet-4-5", "max_tokens": 1024, **CASES[case]})


def outcome(preset: str, case: str) -> dict[str, Any]:
    """What ``preset`` makes of ``case``: the upstream body and its rewrite notes, or the error."""
    try:
        if preset.startswith("anthropic"):
            body, notes = anthropic_translation.build_request(_request(case), caps_make(preset),
                                                              upstream_model="upstream-model")
        elif preset == "openai-responses":
            body, notes = openai_responses.build_request(_request(case), caps_make(preset),
                                                         upstream_model="upstream-model", backend_name="b1")
        else:
            body, notes = build_request(_request(case), caps_make(preset), upstream_model="upstream-model",
                                        backend_name="b1")
    except ApiError as exc:
        return {"error": {"status": exc.status, "type": exc.type, "message": exc.message}}
    return {"body": _digest(body), "notes": [[n.rule, n.path] for n in notes]}


ALL_CASES = [*CASES, "claude_code_04"]


def golden_path(preset: str, case: str) -> Path:
    return GOLDEN / preset / f"{case}.json"


def golden_text(value: dict[str, Any]) -> str:
    """A golden file's exact text (``make golden`` writes it, the test reads it)."""
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("case", ALL_CASES)
@pytest.mark.parametrize("preset", ALL_PRESETS)
def test_preset_produces_the_recorded_upstream_body(preset: str, case: str) -> None:
    path = golden_path(preset, case)
    assert path.exists(), f"no golden file {path}; run `make golden` and review the new file"
    assert outcome(preset, case) == json.loads(path.read_text()), "run `make golden` and review the diff"


def test_every_golden_file_belongs_to_a_preset_and_case() -> None:
    """A renamed case or preset must not leave a stale file that nobody checks."""
    expected = {f"{p}/{c}.json" for p in ALL_PRESETS for c in ALL_CASES}
    present = {str(p.relative_to(GOLDEN)) for p in GOLDEN.glob("*/*.json")}
    assert present - expected == set()
