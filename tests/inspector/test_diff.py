"""The exchange page's structural diff: paths in the notes' notation, each labelled by its note."""

from __future__ import annotations

from inspector.diff import (
    ADDED,
    CHANGED,
    MAPPED,
    REMOVED,
    Change,
    changes_grouped,
    json_diff,
    mapping_pair,
    notes_attach,
    notes_unmatched,
    path_segments,
)

PREFILL_NOTE = {"rule": "prefill.continue_final_message", "path": "messages[1]",
                "detail": "Trailing assistant message sent with continue_final_message: true and "
                          "add_generation_prompt: false so the model continues it."}


def ops(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.op, c.path) for c in changes]


def test_added_removed_and_changed_keys_are_reported_with_dotted_paths() -> None:
    old = {"model": "a", "thinking": {"type": "enabled"}, "keep": 1}
    new = {"model": "b", "keep": 1, "chat_template_kwargs": {"enable_thinking": True}}
    assert ops(json_diff(old, new)) == [(CHANGED, "model"), (REMOVED, "thinking"), (ADDED, "chat_template_kwargs")]


def test_nested_changes_use_index_and_key_notation() -> None:
    old = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure "}]}
    new = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure"}]}
    assert ops(json_diff(old, new)) == [(CHANGED, "messages[1].content")]


def test_an_inserted_list_element_does_not_shift_every_later_index() -> None:
    old = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    new = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                        {"role": "user", "content": "b"}]}
    assert ops(json_diff(old, new)) == [(ADDED, "messages[0]")]


def test_a_moved_element_shows_both_paths() -> None:
    old = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"}]}
    new = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "y"}]}
    changes = json_diff(old, new)
    assert (CHANGED, "messages[1].content → messages[2].content") in ops(changes)


def test_equal_documents_have_no_changes() -> None:
    doc = {"a": [1, {"b": None}], "c": "d"}
    assert json_diff(doc, doc) == []


def test_type_changes_are_changes_even_when_values_compare_equal() -> None:
    assert ops(json_diff({"a": 1}, {"a": True})) == [(CHANGED, "a")]


def test_path_segments_split_keys_and_indices() -> None:
    assert path_segments("messages[3].content[0].text") == ["messages", "[3]", "content", "[0]", "text"]


def test_continue_final_message_is_labelled_by_the_prefill_rule() -> None:
    old = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure"}]}
    new = {**old, "continue_final_message": True, "add_generation_prompt": False, "model": "b"}
    changes = notes_attach(json_diff({**old, "model": "a"}, new), [PREFILL_NOTE])
    labels = {c.path: c.note and c.note["rule"] for c in changes}
    # "model" appears in the note's prose ("so the model continues it") but not as a field.
    assert labels == {"continue_final_message": "prefill.continue_final_message",
                      "add_generation_prompt": "prefill.continue_final_message", "model": None}


def test_a_note_on_a_parent_path_labels_its_children_and_the_most_specific_wins() -> None:
    notes = [{"rule": "message.rewrite", "path": "messages[2]", "detail": "x"},
             {"rule": "prefill.trim_whitespace", "path": "messages[2].content", "detail": "y"}]
    old = {"messages": [{}, {}, {"role": "assistant", "content": "a ", "name": "n"}]}
    new = {"messages": [{}, {}, {"role": "assistant", "content": "a", "name": "m"}]}
    labels = {c.path: c.note and c.note["rule"] for c in notes_attach(json_diff(old, new), notes)}
    assert labels == {"messages[2].content": "prefill.trim_whitespace", "messages[2].name": "message.rewrite"}


def test_comma_joined_note_paths_match_each_path() -> None:
    note = {"rule": "sampling.drop", "path": "top_k,temperature", "detail": "Dropped."}
    changes = notes_attach(json_diff({"top_k": 5, "temperature": 1, "x": 1}, {"x": 1}), [note])
    assert [c.note for c in changes] == [note, note]


def test_nested_note_paths_label_added_objects_and_unmatched_notes_are_listed() -> None:
    thinking = {"rule": "thinking.chat_template_kwargs", "path": "chat_template_kwargs.enable_thinking",
                "detail": "Thinking switched on via the chat template."}
    other = {"rule": "stream.usage", "path": "stream_options", "detail": "never changed here"}
    changes = notes_attach(json_diff({}, {"chat_template_kwargs": {"enable_thinking": True}}), [thinking, other])
    assert [c.note for c in changes] == [thinking]
    assert notes_unmatched(changes, [thinking, other]) == [other]


def test_a_value_moved_to_another_path_is_one_mapped_row() -> None:
    schema = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
    old = {"tools": [{"name": "Bash", "description": "Runs it.", "input_schema": schema}]}
    new = {"tools": [{"type": "function", "function": {"name": "Bash", "description": "Runs it.", "parameters": schema}}]}
    rows = [(c.op, c.path, c.new) for c in mapping_pair(json_diff(old, new))]
    assert rows == [(MAPPED, "tools[0].name → tools[0].function.name", "Bash"),
                    (MAPPED, "tools[0].description → tools[0].function.description", "Runs it."),
                    (MAPPED, "tools[0].input_schema → tools[0].function.parameters", schema),
                    (ADDED, "tools[0].type", "function")]


def test_a_chat_response_maps_onto_the_message_with_finish_reason_as_stop_reason() -> None:
    chat = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3}}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "Hi there"}],
               "stop_reason": "end_turn", "usage": {"input_tokens": 12, "output_tokens": 3}}
    rows = {c.path: (c.op, c.old, c.new) for c in mapping_pair(json_diff(chat, message))}
    assert rows["choices[0].finish_reason → stop_reason"] == (MAPPED, "stop", "end_turn")
    assert rows["choices[0].message.content → content[0].text"] == (MAPPED, "Hi there", "Hi there")
    assert rows["usage.prompt_tokens → usage.input_tokens"] == (MAPPED, 12, 12)
    assert rows["choices[0].message.role → role"] == (MAPPED, "assistant", "assistant")
    assert rows["id"] == (CHANGED, "chatcmpl-1", "msg_1")
    assert rows["object"] == (REMOVED, "chat.completion", None)
    assert rows["content[0].type"] == (ADDED, None, "text")
    assert rows["choices[0].index"] == (REMOVED, 0, None)
    assert len(rows) == 10  # 5 mapped, id changed, object and index removed, type and content[0].type added


def test_an_added_value_is_matched_once() -> None:
    rows = [(c.op, c.path) for c in mapping_pair(json_diff({"a": "x"}, {"b": "x", "c": "x"}))]
    assert rows == [(MAPPED, "a → b"), (ADDED, "c")]


def test_a_hoisted_system_message_does_not_shift_the_pairing_of_translated_messages() -> None:
    old = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Read a.txt"}]},
                        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read"}]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "hi"}]}]}
    new = {"messages": [{"role": "system", "content": "Be terse."},
                        {"role": "user", "content": "Read a.txt"},
                        {"role": "assistant", "tool_calls": [{"id": "toolu_1", "function": {"name": "Read"}}]},
                        {"role": "tool", "tool_call_id": "toolu_1", "content": "hi"}]}
    rows = ops(json_diff(old, new))
    assert ("added", "messages[0]") in rows
    assert ("changed", "messages[0].content → messages[1].content") in rows
    assert ("added", "messages[2].tool_calls") in rows and ("removed", "messages[1].content") in rows
    assert ("changed", "messages[2].role → messages[3].role") in rows
    assert not any(p.startswith("messages[0].role") for _, p in rows)  # user stays paired with user


def test_a_change_repeated_in_every_element_is_one_row_with_its_count() -> None:
    old = {"tools": [{"name": n, "input_schema": {"p": n}} for n in ("A", "B", "C")]}
    new = {"tools": [{"type": "function", "function": {"name": n, "parameters": {"p": n}}} for n in ("A", "B", "C")]}
    grouped = [(c.op, c.path, count) for c, count in changes_grouped(mapping_pair(json_diff(old, new)))]
    assert grouped == [(MAPPED, "tools[0].name → tools[0].function.name", 3),
                       (MAPPED, "tools[0].input_schema → tools[0].function.parameters", 3),
                       (ADDED, "tools[0].type", 3)]


def test_a_removed_object_nothing_of_which_went_elsewhere_is_one_removed_row() -> None:
    rows = [(c.op, c.path) for c in mapping_pair(json_diff({"thinking": {"type": "enabled", "budget_tokens": 10}, "a": 1},
                                                           {"a": 1}))]
    assert rows == [(REMOVED, "thinking")]


def test_content_blocks_joined_into_strings_in_every_message_are_one_reshaping_row() -> None:
    old = {"messages": [{"role": "user", "content": [{"type": "text", "text": t}]} for t in ("a b", "c d")]}
    new = {"messages": [{"role": "user", "content": t, "name": f"n{i}"} for i, t in enumerate(("a b", "c d"))]}
    grouped = [(c.op, c.path, count) for c, count in changes_grouped(mapping_pair(json_diff(old, new)))]
    assert grouped == [(CHANGED, "messages[0].content", 2), (ADDED, "messages[0].name", 2)]
