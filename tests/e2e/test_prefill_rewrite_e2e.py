"""The ``rewrite`` prefill strategy, end to end, against a backend that rejects a trailing assistant
message the way Claude 4.6 does and repeats the reply so far when asked to continue it (the mock
scenario ``repeats_prefill``). The client must see a plain continuation, streamed and not."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.e2e.conftest import Gateway
from tests.mockbackend.scenarios import PREFILL_REJECTED, REPEATED_PREFILL_CONTINUATION

pytestmark = pytest.mark.e2e

PREFILL = [{"role": "user", "content": "Pick a letter: (A) yes (B) no"},
           {"role": "assistant", "content": "The answer is ("}]


def _create(client: anthropic.Anthropic, model: str, stream: bool) -> Any:
    if stream:
        with client.messages.stream(model=model, max_tokens=100, messages=PREFILL) as s:  # type: ignore[arg-type]
            return s.get_final_message()
    return client.messages.create(model=model, max_tokens=100, messages=PREFILL)  # type: ignore[arg-type]


def test_the_backend_really_rejects_prefill_without_the_rewrite(client: anthropic.Anthropic) -> None:
    # Same scenario through a route that keeps the vLLM strategy: the backend's 400 reaches the client.
    with pytest.raises(anthropic.BadRequestError) as exc:
        _create(client, "mock-repeats_prefill", stream=False)
    assert PREFILL_REJECTED in exc.value.message


@pytest.mark.parametrize("stream", [False, True])
def test_rewrite_turns_a_rejected_prefill_into_a_clean_continuation(client: anthropic.Anthropic, gateway: Gateway,
                                                                    stream: bool) -> None:
    message = _create(client, "rewrite-claude", stream)
    assert [b.type for b in message.content] == ["text"]
    # The model said "The answer is (B) no."; the client asked to continue "The answer is (".
    assert message.content[0].text == REPEATED_PREFILL_CONTINUATION
    assert message.stop_reason == "end_turn"
    sent = gateway.mock.requests[-1]["body"]
    assert sent["model"] == "mock-repeats_prefill"
    assert [m["role"] for m in sent["messages"]] == ["user", "user"]
    assert "<reply_so_far>\nThe answer is (\n</reply_so_far>" in sent["messages"][-1]["content"]
    assert "continue_final_message" not in sent and "add_generation_prompt" not in sent
