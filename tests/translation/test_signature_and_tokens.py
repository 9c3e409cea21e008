"""Gateway thinking signatures are recognisable; the local token estimate does not undercount."""

from __future__ import annotations

from pathlib import Path

from tests.translation.support import claude_code_body, request_make
from translation.schemas import CountTokensRequest, MessagesRequest
from translation.signature import signature_mint, signature_read
from translation.tokens import tokens_estimate


def test_a_minted_signature_reads_back_its_payload() -> None:
    sig = signature_mint({"src": "chat"})
    assert sig.startswith("dgm1.")
    assert signature_read(sig) == {"src": "chat"}


def test_foreign_or_damaged_signatures_read_as_none() -> None:
    for sig in ("EqQBMockSignature2ee7229044d842a3b129b71", "", "dgm1.", "dgm1.!!!", "dgm1.WzFd"):  # WzFd = [1]
        assert signature_read(sig) is None


def test_the_estimate_covers_english_and_code_at_three_characters_per_token() -> None:
    source = (Path(__file__).resolve().parents[2] / "translation" / "openai_chat" / "stream.py").read_text()
    req = request_make([{"role": "user", "content": source}])
    assert tokens_estimate(req) >= len(source) / 3


def test_the_estimate_counts_system_tools_tool_inputs_results_and_thinking() -> None:
    base = tokens_estimate(request_make("hi"))
    richer = request_make([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "x" * 300, "signature": "s"},
                                          {"type": "tool_use", "id": "t", "name": "f", "input": {"a": "y" * 300}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "z" * 300}]},
    ], system="s" * 300, tools=[{"name": "f", "description": "d" * 300, "input_schema": {"type": "object"}}])
    assert tokens_estimate(richer) >= base + 5 * 100


def test_claude_code_count_tokens_requests_are_estimated() -> None:
    with_tools = CountTokensRequest.model_validate(claude_code_body("16"))
    text_only = CountTokensRequest.model_validate(claude_code_body("15"))
    assert tokens_estimate(with_tools) > tokens_estimate(text_only) > 0
    full = MessagesRequest.model_validate(claude_code_body("02"))
    assert tokens_estimate(full) > 5000
