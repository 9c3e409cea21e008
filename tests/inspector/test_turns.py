"""Between turns: what a request changed in the prompt compared with the same agent's previous one
(inspector/turns.py), on small bodies and on a replayed Claude Code session."""

from __future__ import annotations

import copy
import itertools
import time
from typing import Any

from inspector.turns import common_prefix_len, common_suffix_len, turn_change
from tests.claude_code_session import claude_code_session

SYSTEM = [{"type": "text", "text": "You are Claude Code."},
          {"type": "text", "text": "Be brief. Use the tools.", "cache_control": {"type": "ephemeral"}}]
TOOLS = [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
         {"name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "system": copy.deepcopy(SYSTEM), "tools": copy.deepcopy(TOOLS),
            "messages": list(copy.deepcopy(messages)), **extra}


def user(text: str, cached: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cached:
        block["cache_control"] = {"type": "ephemeral"}
    return {"role": "user", "content": [block]}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text},
                                             {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]}


def test_an_agents_first_turn_is_labelled_first() -> None:
    change = turn_change(None, body(user("hi")))
    assert change.kind == "first" and change.label() == "first turn"


def test_appended_messages_are_counted_with_their_bytes_and_tool_calls() -> None:
    before = body(user("hi"))
    after = body(user("hi"), assistant("Looking."), user("ok"))
    change = turn_change(before, after)
    assert change.kind == "appended" and change.broken is None
    assert change.messages_added == 2 and change.bytes_added > 40
    assert change.tool_calls == ["Bash"]
    assert change.label().startswith("+2 messages (+")


def test_moving_cache_control_to_the_last_message_does_not_break_the_prefix() -> None:
    before = body(user("hi", cached=True))
    after = body(user("hi"), assistant("Looking."), user("ok", cached=True))
    after["system"][1].pop("cache_control")
    change = turn_change(before, after)
    assert change.kind == "appended" and change.broken is None, change.label()


def test_a_string_content_equals_the_text_block_it_stands_for() -> None:
    before = body({"role": "user", "content": "hi"})
    after = body(user("hi", cached=True), assistant("Looking."))
    assert turn_change(before, after).kind == "appended"


def test_an_edit_in_the_system_prompt_is_a_prefix_break_at_its_path_and_char() -> None:
    before = body(user("hi"))
    after = body(user("hi"), assistant("Looking."))
    after["system"][1]["text"] = "Be brief. Use all tools."
    change = turn_change(before, after)
    assert change.kind == "prefix_broken"
    assert change.broken is not None and change.broken.path == "system[1].text" and change.broken.char == 14
    # The excerpt: the common text before, the differing middle, the common text after.
    assert (change.broken.context, change.broken.was, change.broken.now, change.broken.tail) == (
        "Be brief. Use ", "the", "all", " tools.")
    assert "prefix broken at system[1].text, char 14" in change.label()
    assert change.messages_added == 1


def test_an_edit_inside_an_earlier_message_is_reported_at_the_message_path() -> None:
    before = body(user("hi"), assistant("Looking at it."), user("ok"))
    after = body(user("hi"), assistant("Looking at that."), user("ok"), assistant("Done."))
    change = turn_change(before, after)
    assert change.broken is not None and change.broken.path == "messages[1].content[0].text"
    assert change.broken.char == len("Looking at ")


def test_fewer_messages_is_a_compaction_with_the_count_removed() -> None:
    before = body(user("hi"), assistant("a"), user("b"), assistant("c"), user("d"))
    after = body(user("Summary of the conversation so far."))
    change = turn_change(before, after)
    assert change.kind == "messages_removed" and change.messages_removed == 4
    assert change.broken is not None and change.broken.path == "messages[0].content[0].text"
    assert "-4 messages" in change.label()


def test_a_tool_added_breaks_the_prefix_at_tools_and_is_named() -> None:
    before = body(user("hi"))
    after = body(user("hi"), assistant("x"))
    after["tools"].insert(1, {"name": "Grep", "input_schema": {"type": "object"}})
    change = turn_change(before, after)
    assert change.kind == "prefix_broken" and change.tools_added == ["Grep"] and change.tools_removed == []
    assert change.broken is not None and change.broken.path == "tools[1].name"
    assert "tools added: Grep" in change.label()


def test_a_changed_tool_schema_is_reported_inside_the_schema() -> None:
    before = body(user("hi"))
    after = body(user("hi"))
    after["tools"][0]["input_schema"]["properties"]["timeout"] = {"type": "integer"}
    change = turn_change(before, after)
    assert change.broken is not None and change.broken.path == "tools[0].input_schema.properties.timeout"
    assert change.tools_added == [] and change.tools_removed == []


def test_a_model_change_is_reported_beside_the_outcome() -> None:
    change = turn_change(body(user("hi")), body(user("hi"), assistant("x"), model="claude-haiku-4-5"))
    assert change.kind == "appended" and change.model_changed
    assert "model claude-sonnet-4-5 → claude-haiku-4-5" in change.label()


def test_openai_chat_bodies_compare_messages_and_find_a_break_in_the_system_message() -> None:
    before = {"model": "m", "messages": [{"role": "system", "content": "You are helpful. Today is Monday."},
                                         {"role": "user", "content": "hi"}]}
    after = {"model": "m", "messages": [{"role": "system", "content": "You are helpful. Today is Tuesday."},
                                        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    change = turn_change(before, after)
    assert change.kind == "prefix_broken" and change.messages_added == 1
    assert change.broken is not None and change.broken.path == "messages[0].content"
    assert change.broken.char == len("You are helpful. Today is ")


def test_responses_bodies_compare_instructions_then_input() -> None:
    before = {"model": "m", "instructions": "Be brief.", "input": [{"role": "user", "content": "hi"}]}
    grown = {**before, "input": [*before["input"], {"type": "function_call", "name": "Read", "arguments": "{}"}]}
    assert turn_change(before, grown).kind == "appended"
    assert turn_change(before, grown).tool_calls == ["Read"]
    edited = {**grown, "instructions": "Be short."}
    broken = turn_change(before, edited).broken
    assert broken is not None and broken.path == "instructions" and broken.char == 3
    assert (broken.was, broken.now, broken.tail) == ("brief", "short", ".")


def test_an_insertion_shows_nothing_struck_and_the_inserted_text() -> None:
    before = body(user("hi"))
    after = body(user("hi"))
    after["system"][0]["text"] = "You are Claude Code, Anthropic's CLI."
    broken = turn_change(before, after).broken
    assert broken is not None and broken.char == len("You are Claude Code")
    assert (broken.was, broken.now, broken.tail) == ("", ", Anthropic's CLI", ".")


def test_a_truncated_body_is_not_compared_and_says_why() -> None:
    change = turn_change(body(user("hi")), {"_truncated": True, "kept": 10, "total": 20, "head": "{"})
    assert change.kind == "unknown" and "truncated" in change.label()


def test_common_prefix_len_agrees_with_a_direct_scan() -> None:
    for a, b in [("", ""), ("abc", "abc"), ("abc", "abd"), ("abc", "ab"), ("x" * 5000 + "a", "x" * 5000 + "b"),
                 ("a", "b"), ("héllo wörld", "héllo world")]:
        expected = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        assert common_prefix_len(a, b) == expected, (a[:20], b[:20])
        assert common_suffix_len(a[::-1], b[::-1], len(a)) == expected


def test_the_common_suffix_never_overlaps_the_common_prefix() -> None:
    assert common_suffix_len("abab", "ab", 0) == 0
    assert common_suffix_len("xaaa", "yaaaa", 3) == 3


def test_the_replayed_claude_code_session_is_appended_every_turn_except_the_edit() -> None:
    turns = claude_code_session(10, subagent_at=3, edit_at=7)
    previous: dict[str, Any] = {}
    labels: dict[str, list[str]] = {"main": [], "explore": []}
    for turn in turns:
        change = turn_change(previous.get(turn.agent), turn.body)
        previous[turn.agent] = turn.body
        labels[turn.agent].append(change.label())
        if turn.agent == "main" and len(labels["main"]) == 7:
            assert change.broken is not None and change.broken.path == "system[2].text"
            assert change.broken.char == 4102
    assert labels["main"][0] == "first turn" and labels["explore"][0] == "first turn"
    assert labels["main"][6] == "prefix broken at system[2].text, char 4,102; +2 messages"
    others = labels["main"][1:6] + labels["main"][7:] + labels["explore"][1:]
    assert all(label.startswith("+2 messages (+") for label in others), others


def test_a_thirty_turn_session_of_180_kb_requests_compares_in_well_under_a_second() -> None:
    turns = [t for t in claude_code_session(30, edit_at=20) if t.agent == "main"]
    assert len(turns[-1].raw()) > 170_000
    started = time.perf_counter()
    changes = [turn_change(a.body, b.body) for a, b in itertools.pairwise(turns)]
    elapsed = time.perf_counter() - started
    assert [c.kind for c in changes].count("prefix_broken") == 1
    assert elapsed < 0.5, f"{elapsed * 1000:.0f} ms for 29 comparisons"
