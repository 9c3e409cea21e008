"""The real Claude Code CLI (`claude -p`, installed from npm by `make claude-code`) against Dragoman.

Each test runs one headless session against the gateway on loopback, with the mock vLLM-shaped
backend behind a `*` route. A `[[mock:NAME]]` directive in the prompt picks the backend's
scenario for the conversation's requests (Claude Code puts the prompt last in the first user
message); what the test asserts is what Claude Code printed (its stream-json events) and what
the backend received.

Prefill: Claude Code 2.1.329 never ends a request with an assistant message in these paths. A
reply cut by the output limit, and a stream that breaks after some content, are both continued
with a *user* message after the partial assistant reply; an assistant message fed through
`--input-format stream-json` becomes history before the prompt. The tests pin those paths, so a
version that starts sending a real prefill shows up here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cli.conftest import MODEL, Claude, Session
from tests.mockbackend.scenarios import CLI_TOOL_OUTPUT, REASONING_REPLY, REASONING_TEXT, TEXT_REPLY

pytestmark = pytest.mark.cli


def _assert_clean(session: Session) -> None:
    """Claude Code finished without an error, reached no host but the gateway, and the gateway
    answered none of its requests with an error status."""
    assert session.returncode == 0, session.describe()
    assert session.egress == [], session.describe()
    assert session.result.get("is_error") is False, session.describe()
    assert session.result.get("subtype") == "success", session.describe()
    assert session.statuses, session.describe()
    assert all(status < 400 for _, status in session.statuses), session.describe()


def _messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = request["body"]["messages"]
    return messages


def test_a_text_turn_prints_the_backend_reply(claude: Claude) -> None:
    session = claude("Say hello. [[mock:text]]", "--model", MODEL)

    _assert_clean(session)
    assert session.result["result"] == TEXT_REPLY
    init = session.events[0]
    assert init["type"] == "system" and init["apiKeySource"] == "ANTHROPIC_API_KEY"
    [turn] = session.turns("[[mock:text]]")
    assert turn["path"] == "/v1/chat/completions"
    assert turn["body"]["model"] == MODEL and turn["body"]["stream"] is True
    assert turn["stream"]["outcome"] == "complete"
    assert [m["role"] for m in _messages(turn)] == ["system", "user"]
    assert any("POST /v1/messages" in request for request, _ in session.statuses)


def test_context_counts_tokens_through_the_gateway(claude: Claude) -> None:
    """`/context` sends one `count_tokens?beta=true` per part of the prompt (system, each tool,
    each skill, messages); a 404 there would make Claude Code fall back to `max_tokens: 1` calls."""
    session = claude("/context", "--model", MODEL)

    _assert_clean(session)
    counts = [status for request, status in session.statuses if "/v1/messages/count_tokens" in request]
    assert len(counts) >= 5 and set(counts) == {200}, session.describe()
    # Exact counts: every count was rendered and tokenized by the backend (vllm preset).
    tokenized = [r for r in session.backend if r.get("path") == "/tokenize"]
    assert len(tokenized) == len(counts), session.describe()
    assert session.result["result"].startswith("## Context Usage")
    assert f"**Model:** {MODEL}" in session.result["result"]


def test_without_the_traffic_flag_claude_code_calls_anthropics_hosts(claude: Claude) -> None:
    """Why the README insists on CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1: without it Claude
    Code also connects to api.anthropic.com (refused here by the egress trap)."""
    session = claude("Say hello. [[mock:text]]", "--model", MODEL,
                     env={"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "", "DISABLE_AUTOUPDATER": ""})

    assert session.result["result"] == TEXT_REPLY, session.describe()
    assert any(line.startswith("CONNECT api.anthropic.com:") for line in session.egress), session.describe()


def test_the_bash_tool_runs_and_its_output_reaches_the_backend(claude: Claude) -> None:
    session = claude("Print the marker. [[mock:bash_echo]]", "--model", MODEL, "--allowedTools", "Bash")

    _assert_clean(session)
    assert session.result["result"].startswith(f"The tool returned: {CLI_TOOL_OUTPUT}")
    results = [block for event in session.events if event.get("type") == "user"
               for block in event["message"]["content"] if block.get("type") == "tool_result"]
    assert results == [{"tool_use_id": "call_mock_echo", "type": "tool_result", "content": CLI_TOOL_OUTPUT,
                        "is_error": False}]

    first, second = session.turns("[[mock:bash_echo]]")
    assert first["body"]["tools"] and second["body"]["tools"]
    call, tool = _messages(second)[-2:]
    assert call["role"] == "assistant"
    assert [(c["id"], c["function"]["name"]) for c in call["tool_calls"]] == [("call_mock_echo", "Bash")]
    assert json.loads(call["tool_calls"][0]["function"]["arguments"])["command"] == f"echo {CLI_TOOL_OUTPUT}"
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_mock_echo"
    assert tool["content"].startswith(CLI_TOOL_OUTPUT)


def test_thinking_is_shown_and_replayed_as_the_backends_reasoning_field(claude: Claude) -> None:
    session = claude("Think, then check. [[mock:reasoning_tool]]", "--model", MODEL, "--allowedTools", "Bash")

    _assert_clean(session)
    thinking = [block for event in session.events if event.get("type") == "assistant"
                for block in event["message"]["content"] if block.get("type") == "thinking"]
    assert [block["thinking"] for block in thinking] == ["I should run a command to check."]
    first, second = session.turns("[[mock:reasoning_tool]]")
    assert first["body"]["chat_template_kwargs"] == {"enable_thinking": True}
    call = _messages(second)[-2]
    assert call["role"] == "assistant" and call["tool_calls"]
    # The vllm preset replays thinking in `reasoning` (vLLM >= 0.16 reads only that name).
    assert call["reasoning"] == "I should run a command to check."
    assert "reasoning_content" not in call


def test_thinking_from_an_earlier_turn_is_replayed_on_a_resumed_session(claude: Claude) -> None:
    first = claude("Think about it. [[mock:reasoning]]", "--model", MODEL)
    _assert_clean(first)
    assert first.result["result"] == REASONING_REPLY

    second = claude("And now? [[mock:text]]", "--model", MODEL, "--resume", first.result["session_id"])

    _assert_clean(second)
    assert second.result["result"] == TEXT_REPLY
    [turn] = second.turns("[[mock:reasoning]]")
    earlier = [m for m in _messages(turn) if m["role"] == "assistant"]
    assert [(m["content"], m.get("reasoning")) for m in earlier] == [(REASONING_REPLY, REASONING_TEXT)]


def test_a_reply_cut_by_the_output_limit_is_continued_after_the_partial_reply(claude: Claude) -> None:
    """Claude Code's nearest thing to a prefill: the partial reply goes back as an assistant
    message, followed by a user message asking to resume (so prefill rewrites never apply)."""
    session = claude("Write a lot. [[mock:length]]", "--model", MODEL)

    _assert_clean(session)
    _, second = session.turns("[[mock:length]]")
    partial, resume = _messages(second)[-2:]
    assert partial == {"role": "assistant", "content": "This reply stops early because it ran out of"}
    assert resume["role"] == "user" and "Output token limit hit" in json.dumps(resume["content"])
    assert "continue_final_message" not in second["body"]
    assert second["scenario"] == "demo"  # the resume message carries no directive
    assert "Output token limit hit" in session.result["result"]


def test_an_assistant_message_fed_on_stdin_is_history_not_a_prefill(claude: Claude) -> None:
    lines = [
        {"type": "user", "message": {"role": "user", "content": "Finish the phrase. [[mock:continuation]]"}},
        {"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "hello"}]}},
    ]
    session = claude(None, "--model", MODEL, "--input-format", "stream-json",
                     stdin="".join(json.dumps(line) + "\n" for line in lines))

    _assert_clean(session)
    [turn] = session.turns("[[mock:continuation]]")
    assert [m["role"] for m in _messages(turn)] == ["system", "assistant", "user"]
    assert _messages(turn)[1]["content"] == "hello"
    assert "continue_final_message" not in turn["body"]
    assert session.result["result"] == "hello world."  # the scenario's answer when not prefilled


@pytest.mark.parametrize("scenario", ["stream_drop_then_ok", "stream_error_then_ok"])
def test_a_stream_that_fails_before_any_content_falls_back_to_non_streaming(claude: Claude, scenario: str) -> None:
    """The gateway turns the backend failure into `event: error` after `message_start`; Claude
    Code then sends the same request again without `stream`."""
    session = claude(f"Say hello. [[mock:{scenario}]]", "--model", MODEL)

    _assert_clean(session)
    assert session.result["result"] == TEXT_REPLY
    streamed, fallback = session.turns(f"[[mock:{scenario}]]")
    assert streamed["body"]["stream"] is True
    assert streamed["stream"]["outcome"] in ("dropped", "complete")
    assert "stream" not in fallback["body"] or fallback["body"]["stream"] is False
    assert _messages(fallback) == _messages(streamed)


def test_a_stream_that_fails_after_some_text_is_resumed_from_the_partial_reply(claude: Claude) -> None:
    """After content was shown, Claude Code keeps it and asks the model to resume instead of
    retrying without streaming (2.1.329: "Mid-stream server error after 1 block(s) yielded —
    finalizing partial response")."""
    session = claude("Say hello. [[mock:stream_drop_partial_then_ok]]", "--model", MODEL)

    _assert_clean(session)
    broken, resumed = session.turns("[[mock:stream_drop_partial_then_ok]]")
    assert broken["stream"]["outcome"] == "dropped"
    assert resumed["body"]["stream"] is True
    partial, resume = _messages(resumed)[-2:]
    assert partial == {"role": "assistant", "content": "Hello! This is the"}
    assert resume["role"] == "user" and "cut off mid-stream" in json.dumps(resume["content"])
    assert "cut off mid-stream" in session.result["result"]


def test_a_small_context_vllm_model_needs_a_max_tokens_cap(claude: Claude) -> None:
    """Claude Code asks for 32000 output tokens on a ~22k-token prompt: a vLLM model with a 32k
    context rejects that (400, not retried, the run fails). A route with `max_tokens_cap` works."""
    refused = claude("Say hello. [[mock:context_limit]]", "--model", MODEL)

    assert refused.returncode == 1, refused.describe()
    assert refused.result["is_error"] is True
    assert "maximum context length is 32768 tokens" in refused.result["result"], refused.describe()
    assert refused.statuses == [("POST /v1/messages?beta=true", 400)]
    [turn] = refused.turns("[[mock:context_limit]]")
    assert turn["body"]["max_tokens"] == 32000

    capped = claude("Say hello. [[mock:context_limit]]", "--model", "capped-local-model")

    _assert_clean(capped)
    assert capped.result["result"] == TEXT_REPLY
    [turn] = capped.turns("[[mock:context_limit]]")
    assert turn["body"]["model"] == "capped-local-model" and turn["body"]["max_tokens"] == 8192
