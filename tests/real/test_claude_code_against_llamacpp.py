"""The real Claude Code CLI against Dragoman in front of a real llama-server (`make test-real`).

Claude Code's own system prompt and tools are some 20,000 tokens, which a 135M model on two CPU
cores takes minutes to read, so these sessions run with ``--bare``, a short ``--system-prompt``
and no built-in tools: what is tested is the wire (requests, streams, errors Claude Code acts on),
not its prompt. The output limit follows the small context as the README says for such backends:
``max_tokens_cap`` on the backend and ``CLAUDE_CODE_MAX_OUTPUT_TOKENS`` in Claude Code's settings.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import EgressTrap, claude_code, egress_trap  # noqa: F401 (fixtures)
from tests.real.conftest import RealGateway

pytestmark = pytest.mark.real


def _claude(binary: str, gateway: RealGateway, trap: EgressTrap, tmp_path: Path, prompt: str,
            *args: str) -> tuple[int, list[dict[str, Any]], str]:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(tmp_path),
        "LANG": "C.UTF-8", "ANTHROPIC_BASE_URL": gateway.url, "ANTHROPIC_AUTH_TOKEN": gateway.key,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-smollm2-cc", "ANTHROPIC_SMALL_FAST_MODEL": "claude-smollm2-cc",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "512", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1", "HTTPS_PROXY": trap.url, "HTTP_PROXY": trap.url,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    done = subprocess.run([binary, "-p", prompt, "--output-format", "stream-json", "--verbose", "--bare",
                           "--model", "claude-smollm2-cc", "--system-prompt", "You are terse.", "--tools", "", *args],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip().startswith("{")]
    return done.returncode, events, done.stderr


def test_a_claude_code_turn_is_answered_by_the_real_model(claude_code: str, real_gateway: RealGateway,  # noqa: F811
                                                         egress_trap: EgressTrap, tmp_path: Path) -> None:  # noqa: F811
    code, events, stderr = _claude(claude_code, real_gateway, egress_trap, tmp_path, "Say hello.")
    results = [e for e in events if e.get("type") == "result"]
    assert code == 0 and results, (stderr[-2000:], json.dumps(events)[-4000:])
    assert results[-1].get("is_error") is False, results[-1]
    assert isinstance(results[-1].get("result"), str) and results[-1]["result"].strip()
    assert egress_trap.seen == []


def test_a_claude_code_prompt_over_the_context_ends_in_prompt_too_long(claude_code: str,  # noqa: F811
                                                                       real_gateway: RealGateway,
                                                                       egress_trap: EgressTrap,  # noqa: F811
                                                                       tmp_path: Path) -> None:
    """The gateway answers 400 "prompt is too long" before the backend is asked; Claude Code
    reports it (in -p mode it cannot compact a first turn) instead of retrying a 500."""
    long = " ".join(["the weather is nice today"] * 2000)
    _, events, stderr = _claude(claude_code, real_gateway, egress_trap, tmp_path, long)
    text = json.dumps(events) + stderr
    assert "prompt is too long" in text.lower(), text[-3000:]
