"""Top-level fields: sampling, limits, stream options; unknown Anthropic fields are never forwarded."""

from __future__ import annotations

from tests.translation.support import caps_make, claude_code_body, request_make
from translation.openai_chat import build_request
from translation.schemas import MessagesRequest


def test_sampling_fields_stop_sequences_and_user_are_mapped() -> None:
    req = request_make(temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["END", "\n\n"],
                       metadata={"user_id": "u-1"})
    body, notes = build_request(req, caps_make(), upstream_model="served-name")
    assert body == {"model": "served-name", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100,
                    "stop": ["END", "\n\n"], "temperature": 0.2, "top_p": 0.9, "top_k": 40, "user": "u-1"}
    assert notes == []


def test_top_k_is_dropped_with_a_note_when_the_backend_rejects_it() -> None:
    body, notes = build_request(request_make(top_k=40), caps_make("openai"), upstream_model="m")
    assert "top_k" not in body
    assert [n.rule for n in notes] == ["top_k.drop"]


def test_max_tokens_goes_in_the_capability_field() -> None:
    body, _ = build_request(request_make(max_tokens=321), caps_make("openai"), upstream_model="m")
    assert body["max_completion_tokens"] == 321 and "max_tokens" not in body


def test_streaming_asks_for_usage_only_when_the_capability_allows() -> None:
    body, _ = build_request(request_make(stream=True), caps_make(), upstream_model="m")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    body, _ = build_request(request_make(stream=True), caps_make(stream_usage=False), upstream_model="m")
    assert body["stream"] is True and "stream_options" not in body
    body, _ = build_request(request_make(stream=False), caps_make(), upstream_model="m")
    assert "stream" not in body and "stream_options" not in body


def test_claude_code_context_management_and_cache_control_are_not_forwarded() -> None:
    raw = claude_code_body("10")
    body, notes = build_request(MessagesRequest.model_validate(raw), caps_make("vllm"), upstream_model="m")
    for field in ("thinking", "context_management", "output_config", "metadata", "cache_control"):
        assert field not in body
    assert body["chat_template_kwargs"] == {"enable_thinking": True}  # adaptive thinking, mapped
    assert "cache_control" not in str(body["messages"])
    assert body["max_tokens"] == 64000
    assert body["user"] == raw["metadata"]["user_id"]
    dropped = next(n for n in notes if n.rule == "fields.drop")
    assert dropped.path == "context_management"
