"""The mock backend's OpenAI Responses endpoint, ``POST /v1/responses`` (OpenAI Responses API reference).

It answers like OpenAI's Responses API (and, per scenario, like vLLM's), streamed (SSE with
``event:`` lines, ``sequence_number`` on every event, no ``[DONE]``) or not, with the event
order of the real API: ``response.created``, ``response.in_progress``, then per output item
``output_item.added`` … deltas … ``output_item.done``, then ``response.completed`` (or
``.incomplete`` / ``.failed``, or an ``error`` event mid-stream).

It checks requests the way the real API does where the gateway has something to get right:
unknown parameters (``stop``, ``top_k``), a reasoning item without its following item, a
reasoning item replayed without its ``encrypted_content`` under ``store: false`` (404), an
``encrypted_content`` that does not belong to the item id, and a ``function_call_output`` whose
``call_id`` answers no ``function_call``. The scenario comes from the ``x-mock-scenario``
header, a ``[[mock:NAME]]`` directive in the last user message, a ``mock-NAME`` model, else
``text``. No Django here; ``server.py`` frames the bytes.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.mockbackend.native import NativeResponse
from tests.mockbackend.scenarios import DIRECTIVE, tokens_estimate

REPLY = "Hello from the mock Responses backend!"
TOOL_CALL_ID = "call_mockResponses0001"
TOOL_INPUT = {"command": "echo hello", "description": "Print a greeting"}
REASONING_SUMMARY = ("The user wants a short answer.", "Let me run a tool to be sure.")
RAW_REASONING = "Okay, the user asks something simple; I answer directly."
REFUSAL = "I'm sorry, but I can't help with that."
STOP_TEXT = "Counting: 1 2 3 STOP 4 5 6"
ENCRYPTED_PREFIX = "gAAAAB"
_UNSUPPORTED = ("stop", "top_k", "stop_sequences", "max_tokens", "messages", "system")
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Item:
    """One scripted output item."""

    kind: str  # "reasoning" | "message" | "refusal" | "function_call"
    text: str = ""  # message / refusal text
    summary: tuple[str, ...] = ()  # reasoning summary parts (OpenAI)
    raw: str = ""  # raw reasoning text (vLLM: content reasoning_text, no summary, no encryption)
    call_id: str = TOOL_CALL_ID
    name: str = "Bash"
    arguments: str = ""
    # Where the arguments travel: "deltas" (OpenAI), "vllm" (first fragment in output_item.added),
    # "added" (all of them in output_item.added), "done_only" (only in function_call_arguments.done).
    args_mode: str = "deltas"


@dataclass(frozen=True, slots=True)
class Reply:
    items: tuple[Item, ...] = ()
    status: str = "completed"  # completed | incomplete | failed
    incomplete_reason: str | None = None
    error: tuple[str, str] | None = None  # (code, message) of a failed response
    # Streams: after this many events, an ``error`` event ends the stream. Not streamed: HTTP 500.
    stream_error_after: int | None = None


Scenario = Callable[[dict[str, Any]], Reply]
RESPONSES_SCENARIOS: dict[str, Scenario] = {}


def responses_scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        RESPONSES_SCENARIOS[name] = function
        return function

    return register


def openai_error_body(message: str, *, type: str = "invalid_request_error", code: Any = None,
                      param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


# -- reading the request ----------------------------------------------------------------------


def _input(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("input")
    if isinstance(items, str):
        return [{"type": "message", "role": "user", "content": items}]
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or () if isinstance(p, dict)
                   and p.get("type") in ("input_text", "output_text") and isinstance(p.get("text"), str))


def _last_user_text(body: dict[str, Any]) -> str:
    for item in reversed(_input(body)):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            return _content_text(item.get("content"))
    return ""


def _tool_output(body: dict[str, Any]) -> str | None:
    """The output of a function_call_output that ends the input (a tool turn to answer)."""
    items = _input(body)
    if items and items[-1].get("type") == "function_call_output":
        output = items[-1].get("output")
        return output if isinstance(output, str) else _content_text(output)
    return None


def _tool_name(body: dict[str, Any]) -> str:
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("name"), str):
            return str(tool["name"])
    return "Bash"


def encrypted_for(item_id: str) -> str:
    """The opaque ``encrypted_content`` of a reasoning item (bound to its id, like the real one)."""
    return ENCRYPTED_PREFIX + base64.urlsafe_b64encode(f"mock-reasoning:{item_id}".encode()).decode()


def _encrypted_owner(encrypted: str) -> str | None:
    if not encrypted.startswith(ENCRYPTED_PREFIX):
        return None
    try:
        decoded = base64.urlsafe_b64decode(encrypted[len(ENCRYPTED_PREFIX):]).decode()
    except (binascii.Error, ValueError):
        return None
    return decoded.removeprefix("mock-reasoning:") if decoded.startswith("mock-reasoning:") else None


def request_check(body: dict[str, Any]) -> tuple[int, str] | None:
    """The real API's error (status, message) for what this request gets wrong, or None."""
    if not isinstance(body.get("model"), str):
        return 400, "Missing required parameter: 'model'."
    for name in _UNSUPPORTED:
        if name in body:
            return 400, f"Unsupported parameter: '{name}'."
    items = _input(body)
    calls = set()
    for n, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "reasoning":
            item_id = item.get("id")
            following = items[n + 1].get("type", "message") if n + 1 < len(items) else None
            if following not in ("message", "function_call"):
                return 400, f"Item '{item_id}' of type 'reasoning' was provided without its required following item."
            encrypted = item.get("encrypted_content")
            if isinstance(item_id, str) and item_id.startswith("rs_"):
                if isinstance(encrypted, str):
                    if _encrypted_owner(encrypted) != item_id:
                        return 400, f"The encrypted content for item {item_id} could not be verified."
                elif body.get("store") is False:
                    return 404, (f"Item with id '{item_id}' not found. Items are not persisted when `store` is set "
                                 "to false. Try again with `store` set to true or remove this item from your input.")
            if not isinstance(item.get("summary"), list):
                return 400, f"Missing required parameter: 'input[{n}].summary'."
        elif kind == "function_call":
            calls.add(item.get("call_id"))
        elif kind == "function_call_output" and item.get("call_id") not in calls:
            return 400, f"No tool call found for function call output with call_id {item.get('call_id')}."
        elif kind == "message" and item.get("role") == "assistant":
            content = item.get("content")
            for part in content if isinstance(content, list) else ():
                if isinstance(part, dict) and part.get("type") not in ("output_text", "refusal"):
                    return 400, (f"Invalid value: '{part.get('type')}'. Supported values are: 'output_text' and "
                                 "'refusal'.")
    return None


# -- scenarios --------------------------------------------------------------------------------


def _tool_reply(body: dict[str, Any], args_mode: str, reasoning: bool = False) -> Reply:
    output = _tool_output(body)
    if output is not None:
        items = (Item("reasoning", summary=("The tool ran.",)),) if reasoning else ()
        received = [f"{i.get('id')}:{'enc' if i.get('encrypted_content') else 'plain'}"
                    for i in _input(body) if i.get("type") == "reasoning"]
        seen = f" Reasoning items received: {', '.join(received) or 'none'}." if reasoning else ""
        return Reply((*items, Item("message", text=f"The tool returned: {output[:200]}.{seen}")))
    call = Item("function_call", name=_tool_name(body), arguments=orjson.dumps(TOOL_INPUT).decode(),
                args_mode=args_mode)
    lead = (Item("reasoning", summary=REASONING_SUMMARY),) if reasoning else (Item("message", text="I'll run a tool."),)
    return Reply((*lead, call))


@responses_scenario("text")
def text(body: dict[str, Any]) -> Reply:
    """Greets and quotes the last user message (or the tool output that ends the input)."""
    output = _tool_output(body)
    if output is not None:
        return Reply((Item("message", text=f"The tool returned: {output[:200]}"),))
    said = DIRECTIVE.sub("", _last_user_text(body)).strip()[:200]
    return Reply((Item("message", text=f'{REPLY} You said: "{said}".'),))


@responses_scenario("bench")
def bench(body: dict[str, Any]) -> Reply:
    """The chat scenario ``bench`` for a client that asks for the Responses API (LiteLLM does
    when a Claude Code request has ``thinking``): ``events`` x " tok" (the directive's), one message."""
    found = DIRECTIVE.search(_last_user_text(body))
    args = dict(pair.split("=", 1) for pair in found.group(2).split()) if found else {}
    events = int(float(args.get("events", 20)))
    return Reply((Item("message", text=" tok" * events),))


@responses_scenario("tool_call")
def tool_call(body: dict[str, Any]) -> Reply:
    """Text and a function call whose arguments stream in deltas; after the output, text quoting it."""
    return _tool_reply(body, "deltas")


@responses_scenario("tool_call_done_only")
def tool_call_done_only(body: dict[str, Any]) -> Reply:
    """Like tool_call, but the arguments arrive only in function_call_arguments.done."""
    return _tool_reply(body, "done_only")


@responses_scenario("tool_call_in_added")
def tool_call_in_added(body: dict[str, Any]) -> Reply:
    """Like tool_call, but all the arguments arrive in output_item.added (no deltas)."""
    return _tool_reply(body, "added")


@responses_scenario("tool_call_vllm")
def tool_call_vllm(body: dict[str, Any]) -> Reply:
    """Like tool_call, but the first argument fragment is in output_item.added (vLLM)."""
    return _tool_reply(body, "vllm")


@responses_scenario("reasoning")
def reasoning(body: dict[str, Any]) -> Reply:
    """A reasoning item (two summary parts, encrypted_content), then a text answer."""
    return Reply((Item("reasoning", summary=REASONING_SUMMARY), Item("message", text="The answer is 42.")))


@responses_scenario("reasoning_tool")
def reasoning_tool(body: dict[str, Any]) -> Reply:
    """Reasoning then a function call; after the output, reasoning then text naming the reasoning
    items it received (``rs_…:enc`` when replayed with encrypted_content)."""
    return _tool_reply(body, "deltas", reasoning=True)


@responses_scenario("reasoning_raw")
def reasoning_raw(body: dict[str, Any]) -> Reply:
    """vLLM-style raw reasoning (content reasoning_text, response.reasoning_text.delta), then text."""
    return Reply((Item("reasoning", raw=RAW_REASONING), Item("message", text="The answer is 42.")))


@responses_scenario("refusal")
def refusal(body: dict[str, Any]) -> Reply:
    """A message whose content is a refusal part."""
    return Reply((Item("refusal", text=REFUSAL),))


@responses_scenario("incomplete")
def incomplete(body: dict[str, Any]) -> Reply:
    """Text cut by max_output_tokens: status incomplete."""
    return Reply((Item("message", text="This answer is cut short because"),), status="incomplete",
                 incomplete_reason="max_output_tokens")


@responses_scenario("failed")
def failed(body: dict[str, Any]) -> Reply:
    """Streamed: some text, then response.failed (server_error). Not streamed: status failed."""
    return Reply((Item("message", text="Partial answer"),), status="failed",
                 error=("server_error", "The model failed to generate a response (mock)."))


@responses_scenario("error_mid_stream")
def error_mid_stream(body: dict[str, Any]) -> Reply:
    """Streamed: a text delta, then an ``error`` event. Not streamed: HTTP 500."""
    return Reply((Item("message", text="Partial answer that never finishes"),), stream_error_after=6)


@responses_scenario("stop_text")
def stop_text(body: dict[str, Any]) -> Reply:
    """Text with STOP in the middle (for the gateway's stop-sequence emulation)."""
    return Reply((Item("message", text=STOP_TEXT),))


@responses_scenario("echo")
def echo(body: dict[str, Any]) -> Reply:
    """The reply text is the compact JSON of the request body received."""
    return Reply((Item("message", text=orjson.dumps(body).decode()),))


# -- rendering --------------------------------------------------------------------------------


@dataclass
class _Rendered:
    items: list[dict[str, Any]] = field(default_factory=list)
    reasoning_text: str = ""
    output_text: str = ""


def _pieces(text: str, size: int = 7) -> list[str]:
    return [text[i: i + size] for i in range(0, len(text), size)]


def _item_render(item: Item, n: int) -> dict[str, Any]:
    if item.kind == "reasoning":
        rid = f"rs_mock{n:012x}"
        if item.raw:
            return {"id": rid, "type": "reasoning", "summary": [], "status": "completed",
                    "content": [{"type": "reasoning_text", "text": item.raw}]}
        return {"id": rid, "type": "reasoning", "summary": [{"type": "summary_text", "text": s} for s in item.summary],
                "encrypted_content": encrypted_for(rid)}
    if item.kind == "function_call":
        return {"id": f"fc_mock{n:012x}", "type": "function_call", "status": "completed", "call_id": item.call_id,
                "name": item.name, "arguments": item.arguments}
    part = ({"type": "refusal", "refusal": item.text} if item.kind == "refusal"
            else {"type": "output_text", "text": item.text, "annotations": [], "logprobs": []})
    return {"id": f"msg_mock{n:012x}", "type": "message", "status": "completed", "role": "assistant",
            "content": [part]}


def _usage(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt = tokens_estimate(orjson.dumps(body.get("input")).decode() + str(body.get("instructions") or ""))
    reasoning = "".join("".join(i.summary) + i.raw for i in reply.items)
    output = "".join(i.text + i.arguments for i in reply.items)
    reasoning_tokens = tokens_estimate(reasoning) if reasoning else 0
    output_tokens = (tokens_estimate(output) if output else 0) + reasoning_tokens
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": prompt // 2},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": prompt + output_tokens}


def response_render(body: dict[str, Any], reply: Reply, *, id: str, items: list[dict[str, Any]],
                    status: str) -> dict[str, Any]:
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
    done = status != "in_progress"
    return {
        "id": id, "object": "response", "created_at": int(time.time()), "status": status,
        "error": {"code": reply.error[0], "message": reply.error[1]} if status == "failed" and reply.error else None,
        "incomplete_details": {"reason": reply.incomplete_reason} if status == "incomplete" else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"], "output": items, "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "reasoning": reasoning or {"effort": None, "summary": None}, "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0), "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [], "top_p": body.get("top_p", 1.0),
        "usage": _usage(body, reply) if done else None,
    }


def _item_events(item: Item, rendered: dict[str, Any], index: int) -> Iterator[dict[str, Any]]:
    """One output item as the real API streams it (OAI ``response_stream_event.py``; vLLM
    ``simple_streaming_events.py`` for raw reasoning and the first argument fragment)."""
    rid = rendered["id"]
    base = {"item_id": rid, "output_index": index}
    if item.kind == "reasoning":
        yield {"type": "response.output_item.added", "output_index": index,
               "item": {"id": rid, "type": "reasoning", "summary": [], "status": "in_progress"} if item.raw
               else {"id": rid, "type": "reasoning", "summary": []}}
        if item.raw:
            yield {"type": "response.content_part.added", **base, "content_index": 0,
                   "part": {"type": "reasoning_text", "text": ""}}
            for piece in _pieces(item.raw):
                yield {"type": "response.reasoning_text.delta", **base, "content_index": 0, "delta": piece}
            yield {"type": "response.reasoning_text.done", **base, "content_index": 0, "text": item.raw}
            yield {"type": "response.content_part.done", **base, "content_index": 0,
                   "part": {"type": "reasoning_text", "text": item.raw}}
        for k, summary in enumerate(item.summary):
            part = {"type": "summary_text", "text": ""}
            yield {"type": "response.reasoning_summary_part.added", **base, "summary_index": k, "part": part}
            for piece in _pieces(summary):
                yield {"type": "response.reasoning_summary_text.delta", **base, "summary_index": k, "delta": piece}
            yield {"type": "response.reasoning_summary_text.done", **base, "summary_index": k, "text": summary}
            yield {"type": "response.reasoning_summary_part.done", **base, "summary_index": k,
                   "part": {"type": "summary_text", "text": summary}}
    elif item.kind == "function_call":
        args = item.arguments
        seed = {"vllm": args[:5], "added": args}.get(item.args_mode, "")
        rest = args[len(seed):] if item.args_mode in ("deltas", "vllm") else ""
        yield {"type": "response.output_item.added", "output_index": index,
               "item": {**rendered, "status": "in_progress", "arguments": seed}}
        for piece in _pieces(rest):
            yield {"type": "response.function_call_arguments.delta", **base, "delta": piece}
        if item.args_mode != "added":
            yield {"type": "response.function_call_arguments.done", **base, "arguments": args, "name": item.name}
    else:
        refusal = item.kind == "refusal"
        empty = {"type": "refusal", "refusal": ""} if refusal else {
            "type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield {"type": "response.output_item.added", "output_index": index,
               "item": {**rendered, "status": "in_progress", "content": []}}
        yield {"type": "response.content_part.added", **base, "content_index": 0, "part": empty}
        for piece in _pieces(item.text):
            if refusal:
                yield {"type": "response.refusal.delta", **base, "content_index": 0, "delta": piece}
            else:
                yield {"type": "response.output_text.delta", **base, "content_index": 0, "delta": piece,
                       "logprobs": []}
        if refusal:
            yield {"type": "response.refusal.done", **base, "content_index": 0, "refusal": item.text}
        else:
            yield {"type": "response.output_text.done", **base, "content_index": 0, "text": item.text,
                   "logprobs": []}
        yield {"type": "response.content_part.done", **base, "content_index": 0, "part": rendered["content"][0]}
    yield {"type": "response.output_item.done", "output_index": index, "item": rendered}


def events_render(body: dict[str, Any], reply: Reply, *, id: str) -> list[dict[str, Any]]:
    rendered = [_item_render(item, next(_ids)) for item in reply.items]
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_render(body, reply, id=id, items=[], status="in_progress")},
        {"type": "response.in_progress", "response": response_render(body, reply, id=id, items=[],
                                                                      status="in_progress")},
    ]
    for index, (item, out) in enumerate(zip(reply.items, rendered, strict=True)):
        events.extend(_item_events(item, out, index))
    final = response_render(body, reply, id=id, items=rendered, status=reply.status)
    events.append({"type": f"response.{reply.status}", "response": final})
    if reply.stream_error_after is not None:
        events = events[: reply.stream_error_after]
        events.append({"type": "error", "code": "server_error", "param": None,
                       "message": "The server had an error while processing your request (mock)."})
    elif reply.status == "failed":
        # A failed response streams what it produced so far, then response.failed.
        events = [e for e in events if not e["type"].endswith(".done") and e["type"] != "response.failed"]
        events.append({"type": "response.failed", "response": {**final, "output": []}})
    for n, event in enumerate(events):
        event["sequence_number"] = n
    return events


def sse_frame(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def responses_scenario_select(body: dict[str, Any], headers: Mapping[str, str]) -> str:
    if name := headers.get("x-mock-scenario", ""):
        return name
    found = DIRECTIVE.search(_last_user_text(body))
    if found:
        return found.group(1)
    model = body.get("model")
    if isinstance(model, str) and model.startswith("mock-") and model[5:] in RESPONSES_SCENARIOS:
        return model[5:]
    return "text"


def responses_respond(body: Any, headers: Mapping[str, str]) -> NativeResponse:
    """The whole answer to one ``POST /v1/responses``."""
    if not isinstance(body, dict):
        return NativeResponse(400, None, openai_error_body("Request body must be a JSON object"))
    name = responses_scenario_select(body, headers)
    if name not in RESPONSES_SCENARIOS:
        message = f"Unknown mock scenario {name!r}; responses scenarios: {', '.join(sorted(RESPONSES_SCENARIOS))}"
        return NativeResponse(400, name, openai_error_body(message))
    if problem := request_check(body):
        status, message = problem
        return NativeResponse(status, name, openai_error_body(message, code="not_found" if status == 404 else None))
    reply = RESPONSES_SCENARIOS[name](body)
    scenario_header = (("x-mock-scenario", name),)
    id = f"resp_mock{next(_ids):016x}"
    if not body.get("stream"):
        if reply.stream_error_after is not None:
            return NativeResponse(500, name, openai_error_body(
                "The server had an error while processing your request (mock).", type="server_error",
                code="server_error"), headers=scenario_header)
        items = [] if reply.status == "failed" else [_item_render(item, next(_ids)) for item in reply.items]
        response = response_render(body, reply, id=id, items=items, status=reply.status)
        return NativeResponse(200, name, orjson.dumps(response), headers=scenario_header)
    events = events_render(body, reply, id=id)
    return NativeResponse(200, name, frames=tuple(sse_frame(e) for e in events), headers=scenario_header)
