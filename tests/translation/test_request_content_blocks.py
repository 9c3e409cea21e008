"""User and assistant content blocks become Chat messages; what has no equivalent is flattened or dropped with a note."""

from __future__ import annotations

from tests.translation.support import caps_make, request_make
from translation.openai_chat import build_request


def _user(*blocks: dict) -> list[dict]:
    return [{"role": "user", "content": list(blocks)}]


def test_user_text_blocks_become_one_string_and_empty_blocks_are_skipped() -> None:
    body, _ = build_request(request_make(_user({"type": "text", "text": "a"}, {"type": "text", "text": ""},
                                               {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}})),
                            caps_make(), upstream_model="m")
    assert body["messages"] == [{"role": "user", "content": "a\n\nb"}]


def test_images_become_image_url_parts_as_data_uris_or_kept_urls() -> None:
    body, _ = build_request(request_make(_user(
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
    )), caps_make(), upstream_model="m")
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
    ]


def test_text_documents_are_flattened_and_pdfs_become_file_parts() -> None:
    body, notes = build_request(request_make(_user(
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "hello"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
    )), caps_make(), upstream_model="m")
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Notes\n\nhello"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "document.pdf"}},
    ]
    assert {"document.flatten", "document.file"} <= {n.rule for n in notes}


def test_search_results_are_flattened_to_text() -> None:
    body, _ = build_request(request_make(_user({"type": "search_result", "source": "https://s.test", "title": "T",
                                                "content": [{"type": "text", "text": "body"}]})),
                            caps_make(), upstream_model="m")
    assert body["messages"][0]["content"] == "T\nhttps://s.test\n\nbody"


def test_redacted_thinking_and_server_tool_blocks_are_dropped_with_notes() -> None:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "text", "text": "answer"},
    ]}, {"role": "user", "content": "thanks"}]
    body, notes = build_request(request_make(messages), caps_make(), upstream_model="m")
    assert body["messages"][1] == {"role": "assistant", "content": "answer"}
    rules = [n.rule for n in notes]
    assert rules.count("redacted_thinking.drop") == 1 and rules.count("block.drop") == 2


def test_thinking_blocks_never_become_content_parts() -> None:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "t1", "signature": "s"}, {"type": "text", "text": "a"},
        {"type": "thinking", "thinking": "t2", "signature": "s"}]}, {"role": "user", "content": "more"}]
    body, _ = build_request(request_make(messages), caps_make(), upstream_model="m")
    assert body["messages"][1] == {"role": "assistant", "content": "a", "reasoning_content": "t1\n\nt2"}


def test_consecutive_same_role_messages_stay_separate() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    body, _ = build_request(request_make(messages), caps_make(), upstream_model="m")
    assert body["messages"] == [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
