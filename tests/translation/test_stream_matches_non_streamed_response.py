"""Any chunking of a completion streams to the same message as its non-streamed form (property-based, hypothesis).

Hypothesis draws a completion (reasoning, text, tool calls with arbitrary JSON-object arguments,
usage, finish reason), renders it once as a ``chat.completion`` body and once as stream chunks
split at arbitrary points, with the quirks real backends add (vLLM's doubled reasoning fields,
``tool_calls: []`` on text chunks, id and name in separate chunks, indices from 1, usage inline
or in a ``choices: []`` chunk). The stream must be grammatical and fold, in the real Anthropic
SDK accumulator, to exactly what ``translate_response`` makes of the body.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.translation.support import caps_make, request_make, sdk_accumulate, stream_run
from translation.openai_chat import translate_response
from translation.validate import stream_validate

PREFILL = "The answer is"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
tool_calls = st.lists(st.fixed_dictionaries({
    "id": st.sampled_from(["call_1", "functions.Bash:0", "", None, "toolu_abc"]),
    "name": st.sampled_from(["Bash", "Read", "mcp__fs__write_file"]),
    "arguments": st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    "indent": st.sampled_from([None, None, 2]),
    "lead": st.sampled_from(["", "", " ", "\n"]),
    "split_id_name": st.booleans(),
}), max_size=3)


def _split(draw: Any, text: str) -> list[str]:
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=5)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@st.composite
def completions(draw: Any) -> dict[str, Any]:
    calls = draw(tool_calls)
    for call in calls:
        args = call["arguments"]
        call["rendered"] = call["lead"] + json.dumps(args, indent=call["indent"]) if (args or draw(st.booleans())) else ""
    prefilled = draw(st.booleans())
    text = draw(st.one_of(st.none(), st.text(min_size=1, max_size=30)))
    if prefilled and text is not None and draw(st.booleans()):
        text = PREFILL + text  # the backend repeats the rewritten prefill
    return {
        "reasoning": draw(st.one_of(st.none(), st.text(min_size=1, max_size=30))),
        "text": text,
        "calls": calls,
        "prefilled": prefilled,
        "finish": draw(st.sampled_from(["stop", "stop", "tool_calls", "length", "content_filter"])),
        "matched_stop": draw(st.sampled_from([None, "END", 151645])),
        "usage": {"prompt_tokens": draw(st.integers(0, 10_000)), "completion_tokens": draw(st.integers(0, 5_000)),
                  "prompt_tokens_details": {"cached_tokens": draw(st.integers(0, 12_000))}},
        "usage_inline": draw(st.booleans()),
        "first_index": draw(st.sampled_from([0, 0, 1])),
        "vllm_double_reasoning": draw(st.booleans()),
        "empty_tool_calls_on_text": draw(st.booleans()),
    }


def body_render(c: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": c["text"]}
    if c["reasoning"] is not None:
        message["reasoning_content"] = c["reasoning"]
    if c["calls"]:
        message["tool_calls"] = [
            {**({"id": k["id"]} if k["id"] is not None else {}), "type": "function",
             "function": {"name": k["name"], "arguments": k["rendered"]}} for k in c["calls"]]
    choice = {"index": 0, "message": message, "finish_reason": c["finish"], "stop_reason": c["matched_stop"]}
    return {"object": "chat.completion", "choices": [choice], "usage": c["usage"]}


def chunks_render(c: dict[str, Any], draw: Any) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    for piece in _split(draw, c["reasoning"] or ""):
        delta: dict[str, Any] = {"reasoning_content": piece}
        if c["vllm_double_reasoning"]:
            delta["reasoning"] = piece
        deltas.append(delta)
    for piece in _split(draw, c["text"] or ""):
        deltas.append({"content": piece, **({"tool_calls": []} if c["empty_tool_calls_on_text"] else {})})
    for n, call in enumerate(c["calls"]):
        index = c["first_index"] + n
        head: dict[str, Any] = {"index": index, "type": "function"}
        if call["id"] is not None:
            head["id"] = call["id"]
        pieces = _split(draw, call["rendered"])
        if call["split_id_name"]:
            deltas.append({"tool_calls": [head]})
            deltas.append({"tool_calls": [{"index": index, "function": {"name": call["name"], "arguments": pieces[0]}}]})
        else:
            deltas.append({"tool_calls": [{**head, "function": {"name": call["name"], "arguments": pieces[0]}}]})
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": p}}]} for p in pieces[1:]]
    chunks = [{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": None}],
               "usage": None} for d in deltas]
    final: dict[str, Any] = {"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {}, "finish_reason": c["finish"], "stop_reason": c["matched_stop"]}]}
    if c["usage_inline"]:
        chunks.append({**final, "usage": c["usage"]})
    else:
        chunks += [final, {"object": "chat.completion.chunk", "choices": [], "usage": c["usage"]}]
    return chunks


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completion=completions(), data=st.data())
def test_any_chunking_streams_to_the_message_translate_response_builds(completion: dict[str, Any],
                                                                       data: st.DataObject) -> None:
    if completion["prefilled"]:
        request = request_make([{"role": "user", "content": "q"}, {"role": "assistant", "content": PREFILL}],
                               stop_sequences=["END"])
        caps = caps_make("openai")  # prefill=rewrite: a repeated prefix is stripped on both paths
    else:
        request, caps = request_make(stop_sequences=["END"]), caps_make("vllm")
    expected, _ = translate_response(body_render(completion), caps, request=request, message_id="msg_prop")
    events, translator = stream_run(chunks_render(completion, data.draw), caps=caps, request=request, message_id="msg_prop")

    assert stream_validate(events) is None
    accumulated = sdk_accumulate(events)
    for key in ("id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"):
        assert accumulated[key] == expected[key], key
    assert translator.message == expected
