"""What the gateway makes of vLLM, SGLang and Ollama as their serving code really behaves.

Each test drives the gateway (Django's async test client, the real pipeline) against the mock
backend over a socket, through a backend with that server's preset, and picks the mock's
scenario for one server behaviour with a ``[[mock:NAME]]`` directive. The scenarios copy the
servers' code at the versions docs/backends.md names (tests/mockbackend/quirks.py cites the
file and function of each); a test marked xfail is a behaviour the translation does not handle
yet, and says what it must do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import AsyncClient

from tests.conftest import KEY
from tests.gateway.helpers import parse_sse
from tests.mockbackend import MockServerThread
from tests.mockbackend.quirks import CONTINUATION, EOS_TOKEN_ID, QUIRK_STOP, QUIRK_TEXT
from tests.mockbackend.scenarios import MAX_MODEL_LEN, chat_template_render, tokens_estimate

pytestmark = pytest.mark.django_db(transaction=True)

CUT_TEXT = QUIRK_TEXT.split(QUIRK_STOP)[0]  # what the reply says before the stop string
# Comfortably over MAX_MODEL_LEN tokens as the mock counts them (one per 4 bytes).
LONG_PROMPT = "word " * (MAX_MODEL_LEN + 4000)
PROMPT_TOO_LONG = re.compile(rf"^prompt is too long: \d+ tokens > {MAX_MODEL_LEN} maximum$")
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                    "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}}
TOOL = {"name": "Bash", "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServerThread]:
    # One mock for the module: every test picks its scenario per request, so none share state.
    with MockServerThread() as server:
        yield server


@pytest.fixture
def backends(transactional_db: None, mock: MockServerThread) -> Iterator[None]:
    """One backend per server preset, each behind the route ``<preset>-model``."""
    from gateway import snapshot, upstream
    from gateway.models import Backend, Route
    from gateway.services import apikey_create

    for preset in ("vllm", "sglang", "ollama"):
        backend = Backend.objects.create(name=preset, base_url=mock.url, preset=preset)
        Route.objects.create(model=f"{preset}-model", backend=backend, upstream_model="mock")
    apikey_create(name="tester", secret=KEY)
    upstream.pools.reset()
    snapshot.snapshot_invalidate()
    mock.requests.clear()
    yield
    upstream.pools.reset()
    snapshot.snapshot_invalidate()
    from inspector.recorder import recorder

    recorder.flush(10)  # this test's exchanges are written before the tables are flushed


def ask(server: str, scenario: str, text: str = "Count for me.", **extra: Any) -> dict[str, Any]:
    return {"model": f"{server}-model", "max_tokens": 200,
            "messages": [{"role": "user", "content": f"[[mock:{scenario}]] {text}"}], **extra}


async def post(body: dict[str, Any], path: str = "/v1/messages") -> Any:
    return await AsyncClient().post(path, data=json.dumps(body), content_type="application/json",
                                    headers={"x-api-key": KEY})


async def reply(body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The Anthropic message the client ends up with: text, stop_reason, stop_sequence."""
    response = await post({**body, "stream": stream})
    assert response.status_code == 200, response.content
    if not stream:
        message: dict[str, Any] = response.json()
        text = "".join(b["text"] for b in message["content"] if b["type"] == "text")
        return {"text": text, "stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    events = parse_sse(b"".join([part async for part in response.streaming_content]))
    text = "".join(d["delta"]["text"] for name, d in events
                   if name == "content_block_delta" and d["delta"]["type"] == "text_delta")
    (delta,) = [d["delta"] for name, d in events if name == "message_delta"]
    return {"text": text, "stop_reason": delta["stop_reason"], "stop_sequence": delta["stop_sequence"]}


async def error_of(body: dict[str, Any], *, stream: bool = False) -> tuple[int, dict[str, Any]]:
    response = await post({**body, "stream": stream})
    if stream and response.status_code == 200:
        raw = b"".join([part async for part in response.streaming_content])
        pytest.fail(f"expected an HTTP error before the stream, got a stream: {raw[:300]!r}")
    envelope = response.json()
    assert envelope["type"] == "error", envelope
    return response.status_code, envelope["error"]


STREAMED = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


# -- stop sequences ---------------------------------------------------------------------------


@STREAMED
async def test_vllm_stop_reason_string_is_the_stop_sequence_that_ended_the_reply(backends: None,
                                                                                 stream: bool) -> None:
    got = await reply(ask("vllm", "vllm_stop_reason_string", stop_sequences=["NEVER", QUIRK_STOP]), stream=stream)

    assert got == {"text": CUT_TEXT, "stop_reason": "stop_sequence", "stop_sequence": QUIRK_STOP}


@STREAMED
async def test_a_vllm_stop_token_id_in_stop_reason_is_an_end_turn(backends: None, stream: bool) -> None:
    got = await reply(ask("vllm", "vllm_stop_token_id", stop_sequences=[str(EOS_TOKEN_ID)]), stream=stream)

    assert got == {"text": QUIRK_TEXT, "stop_reason": "end_turn", "stop_sequence": None}


@STREAMED
async def test_sglang_matched_stop_is_the_stop_sequence_that_ended_the_reply(backends: None, stream: bool) -> None:
    got = await reply(ask("sglang", "sglang_matched_stop", stop_sequences=[QUIRK_STOP]), stream=stream)

    assert got == {"text": CUT_TEXT, "stop_reason": "stop_sequence", "stop_sequence": QUIRK_STOP}


@STREAMED
async def test_sglang_eos_token_id_in_matched_stop_is_an_end_turn(backends: None, stream: bool) -> None:
    got = await reply(ask("sglang", "sglang_matched_stop_eos_token_id", stop_sequences=["NEVER"]), stream=stream)

    assert got == {"text": QUIRK_TEXT, "stop_reason": "end_turn", "stop_sequence": None}


@STREAMED
async def test_ollama_replies_cut_at_a_stop_sequence_report_it(backends: None, stream: bool) -> None:
    got = await reply(ask("ollama", "ollama_no_matched_stop", stop_sequences=[QUIRK_STOP]), stream=stream)

    assert got == {"text": CUT_TEXT, "stop_reason": "stop_sequence", "stop_sequence": QUIRK_STOP}


async def test_an_ollama_reply_without_the_stop_sequence_is_an_end_turn(backends: None) -> None:
    got = await reply(ask("ollama", "ollama_no_matched_stop", stop_sequences=["NEVER"]), stream=False)

    assert got == {"text": QUIRK_TEXT, "stop_reason": "end_turn", "stop_sequence": None}


# -- prefill ----------------------------------------------------------------------------------


def prefilled(server: str, scenario: str) -> dict[str, Any]:
    return {"model": f"{server}-model", "max_tokens": 200, "messages": [
        {"role": "user", "content": f"[[mock:{scenario}]] Say hello world."},
        {"role": "assistant", "content": "hello"}]}


@STREAMED
async def test_sglang_continues_a_prefill_and_does_not_echo_it(backends: None, stream: bool) -> None:
    got = await reply(prefilled("sglang", "sglang_continue_final_message"), stream=stream)

    assert got["text"] == CONTINUATION


@STREAMED
async def test_ollama_continues_a_prefill_and_does_not_echo_it(backends: None, stream: bool) -> None:
    got = await reply(prefilled("ollama", "ollama_prefill_continued"), stream=stream)

    assert got["text"] == CONTINUATION


@pytest.mark.xfail(strict=True, reason="SGLang /v1/tokenize refuses add_generation_prompt: false with "
                                       "continue_final_message (serving_tokenize.py): the tokenize body for "
                                       "SGLang must leave add_generation_prompt out")
async def test_sglang_counts_a_prefilled_request_with_its_own_tokenizer(backends: None,
                                                                        mock: MockServerThread) -> None:
    body = prefilled("sglang", "sglang_continue_final_message")
    counted = await post(body, "/v1/messages/count_tokens")

    assert counted.status_code == 200, counted.content
    (sent,) = [r["body"] for r in mock.requests if r["path"].endswith("/tokenize")]
    backend_count = tokens_estimate(chat_template_render(messages=sent["messages"], tools=sent.get("tools"),
                                                         continue_final_message=True))
    assert counted.json()["input_tokens"] == backend_count


# -- context overflow -------------------------------------------------------------------------


@STREAMED
async def test_a_vllm_prompt_over_the_context_is_anthropics_prompt_is_too_long(backends: None,
                                                                                stream: bool) -> None:
    status, error = await error_of(ask("vllm", "vllm_context_length_exceeded_400", LONG_PROMPT), stream=stream)

    assert (status, error["type"]) == (400, "invalid_request_error")
    assert PROMPT_TOO_LONG.match(error["message"]), error["message"]


@STREAMED
async def test_an_sglang_prompt_over_the_context_is_anthropics_prompt_is_too_long(backends: None,
                                                                                   stream: bool) -> None:
    status, error = await error_of(ask("sglang", "sglang_context_length_exceeded_400", LONG_PROMPT),
                                   stream=stream)

    assert (status, error["type"]) == (400, "invalid_request_error")
    assert PROMPT_TOO_LONG.match(error["message"]), error["message"]


async def test_sglang_prompt_plus_max_tokens_over_the_context_is_anthropics_max_tokens_error(
        backends: None) -> None:
    body = ask("sglang", "sglang_context_length_exceeded_400", max_tokens=MAX_MODEL_LEN)

    status, error = await error_of(body)

    assert (status, error["type"]) == (400, "invalid_request_error")
    assert re.match(rf"^input length and `max_tokens` exceed context limit: \d+ \+ {MAX_MODEL_LEN} > "
                    rf"{MAX_MODEL_LEN}, decrease input length or `max_tokens` and try again$",
                    error["message"]), error["message"]


async def test_an_ollama_prompt_over_the_context_is_anthropics_prompt_is_too_long(backends: None) -> None:
    status, error = await error_of(ask("ollama", "ollama_prompt_too_long_400", LONG_PROMPT))

    assert (status, error["type"]) == (400, "invalid_request_error")
    assert error["message"].startswith("prompt is too long"), error["message"]


async def test_vllm_max_tokens_over_the_model_length_is_a_400_with_the_servers_words(backends: None) -> None:
    status, error = await error_of(ask("vllm", "vllm_max_tokens_over_max_model_len_400",
                                       max_tokens=2 * MAX_MODEL_LEN))

    assert (status, error["type"]) == (400, "invalid_request_error")
    assert f"cannot be greater than max_model_len={MAX_MODEL_LEN}" in error["message"]


async def test_vllm_prompt_plus_max_tokens_over_the_context_ends_in_max_tokens(backends: None) -> None:
    # vLLM 0.34 lowers max_tokens to what the prompt leaves instead of refusing the request.
    got = await reply(ask("vllm", "vllm_max_tokens_over_max_model_len_400", max_tokens=MAX_MODEL_LEN),
                      stream=False)

    assert got["stop_reason"] == "max_tokens"


# -- requests a server can never serve: 400, never a retried 5xx ---------------------------------


@pytest.mark.parametrize(("server", "scenario", "extra", "words"), [
    ("vllm", "vllm_auto_tool_choice_400", {"tools": [TOOL]}, "--enable-auto-tool-choice"),
    ("ollama", "ollama_tools_unsupported_400", {"tools": [TOOL]}, "does not support tools"),
    ("ollama", "ollama_thinking_unsupported_400", {"thinking": {"type": "enabled", "budget_tokens": 1024}},
     "does not support thinking"),
], ids=["vllm-tools-without-parser", "ollama-tools", "ollama-thinking"])
async def test_a_request_the_server_cannot_serve_is_a_400_with_its_words(backends: None, server: str,
                                                                         scenario: str, extra: dict[str, Any],
                                                                         words: str) -> None:
    status, error = await error_of(ask(server, scenario, **extra))

    assert (status, error["type"]) == (400, "invalid_request_error")
    assert words in error["message"]


async def test_an_image_to_a_text_only_vllm_model_is_a_400_with_its_words(backends: None) -> None:
    body = {"model": "vllm-model", "max_tokens": 200, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "[[mock:vllm_not_multimodal_400]] What is this?"}, IMAGE]}]}

    status, error = await error_of(body)

    assert (status, error["type"]) == (400, "invalid_request_error")
    assert "is not a multimodal model" in error["message"]
