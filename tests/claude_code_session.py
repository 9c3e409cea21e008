"""A Claude Code session of any length, built from a captured first turn
(tests/fixtures/claude-code/02_*: its 27 KB system prompt, 24 tools, metadata and headers), the
way Claude Code grows one: every turn re-sends the whole history plus the newest assistant turn
(a tool call) and the user's tool result, with the ``cache_control`` breakpoint moved to the last
message. Optionally a subagent (Claude Code's Task tool) runs a few turns of its own, with its own
agent id and the main agent as its parent, and a turn can edit the system prompt inside the
earlier prefix (what defeats a backend's prefix cache).

Used by the inspector's session tests, the browser tests and the storage benchmark. Deterministic:
the same arguments give the same bytes.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "claude-code" / "02_p_sayhi_sonnet45_stream.json"
SESSION_HEADER = "x-claude-code-session-id"
AGENT_HEADER = "x-claude-code-agent-id"
PARENT_AGENT_HEADER = "x-claude-code-parent-agent-id"
_WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
          "sigma tau upsilon phi chi psi omega").split()
# Headers a request carries besides the attribution ones (the fixture's, minus credentials and lengths).
_DROPPED = {"x-api-key", "authorization", "content-length", "host", "connection", "accept-encoding",
            SESSION_HEADER}


@dataclass
class Turn:
    """One request: who sent it and the body."""

    agent: str  # "main" or the subagent's name
    headers: dict[str, str]
    body: dict[str, Any]

    def raw(self) -> bytes:
        """The body as Claude Code sends it (compact JSON, non-ASCII as is)."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


def _prose(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12)))
        out.append(line)
        length += len(line) + 1
    return "\n".join(out)[:size]


def _base() -> tuple[dict[str, Any], dict[str, str]]:
    fixture = json.loads(FIXTURE.read_text())
    headers = {k: v for k, v in fixture["headers"].items() if k.lower() not in _DROPPED}
    return fixture["body"], headers


def _uncached(messages: list[dict[str, Any]]) -> None:
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                block.pop("cache_control", None)


def _cached_last(messages: list[dict[str, Any]]) -> None:
    _uncached(messages)
    content = messages[-1]["content"]
    if isinstance(content, str):
        messages[-1]["content"] = [{"type": "text", "text": content}]
        content = messages[-1]["content"]
    content[-1]["cache_control"] = {"type": "ephemeral"}


def claude_code_session(turns: int = 30, *, session_id: str = "5e55f0a1-0000-4000-8000-000000000001",
                        subagent_at: int | None = None, subagent_turns: int = 3, edit_at: int | None = None,
                        edit_char: int = 4102, result_bytes: int = 1800, seed: int = 7) -> list[Turn]:
    """``turns`` requests of the main agent, in the order Claude Code sends them; with
    ``subagent_at``, the main agent's turn of that number calls the Task tool and the subagent's
    ``subagent_turns`` requests come before the main agent's next turn. With ``edit_at``, that
    turn (and every later one) has one character of ``system[2].text`` changed at ``edit_char``."""
    rng = random.Random(seed)
    base, headers = _base()
    main_id, sub_id = "agent-main-0001", "agent-explore-0002"
    first_user = copy.deepcopy(base["messages"][0])
    messages: list[dict[str, Any]] = [first_user]
    system = copy.deepcopy(base["system"])
    out: list[Turn] = []
    for number in range(1, turns + 1):
        if edit_at is not None and number == edit_at:
            text = system[2]["text"]
            at = min(edit_char, len(text) - 1)
            system[2]["text"] = text[:at] + ("X" if text[at] != "X" else "Y") + text[at + 1:]
        _cached_last(messages)
        body = {**copy.deepcopy(base), "system": copy.deepcopy(system), "messages": copy.deepcopy(messages)}
        out.append(Turn("main", {**headers, SESSION_HEADER: session_id, AGENT_HEADER: main_id}, body))
        if number == turns:
            break
        call_id = f"toolu_{number:02d}{rng.randrange(16**20):020x}"
        task = subagent_at is not None and number == subagent_at
        if task:
            tool_use = {"type": "tool_use", "id": call_id, "name": "Task",
                        "input": {"description": "Find the config loader",
                                  "prompt": "Search the repository for where the configuration is loaded.",
                                  "subagent_type": "Explore"}}
        else:
            tool_use = {"type": "tool_use", "id": call_id, "name": rng.choice(["Bash", "Read", "Grep"]),
                        "input": {"command": f"cat src/module_{number}.py", "description": "Look at the module"}}
        messages.append({"role": "assistant",
                         "content": [{"type": "text", "text": _prose(rng, 160)}, tool_use]})
        if task:
            out.extend(_subagent(rng, base, headers, session_id=session_id, agent_id=sub_id, parent_id=main_id,
                                 turns=subagent_turns, result_bytes=result_bytes))
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": _prose(rng, result_bytes)}]})
    return out


def _subagent(rng: random.Random, base: dict[str, Any], headers: dict[str, str], *, session_id: str,
              agent_id: str, parent_id: str, turns: int, result_bytes: int) -> list[Turn]:
    """The Task tool's subagent: its own short system prompt and a subset of the tools."""
    system = [copy.deepcopy(base["system"][0]),
              {"type": "text", "text": "You are a file search specialist.\n" + _prose(rng, 3000),
               "cache_control": {"type": "ephemeral"}}]
    tools = [t for t in base["tools"] if t.get("name") in ("Bash", "Glob", "Grep", "Read")]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Search the repository for where the "
                                                                   "configuration is loaded."}]
    out = []
    for number in range(1, turns + 1):
        _cached_last(messages)
        body = {**copy.deepcopy(base), "model": "claude-haiku-4-5", "system": copy.deepcopy(system),
                "tools": copy.deepcopy(tools), "messages": copy.deepcopy(messages)}
        body.pop("thinking", None)
        out.append(Turn("explore", {**headers, SESSION_HEADER: session_id, AGENT_HEADER: agent_id,
                                    PARENT_AGENT_HEADER: parent_id}, body))
        call_id = f"toolu_s{number:02d}{rng.randrange(16**20):020x}"
        messages.append({"role": "assistant", "content": [
            {"type": "tool_use", "id": call_id, "name": "Grep", "input": {"pattern": f"config_{number}"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": _prose(rng, result_bytes // 2)}]})
    return out
