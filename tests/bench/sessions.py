"""Claude Code sessions for the load generator: the turns of one session, built once per
scenario from the recorded first turn (``tests/claude_code_session.py``: Claude Code's 27 KB
system prompt and 94 KB of tools, 115 KB in all) growing by an assistant tool call and a tool
result of ``result_bytes`` every turn, streamed.

Every simulated session must be a different session with a different history, as on a real
deployment (the inspector stores pieces shared between exchanges once, so identical sessions
would flatter its writer). The turns are therefore templates: the session id (header and
``metadata.user_id``) and a tag at the start of every message's text are one 36-character
placeholder, which the load generator replaces with a tag of the same length per session
(``loadgen.py``), so the bodies keep their length and a session keeps its own prefix turn to turn.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from tests.claude_code_session import SESSION_HEADER, claude_code_session

PLACEHOLDER = "ffffffff-ffff-4fff-8fff-ffffffffffff"
_FIXTURE_SESSION = "7a2770fd-e542-4647-8c20-ffc53e5cdaca"  # in the fixture's metadata.user_id
# Set per request by the load generator, or not wanted on loopback.
_DROPPED = {"accept", "content-type", "accept-encoding", "user-agent", "x-stainless-timeout"}


def _tag(content: Any) -> Any:
    mark = f"[{PLACEHOLDER}] "
    if isinstance(content, str):
        return mark + content
    for block in content:
        if block.get("type") == "text":
            block["text"] = mark + block["text"]
        elif block.get("type") == "tool_result" and isinstance(block.get("content"), str):
            block["content"] = mark + block["content"]
    return content


@lru_cache(maxsize=8)
def session_turns(*, turns: int, result_bytes: int, model: str,
                  directive: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The bodies of one session's ``turns`` requests (compact JSON, as Claude Code sends them)
    and the headers they share; ``directive`` (the mock backend's) goes in the last user
    message of each turn, just before the block that holds the ``cache_control`` breakpoint."""
    session = claude_code_session(turns, session_id=PLACEHOLDER, result_bytes=result_bytes)
    bodies = []
    for turn in session:
        body = turn.body
        body["model"] = model
        body["stream"] = True
        user_id = body.get("metadata", {}).get("user_id")
        if isinstance(user_id, str):
            body["metadata"]["user_id"] = user_id.replace(_FIXTURE_SESSION, PLACEHOLDER)
        for message in body["messages"]:
            message["content"] = _tag(message["content"])
        last = body["messages"][-1]["content"]
        last.insert(len(last) - 1, {"type": "text", "text": directive})
        bodies.append(json.dumps(body, separators=(",", ":"), ensure_ascii=False))
    headers = {k.lower(): v for k, v in session[0].headers.items() if k.lower() not in _DROPPED}
    headers[SESSION_HEADER] = PLACEHOLDER
    return tuple(bodies), tuple(headers.items())
