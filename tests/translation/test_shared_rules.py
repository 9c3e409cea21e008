"""The rules every backend kind shares have one home: the message fold, the prefill plan, the stripper."""

from __future__ import annotations

import pytest

from tests.translation.support import caps_make
from translation.errors import ApiError
from translation.fold import MessageFold, message_fold
from translation.prefill import PrefixStrip, prefill_plan
from translation.schemas import MessagesRequest

PREFILL = MessagesRequest.model_validate({"model": "m", "max_tokens": 8, "messages": [
    {"role": "user", "content": "q"}, {"role": "assistant", "content": "The answer is "}]})


def test_the_fold_builds_text_thinking_and_tool_input_as_a_client_does() -> None:
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "content": [], "usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                         "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f",
                                                                         "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]
    assert message_fold(events) == {
        "id": "msg_1", "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 5},
        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]}


def test_the_fold_keeps_integers_beyond_64_bits_exact() -> None:
    # orjson reads -2**63-1 as a float; the client's SDK (and translate_response) keep the integer.
    big = "-9223372036854775809"
    events = [{"type": "message_start", "message": {}},
              {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "input": {}}},
              {"type": "content_block_delta", "index": 0,
               "delta": {"type": "input_json_delta", "partial_json": '{"n": ' + big + "}"}},
              {"type": "content_block_stop", "index": 0}]
    assert message_fold(events)["content"][0]["input"] == {"n": int(big)}


def test_a_tool_input_that_does_not_parse_is_kept_for_a_reader_or_left_empty() -> None:
    events = [{"type": "message_start", "message": {}},
              {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "input": {}}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}},
              {"type": "content_block_stop", "index": 0}]
    assert message_fold(events)["content"] == [{"type": "tool_use", "input": {}, "input_unparsed": "{"}]
    fold = MessageFold(keep_unparsed=False)
    for event in events:
        fold.feed(event)
    assert fold.message["content"] == [{"type": "tool_use", "input": {}}]


@pytest.mark.parametrize("kind", ["openai_chat", "openai_responses", "anthropic"])
def test_every_kind_names_the_message_the_same_way_in_a_prefill_400(kind: str) -> None:
    with pytest.raises(ApiError) as caught:
        prefill_plan(request=PREFILL, caps=caps_make(prefill="reject"), kind=kind)  # type: ignore[arg-type]
    assert caught.value.message.startswith("messages.1: this backend does not accept a trailing assistant message")


def test_the_plan_falls_back_where_a_kind_cannot_honour_the_strategy() -> None:
    caps = caps_make("vllm", prefill_trim_whitespace=True)
    chat = prefill_plan(request=PREFILL, caps=caps, kind="openai_chat")
    responses = prefill_plan(request=PREFILL, caps=caps, kind="openai_responses")
    native = prefill_plan(request=PREFILL, caps=caps, kind="anthropic")
    assert chat is not None and responses is not None and native is not None
    assert (chat.strategy, responses.strategy, native.strategy) == ("continue_final_message", "rewrite", "native")
    assert chat.text == responses.text == "The answer is"
    assert [n.rule for n in responses.notes] == ["prefill.trim_whitespace", "prefill.rewrite_forced",
                                                 "prefill.rewrite"]
    assert chat.thinking_off and not responses.thinking_off


def test_the_prefix_strip_reports_once() -> None:
    strip = PrefixStrip("The answer")
    assert strip.feed("The ") == "" and strip.feed("answer is") == " is"
    assert strip.note() is not None and strip.note() is None
    assert PrefixStrip("abc").strip("abx") == "abx"
