"""The estimate of a translated upstream body errs high, within 25% of what real tokenizers count.

``tests/fixtures/tokens/real_counts.json`` holds exact counts of ``requests.json`` recorded from a
real llama-server (SmolLM2's tokenizer, the Qwen2.5 / Llama 3.1 / gpt-oss chat templates) and,
for the same rendered prompts, each template's own model-family tokenizer; ``record.py`` beside
them re-records (the tests never do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.translation.support import caps_make, claude_code_body, request_make
from translation.anthropic import build_request as anthropic_build
from translation.openai_chat import build_request as chat_build
from translation.openai_responses import build_request as responses_build
from translation.schemas import MessagesRequest
from translation.tokens import (
    IMAGE_TOKENS,
    TEMPLATE_BASE,
    TEMPLATE_PER_MESSAGE,
    TEMPLATE_PER_TOOL,
    TEMPLATE_PER_TOOL_CALL,
    TEMPLATE_PER_TOOL_RESULT,
    TEMPLATE_TOOLS,
    tokens_estimate_body,
    tokens_floor_body,
)

TOKENS = Path(__file__).resolve().parents[1] / "fixtures" / "tokens"
CASES: list[dict[str, Any]] = json.loads((TOKENS / "requests.json").read_text())
REAL: dict[str, Any] = json.loads((TOKENS / "real_counts.json").read_text())["templates"]
# Claude Code-sized: the captures, filler or realistic text, not the two small hand-written ones.
CLAUDE_CODE = [case for case in CASES if case["name"].startswith("cc") and case["name"] != "cc15-filler"]


def chat_body(case: dict[str, Any]) -> dict[str, Any]:
    """The Chat Completions body the counts were recorded for (record.py translates the same way)."""
    if "chat" in case:
        body: dict[str, Any] = case["chat"]
        return body
    req = MessagesRequest.model_validate({"max_tokens": 1, **claude_code_body(case["claude_code"])})
    return chat_build(req, caps_make("vllm"), upstream_model="m")[0]


@pytest.mark.parametrize("case", CLAUDE_CODE, ids=lambda case: case["name"])
@pytest.mark.parametrize("template", ["Qwen-Qwen2.5-7B-Instruct", "meta-llama-Llama-3.1-8B-Instruct"])
def test_claude_code_requests_are_estimated_high_but_within_25_percent(case: dict[str, Any], template: str) -> None:
    real = REAL[template]["counts"][case["name"]]
    estimate = tokens_estimate_body(chat_body(case), kind="openai_chat")
    # SmolLM2's 49k vocabulary needs 5-15% more tokens than the model families' own (128k-151k):
    # the estimate sits at or above the larger vocabularies and at most 5% under the small one.
    assert estimate >= real["family"]
    assert estimate >= 0.95 * real["smollm2"]
    assert estimate <= 1.25 * real["family"]


@pytest.mark.parametrize("case", CLAUDE_CODE, ids=lambda case: case["name"])
def test_gpt_oss_harmony_prompts_are_overestimated_never_under(case: dict[str, Any]) -> None:
    # Harmony renders tool schemas as TypeScript, far denser than the JSON the estimate assumes.
    real = REAL["openai-gpt-oss-120b"]["counts"][case["name"]]
    assert tokens_estimate_body(chat_body(case), kind="openai_chat") >= real["family"]


def test_the_three_body_kinds_of_one_request_are_estimated_alike() -> None:
    req = MessagesRequest.model_validate(claude_code_body("18"))
    estimates = [
        tokens_estimate_body(chat_build(req, caps_make("vllm"), upstream_model="m")[0], kind="openai_chat"),
        tokens_estimate_body(responses_build(req, caps_make("generic"), upstream_model="m")[0],
                             kind="openai_responses"),
        tokens_estimate_body(anthropic_build(req, caps_make("anthropic"), upstream_model="m")[0], kind="anthropic"),
    ]
    assert max(estimates) <= 1.03 * min(estimates)


def test_a_real_tokenizer_counts_every_text_and_only_the_template_is_estimated() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "SYSTEM"},
            {"role": "user", "content": [{"type": "text", "text": "QUESTION"}]},
            {"role": "assistant", "content": None, "reasoning_content": "REASONING",
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "Bash", "arguments": "ARGS"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "RESULT"},
        ],
        "tools": [{"type": "function", "function": {"name": "Bash", "description": "DESCRIPTION",
                                                    "parameters": {"type": "object"}}}],
    }
    seen: list[str] = []

    def counter(text: str) -> int:
        seen.append(text)
        return 0

    overhead = (TEMPLATE_BASE + 4 * TEMPLATE_PER_MESSAGE + TEMPLATE_PER_TOOL_CALL + TEMPLATE_PER_TOOL_RESULT
                + TEMPLATE_TOOLS + TEMPLATE_PER_TOOL)
    assert tokens_estimate_body(body, kind="openai_chat", counter=counter) == overhead
    (text,) = seen
    for part in ("SYSTEM", "QUESTION", "REASONING", "Bash", "ARGS", "RESULT", "DESCRIPTION", '"type": "object"'):
        assert part in text


def test_an_image_costs_its_fixed_tokens_not_its_base64() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 1_000_000}}
    body = {"model": "m", "messages": [{"role": "user", "content": [image, {"type": "text", "text": "what is it?"}]}]}
    assert IMAGE_TOKENS < tokens_estimate_body(body, kind="openai_chat") < IMAGE_TOKENS + 100


def test_the_translation_s_own_text_is_counted() -> None:
    # A trailing assistant message reaches this backend as an instruction in the system text.
    req = request_make([{"role": "user", "content": "Write a haiku"},
                        {"role": "assistant", "content": "Autumn moonlight"}])
    plain, _ = chat_build(req, caps_make("generic"), upstream_model="m")
    rewritten, _ = chat_build(req, caps_make("generic", prefill="rewrite"), upstream_model="m")
    assert tokens_estimate_body(rewritten, kind="openai_chat") > tokens_estimate_body(plain, kind="openai_chat") + 10


def test_the_floor_is_one_token_per_message_and_per_ten_bytes_of_text() -> None:
    assert tokens_floor_body({"model": "m", "messages": []}, kind="openai_chat") == 0
    assert tokens_floor_body({"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                             kind="openai_chat") == 1
    (case,) = [case for case in CASES if case["name"] == "cc16-filler"]  # 9 tools, 55 kB
    big = chat_body(case)
    real = min(counts["counts"][case["name"]]["family"] for counts in REAL.values())
    assert real // 4 < tokens_floor_body(big, kind="openai_chat") < real // 2


def test_an_unknown_body_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown body kind"):
        tokens_estimate_body({}, kind="openai_completions")


@given(st.text(alphabet=st.sampled_from("abcXYZ 019\n\t,.{}\"é中😀ß\u0301\x00\x7f"), max_size=300))
def test_text_tokens_is_the_weighted_count_of_every_byte_class(text: str) -> None:
    """The fast count (letters by difference, multi-byte classes on the non-ASCII bytes alone)
    equals the definition: each byte's class weight, summed."""
    from translation.tokens import _CLASSES, _WEIGHTS, MARGIN, text_tokens

    data = text.encode()
    classes = data.translate(_CLASSES)
    expected = MARGIN * sum(_WEIGHTS.get(cls, 0.0) for cls in classes)
    assert text_tokens(data) == pytest.approx(expected, abs=1e-9)
