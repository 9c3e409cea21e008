"""Requests to native Anthropic backends: the client's JSON, changed only where a capability says
so (README, Native Anthropic backends), each change with its note."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.translation.support import caps_make, claude_code_body
from translation.anthropic import build_request, headers_build
from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.notes import RewriteNote
from translation.prefill import PREFILL_REWRITE_INSTRUCTION
from translation.schemas import MessagesRequest
from translation.signature import signature_mint

# A signature as Claude makes them: opaque, long, must come back byte for byte.
REAL_SIGNATURE = ("EqQBCkgIBxABGAIqQNxqGbSGRiIlG0Ov2hWZ9JxWpDn0ZlbmvK3x8Y0yQpWuN7bY9m1xQ2gT6cS4dF8hJ0kL3mN5pR7tV9wX1"
                  "zAEgz+/=")
GATEWAY_SIGNATURE = signature_mint({"src": "chat"})


def build(raw: dict[str, Any], caps: Capabilities | None = None,
          model: str = "claude-upstream") -> tuple[dict[str, Any], list[RewriteNote]]:
    return build_request(MessagesRequest.model_validate(raw), caps or caps_make("anthropic"), upstream_model=model)


def body(*messages: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "claude-client", "max_tokens": 100, "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def rules(notes: list[RewriteNote]) -> list[tuple[str, str]]:
    return [(n.rule, n.path) for n in notes]


# -- passthrough ------------------------------------------------------------------------------


def test_a_plain_request_reaches_the_backend_as_sent_with_only_the_model_changed() -> None:
    raw = body(user("Hi"), stream=True, temperature=0.5, context_management={"edits": []}, service_tier="auto",
               metadata={"user_id": "u1"}, stop_sequences=["END"])
    sent, notes = build(raw)
    assert sent == {**raw, "model": "claude-upstream"}
    assert notes == []


def test_real_thinking_signatures_pass_byte_for_byte() -> None:
    thinking = {"type": "thinking", "thinking": "Ünïcode → \"quoted\"\n  trailing  ", "signature": REAL_SIGNATURE}
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
    raw = body(user("q"), assistant([thinking, redacted, {"type": "text", "text": "a"}]), user("next"))
    sent, notes = build(raw)
    assert notes == []
    assert sent["messages"][1]["content"][:2] == [thinking, redacted]
    assert json.dumps(sent["messages"][1]["content"][0]) == json.dumps(thinking)


# -- gateway thinking never reaches Claude ------------------------------------------------------


def test_gateway_thinking_is_dropped_under_foreign_thinking_drop() -> None:
    raw = body(user("q"), assistant([{"type": "thinking", "thinking": "from vLLM", "signature": GATEWAY_SIGNATURE},
                                     {"type": "redacted_thinking", "data": GATEWAY_SIGNATURE},
                                     {"type": "text", "text": "answer"}]), user("next"))
    sent, notes = build(raw)
    assert sent["messages"] == [user("q"), assistant([{"type": "text", "text": "answer"}]), user("next")]
    assert rules(notes) == [("thinking.foreign_drop", "messages[1].content[0]"),
                            ("thinking.foreign_drop", "messages[1].content[1]")]


def test_gateway_thinking_becomes_text_under_foreign_thinking_to_text() -> None:
    raw = body(user("q"), assistant([{"type": "thinking", "thinking": "from vLLM", "signature": GATEWAY_SIGNATURE},
                                     {"type": "text", "text": "answer"}]), user("next"))
    sent, notes = build(raw, caps_make("anthropic", foreign_thinking="to_text"))
    assert sent["messages"][1] == assistant([{"type": "text", "text": "from vLLM"}, {"type": "text", "text": "answer"}])
    assert rules(notes) == [("thinking.foreign_to_text", "messages[1].content[0]")]


def test_unsigned_thinking_is_treated_as_foreign() -> None:
    raw = body(user("q"), assistant([{"type": "thinking", "thinking": "t"}, {"type": "text", "text": "a"}]),
               user("n"))
    sent, notes = build(raw)
    assert sent["messages"][1] == assistant([{"type": "text", "text": "a"}])
    assert rules(notes) == [("thinking.foreign_drop", "messages[1].content[0]")]


# -- tool ids and server tools ----------------------------------------------------------------


def test_tool_ids_from_other_backends_are_sanitised_the_same_in_call_and_result() -> None:
    raw = body(
        user("q"),
        assistant([{"type": "tool_use", "id": "functions.Bash:0", "name": "Bash", "input": {}},
                   {"type": "tool_use", "id": "functions_Bash_0", "name": "Bash", "input": {"a": 1}},
                   {"type": "tool_use", "id": "toolu_ok", "name": "Read", "input": {}}]),
        user([{"type": "tool_result", "tool_use_id": "functions.Bash:0", "content": "one"},
              {"type": "tool_result", "tool_use_id": "functions_Bash_0", "content": "two"},
              {"type": "tool_result", "tool_use_id": "toolu_ok", "content": "three"}]),
    )
    sent, notes = build(raw)
    assert [b["id"] for b in sent["messages"][1]["content"]] == ["functions_Bash_0_2", "functions_Bash_0", "toolu_ok"]
    assert [b["tool_use_id"] for b in sent["messages"][2]["content"]] == [
        "functions_Bash_0_2", "functions_Bash_0", "toolu_ok"]
    assert rules(notes) == [("tool_id.sanitize", "messages[1].content[0].id"),
                            ("tool_id.sanitize", "messages[2].content[0].tool_use_id")]


def test_server_tool_blocks_not_made_by_anthropic_are_dropped() -> None:
    ours = [{"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "x"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": []}]
    theirs = [{"type": "server_tool_use", "id": "ws_123", "name": "web_search", "input": {"query": "y"}},
              {"type": "web_search_tool_result", "tool_use_id": "ws_123", "content": []}]
    raw = body(user("q"), assistant([*ours, *theirs, {"type": "text", "text": "done"}]), user("n"))
    sent, notes = build(raw)
    assert sent["messages"][1]["content"] == [*ours, {"type": "text", "text": "done"}]
    assert rules(notes) == [("server_tool.drop_foreign", "messages[1].content[2]"),
                            ("server_tool.drop_foreign", "messages[1].content[3]")]


# -- empty content ----------------------------------------------------------------------------


def test_empty_text_blocks_and_messages_left_empty_are_removed() -> None:
    raw = body(user([{"type": "text", "text": ""}, {"type": "text", "text": "q"}]),
               assistant([{"type": "text", "text": ""}]), user("n"),
               system=[{"type": "text", "text": "sys"}, {"type": "text", "text": ""}])
    sent, notes = build(raw)
    assert sent["messages"] == [user([{"type": "text", "text": "q"}]), user("n")]
    assert sent["system"] == [{"type": "text", "text": "sys"}]
    assert rules(notes) == [("text.drop_empty", "messages[0].content[0]"),
                            ("text.drop_empty", "messages[1].content[0]"),
                            ("message.drop_empty", "messages[1]"),
                            ("text.drop_empty", "system")]


# -- sampling, max_tokens, cache_control --------------------------------------------------------


def test_top_p_is_dropped_when_temperature_is_set_on_a_sampling_exclusive_backend() -> None:
    sent, notes = build(body(user("q"), temperature=0.2, top_p=0.9, top_k=5))
    assert sent == body(user("q"), temperature=0.2, top_k=5) | {"model": "claude-upstream"}
    assert rules(notes) == [("sampling.exclusive", "top_p")]
    sent, notes = build(body(user("q"), temperature=0.2, top_p=0.9), caps_make("anthropic", sampling_exclusive=False))
    assert (sent["temperature"], sent["top_p"], notes) == (0.2, 0.9, [])


def test_max_tokens_is_clamped_to_the_cap_and_the_thinking_budget_below_it() -> None:
    raw = body(user("q"), max_tokens=32000, thinking={"type": "enabled", "budget_tokens": 31999})
    sent, notes = build(raw, caps_make("anthropic", max_tokens_cap=8192))
    assert sent["max_tokens"] == 8192
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 8191}
    assert rules(notes) == [("max_tokens.cap", "max_tokens"), ("max_tokens.cap", "thinking.budget_tokens")]


def test_cache_control_extensions_are_removed_everywhere_when_the_endpoint_rejects_them() -> None:
    cc = {"type": "ephemeral", "ttl": "1h", "scope": "global"}
    raw = body(
        user([{"type": "text", "text": "q", "cache_control": dict(cc)}]),
        assistant([{"type": "tool_use", "id": "toolu_1", "name": "T", "input": {"cache_control": "x"}}]),
        user([{"type": "tool_result", "tool_use_id": "toolu_1",
               "content": [{"type": "text", "text": "r", "cache_control": dict(cc)}]}]),
        system=[{"type": "text", "text": "s", "cache_control": dict(cc)}],
        tools=[{"name": "T", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral", "ttl": "5m"}}],
        cache_control=dict(cc),
    )
    sent, notes = build(raw, caps_make("anthropic", cache_control_extensions=False))
    plain = {"type": "ephemeral"}
    assert sent["cache_control"] == plain
    assert sent["system"][0]["cache_control"] == plain
    assert sent["tools"][0]["cache_control"] == plain
    assert sent["messages"][0]["content"][0]["cache_control"] == plain
    assert sent["messages"][2]["content"][0]["content"][0]["cache_control"] == plain
    assert sent["messages"][1]["content"][0]["input"] == {"cache_control": "x"}  # tool input is data
    assert rules(notes) == [("cache_control.extensions",
                             "cache_control,system[0].cache_control,tools[0].cache_control,"
                             "messages[0].content[0].cache_control,messages[2].content[0].content[0].cache_control")]
    same, notes = build(raw)
    assert same["cache_control"] == cc and notes == []


# -- system prompt ----------------------------------------------------------------------------


def test_a_mid_conversation_system_message_is_hoisted_into_system_blocks() -> None:
    raw = body(user("q"), {"role": "system", "content": "Be brief."}, user("n"),
               system=[{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}])
    sent, notes = build(raw, caps_make("anthropic", system_messages="hoist"))
    assert sent["system"] == [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}},
                              {"type": "text", "text": "Be brief."}]
    assert sent["messages"] == [user("q"), user("n")]
    assert rules(notes) == [("system_messages.hoist", "messages[1]")]


def test_a_hoisted_system_message_joins_a_string_system_or_becomes_it() -> None:
    hoist = caps_make("anthropic", system_messages="hoist")
    sent, _ = build(body(user("q"), {"role": "system", "content": [{"type": "text", "text": "B"}]}, system="A"), hoist)
    assert sent["system"] == "A\n\nB"
    sent, _ = build(body(user("q"), {"role": "system", "content": "B"}), hoist)
    assert sent["system"] == "B"


def test_system_messages_keep_and_reject() -> None:
    raw = body(user("q"), {"role": "system", "content": "Be brief."}, user("n"))
    sent, notes = build(raw, caps_make("anthropic", system_messages="keep"))
    assert sent["messages"] == raw["messages"] and notes == []
    with pytest.raises(ApiError) as error:
        build(raw, caps_make("anthropic", system_messages="reject"))
    assert error.value.status == 400
    assert "Unexpected role" in error.value.message and "input message role" in error.value.message


def test_billing_header_block_is_kept_by_default_and_stripped_on_request() -> None:
    system = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cc_entrypoint=cli;"},
              {"type": "text", "text": "You are Claude Code."}]
    sent, notes = build(body(user("q"), system=copy.deepcopy(system)))
    assert sent["system"] == system and notes == []
    sent, notes = build(body(user("q"), system=copy.deepcopy(system)), caps_make("anthropic", strip_billing_header=True))
    assert sent["system"] == system[1:]
    assert rules(notes) == [("system.strip_billing_header", "system[0]")]


# -- prefill (Anthropic docs, prefill) ---------------------------------------------------------------


def test_native_prefill_is_sent_with_trailing_whitespace_trimmed() -> None:
    sent, notes = build(body(user("q"), assistant("The answer is (  ")))
    assert sent["messages"] == [user("q"), assistant("The answer is (")]
    assert rules(notes) == [("prefill.trim_whitespace", "messages[1].content")]
    sent, notes = build(body(user("q"), assistant([{"type": "text", "text": "A "}, {"type": "text", "text": " \n"}])))
    assert sent["messages"][1] == assistant([{"type": "text", "text": "A"}])
    assert rules(notes) == [("prefill.trim_whitespace", "messages[1].content")]


def test_rewrite_turns_the_prefill_into_an_instruction_in_the_user_turn_before_it() -> None:
    sent, notes = build(body(user("Say hello world"), assistant("hello ")), caps_make("anthropic-no-prefill"))
    instruction = PREFILL_REWRITE_INSTRUCTION.format(text="hello")
    assert sent == {"model": "claude-upstream", "max_tokens": 100, "messages": [
        user([{"type": "text", "text": "Say hello world"}, {"type": "text", "text": instruction}])]}
    assert rules(notes) == [("prefill.rewrite", "messages[1]")]


def test_rewrite_after_a_tool_turn_appends_a_user_message() -> None:
    call = assistant([{"type": "tool_use", "id": "toolu_1", "name": "T", "input": {}}])
    result = user([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}])
    sent, _ = build(body(user("q"), call, result, assistant("Done: ")), caps_make("anthropic-no-prefill"))
    instruction = {"type": "text", "text": PREFILL_REWRITE_INSTRUCTION.format(text="Done:")}
    assert sent["messages"] == [user("q"), call, user([*result["content"], instruction])]
    sent, _ = build(body(user("q"), call, result, {"role": "system", "content": "s"}, assistant("Done:")),
                    caps_make("anthropic-no-prefill", system_messages="hoist"))
    assert sent["messages"][-1] == user([*result["content"], instruction])


def test_an_assistant_turn_with_tool_use_is_not_a_prefill() -> None:
    call = assistant([{"type": "tool_use", "id": "toolu_1", "name": "T", "input": {}}])
    sent, notes = build(body(user("q"), call), caps_make("anthropic-no-prefill"))
    assert sent["messages"] == [user("q"), call] and notes == []


def test_prefill_reject_is_a_clear_400_and_other_strategies_mean_native() -> None:
    with pytest.raises(ApiError) as error:
        build(body(user("q"), assistant("A")), caps_make("anthropic", prefill="reject"))
    assert error.value.status == 400 and "prefill=reject" in error.value.message
    sent, notes = build(body(user("q"), assistant("A")), caps_make("anthropic", prefill="continue_final_message"))
    assert sent["messages"] == [user("q"), assistant("A")] and "continue_final_message" not in sent
    assert rules(notes) == [("prefill.native", "messages[1]")]


def test_prefill_with_thinking_disables_thinking_but_keeps_the_effort() -> None:
    raw = body(user("q"), assistant("A"), thinking={"type": "adaptive"}, output_config={"effort": "high"})
    sent, notes = build(raw)
    assert "thinking" not in sent and sent["output_config"] == {"effort": "high"}
    assert rules(notes) == [("prefill.thinking_off", "thinking")]
    sent, notes = build(raw, caps_make("anthropic", prefill_with_thinking="allow"))
    assert sent["thinking"] == {"type": "adaptive"} and notes == []
    with pytest.raises(ApiError) as error:
        build(raw, caps_make("anthropic", prefill_with_thinking="reject"))
    assert error.value.status == 400 and "prefill_with_thinking=reject" in error.value.message


def test_a_rewritten_prefill_leaves_thinking_on() -> None:
    raw = body(user("q"), assistant("A"), thinking={"type": "enabled", "budget_tokens": 2048})
    sent, notes = build(raw, caps_make("anthropic-no-prefill"))
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert rules(notes) == [("prefill.rewrite", "messages[1]")]


# -- escape hatches and headers ----------------------------------------------------------------


def test_drop_fields_and_extra_body_apply_last() -> None:
    sent, notes = build(body(user("q"), service_tier="auto"),
                        caps_make("anthropic", drop_fields=["service_tier"], extra_body={"metadata": {"user_id": "x"}}))
    assert sent == {"model": "claude-upstream", "max_tokens": 100, "messages": [user("q")],
                    "metadata": {"user_id": "x"}}
    assert rules(notes) == [("drop_fields", "service_tier"), ("extra_body", "metadata")]


CLAUDE_CODE_BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"


def test_betas_are_forwarded_all_none_or_only_the_listed_ones() -> None:
    client = {"Anthropic-Beta": CLAUDE_CODE_BETAS, "Anthropic-Version": "2023-06-01"}
    headers, notes = headers_build(client, caps_make("anthropic"))
    assert headers == {"anthropic-version": "2023-06-01", "anthropic-beta": CLAUDE_CODE_BETAS} and notes == []
    headers, notes = headers_build(client, caps_make("anthropic", betas=[]))
    assert headers == {"anthropic-version": "2023-06-01"}
    assert notes == [RewriteNote("betas.filter", "headers.anthropic-beta",
                                 f"Not forwarded to this backend: {CLAUDE_CODE_BETAS.replace(',', ', ')} "
                                 "(capability betas).")]
    headers, notes = headers_build(client, caps_make("anthropic", betas="interleaved-thinking-2025-05-14"))
    assert headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert rules(notes) == [("betas.filter", "headers.anthropic-beta")]


def test_anthropic_version_defaults_when_the_client_sends_none() -> None:
    assert headers_build(None, caps_make("anthropic")) == ({"anthropic-version": "2023-06-01"}, [])


# -- recorded Claude Code requests ---------------------------------------------------------------


@pytest.mark.parametrize("preset", ["anthropic", "anthropic-no-prefill"])
def test_claude_code_thinking_replay_passes_unchanged(preset: str) -> None:
    raw = claude_code_body("04")
    sent, notes = build(copy.deepcopy(raw), caps_make(preset))
    assert sent == {**raw, "model": "claude-upstream"}
    assert notes == []
    thinking = raw["messages"][-2]["content"][0]
    assert thinking["type"] == "thinking"
    assert sent["messages"][-2]["content"][0]["signature"] == thinking["signature"]


@pytest.mark.parametrize("preset", ["anthropic", "anthropic-no-prefill"])
def test_claude_code_mid_conversation_system_message_passes_through(preset: str) -> None:
    # Claude Code sends it with its beta, which Claude accepts: the presets keep it in place.
    raw = claude_code_body("10")
    sent, notes = build(copy.deepcopy(raw), caps_make(preset))
    assert sent == {**raw, "model": "claude-upstream"}
    assert notes == []


def test_claude_code_mid_conversation_system_message_can_be_hoisted() -> None:
    raw = claude_code_body("10")
    [(i, system_message)] = [(i, m) for i, m in enumerate(raw["messages"]) if m["role"] == "system"]
    sent, notes = build(copy.deepcopy(raw), caps_make("anthropic", system_messages="hoist"))
    expected = copy.deepcopy(raw)
    del expected["messages"][i]
    expected["system"].append({"type": "text", "text": system_message["content"]})
    assert sent == {**expected, "model": "claude-upstream"}
    assert rules(notes) == [("system_messages.hoist", f"messages[{i}]")]


def test_claude_code_first_turn_loses_only_the_billing_block_when_asked() -> None:
    raw = claude_code_body("02")
    sent, notes = build(copy.deepcopy(raw), caps_make("anthropic", strip_billing_header=True))
    assert sent == {**raw, "model": "claude-upstream", "system": raw["system"][1:]}
    assert rules(notes) == [("system.strip_billing_header", "system[0]")]
