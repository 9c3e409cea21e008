"""A trailing assistant message (prefill) reaches each backend the way it can continue it (headline #1)."""

from __future__ import annotations

import pytest

from tests.translation.support import caps_make, chunk, request_make, stream_run
from translation.errors import ApiError
from translation.openai_chat import build_request, translate_response

PREFILL = [{"role": "user", "content": "Pick a letter"}, {"role": "assistant", "content": "The answer is ("}]


def test_prefill_reaches_vllm_as_continue_final_message_with_thinking_off() -> None:
    body, notes = build_request(request_make(PREFILL), caps_make("vllm"), upstream_model="qwen")
    assert body["continue_final_message"] is True
    assert body["add_generation_prompt"] is False
    assert body["messages"][-1] == {"role": "assistant", "content": "The answer is ("}
    # Qwen3-style templates open <think> by default: the continuation would be misfiled as reasoning.
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert [n.rule for n in notes] == ["prefill.continue_final_message", "prefill.thinking_off",
                                       "thinking.chat_template_kwargs"]


def test_prefill_is_sent_as_is_to_native_backends() -> None:
    body, notes = build_request(request_make(PREFILL), caps_make("generic"), upstream_model="m")
    assert body["messages"][-1] == {"role": "assistant", "content": "The answer is ("}
    assert "continue_final_message" not in body
    assert notes == []


def test_prefill_to_deepseek_sets_prefix_flag_and_kimi_sets_partial() -> None:
    deepseek, _ = build_request(request_make(PREFILL), caps_make("deepseek"), upstream_model="m")
    kimi, notes = build_request(request_make(PREFILL), caps_make("kimi"), upstream_model="m")
    assert deepseek["messages"][-1] == {"role": "assistant", "content": "The answer is (", "prefix": True}
    assert kimi["messages"][-1] == {"role": "assistant", "content": "The answer is (", "partial": True}
    assert notes[0].rule == "prefill.prefix_flag"


def test_prefill_to_a_rejecting_backend_is_a_400_naming_the_capability() -> None:
    with pytest.raises(ApiError) as exc:
        build_request(request_make(PREFILL), caps_make(prefill="reject"), upstream_model="m")
    assert exc.value.status == 400
    assert "capability prefill=reject" in exc.value.message


def test_prefill_rewrite_replaces_the_assistant_message_with_a_continue_instruction() -> None:
    body, notes = build_request(request_make(PREFILL), caps_make("openai"), upstream_model="gpt")
    last = body["messages"][-1]
    assert last["role"] == "user"
    assert "The answer is (" in last["content"]
    assert all(m["role"] != "assistant" for m in body["messages"])
    assert "prefill.rewrite" in [n.rule for n in notes]


def test_prefill_rewrite_strips_a_repeated_prefix_from_the_reply() -> None:
    req, caps = request_make(PREFILL), caps_make("openai")
    body = {"choices": [{"index": 0, "message": {"content": "The answer is (B)"}, "finish_reason": "stop"}]}
    message, notes = translate_response(body, caps, request=req, message_id="msg_1")
    assert message["content"] == [{"type": "text", "text": "B)"}]
    assert notes[0].rule == "prefill.strip_repeated_prefix"


def test_prefill_rewrite_keeps_a_reply_that_does_not_repeat_the_prefix() -> None:
    req, caps = request_make(PREFILL), caps_make("openai")
    body = {"choices": [{"index": 0, "message": {"content": "B)"}, "finish_reason": "stop"}]}
    message, _ = translate_response(body, caps, request=req, message_id="msg_1")
    assert message["content"] == [{"type": "text", "text": "B)"}]


@pytest.mark.parametrize("pieces, expected", [
    (["The ans", "wer is (", "B)"], "B)"),
    (["The answer is (B", ")"], "B)"),
    (["The", " answer is (B)"], "B)"),
    (["B", ")"], "B)"),
    (["The quick"], "The quick"),
    (["The answer"], "The answer"),  # shorter than the prefix: kept as is
])
def test_prefill_rewrite_strips_a_repeated_prefix_from_a_stream_split_anywhere(pieces: list[str], expected: str) -> None:
    events, translator = stream_run([chunk({"content": p}) for p in pieces] + [chunk(finish="stop")],
                                    caps=caps_make("openai"), request=request_make(PREFILL))
    texts = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(texts) == expected
    assert translator.message["content"] == [{"type": "text", "text": expected}]


def test_prefill_rewrite_stream_releases_held_text_when_a_tool_call_follows() -> None:
    _, translator = stream_run([
        chunk({"content": "The ans"}),
        chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]}),
        chunk(finish="tool_calls"),
    ], caps=caps_make("openai"), request=request_make(PREFILL))
    assert [b["type"] for b in translator.message["content"]] == ["text", "tool_use"]
    assert translator.message["content"][0]["text"] == "The ans"
