"""Scenarios that copy one behaviour each of vLLM, SGLang and Ollama, as their serving code emits it.

The servers cannot run in the suite, so their code was read instead (docs/backends.md has the
table); every scenario names the file, function and version it copies. Versions read:

- vLLM v0.34.0 (the PyPI wheel, commit g62d4bc3c7),
- SGLang v0.5.23 (the PyPI wheel),
- Ollama v0.33.0-rc2 (ollama/ollama commit fb30760996871fa9460115c753afd2c60d4ab0f7).

Every reply scenario writes QUIRK_TEXT (``Counting: 1, 2, 3 END and on past the stop.``; QUIRK_STOP is
" END") the way that server would: cut before the earliest of the request's ``stop`` strings, the stop string
left out, and the match reported in that server's field (or not at all). Error scenarios check
what the server checks and answer text when the request passes.

Registered into ``SCENARIOS`` by importing this module (``scenarios.py`` does, at its end).
"""

from __future__ import annotations

from typing import Any

import orjson

from tests.mockbackend.scenarios import (
    MAX_MODEL_LEN,
    Completion,
    Delta,
    HttpError,
    MockRequest,
    Script,
    scenario,
    text_deltas,
)

QUIRK_TEXT = "Counting: 1, 2, 3 END and on past the stop."
QUIRK_STOP = " END"
# A stop token id as SGLang reports it for the model's own end of turn (Qwen's <|im_end|>).
EOS_TOKEN_ID = 151645
CONTINUATION = " world."
FRESH_REPLY = "hello world."


def stops_of(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop if isinstance(s, str) and s] if isinstance(stop, list) else []


def stop_cut(text: str, stops: list[str]) -> tuple[str, str | None]:
    """The text up to (not including) the stop string that completes earliest, ties broken by
    list order, and that string; the whole text and None when none occurs. vLLM
    vllm/v1/engine/detokenizer.py ``check_stop_strings`` (v0.34.0) picks the same one; SGLang
    and Ollama stop at the first match as it is generated, which is the same string."""
    best: tuple[int, int, str] | None = None
    for stop in stops:
        at = text.find(stop)
        if at >= 0 and (best is None or at + len(stop) < best[0]):
            best = (at + len(stop), at, stop)
    if best is None:
        return text, None
    return text[: best[1]], best[2]


def _reply(request: MockRequest, *, stop_field: str, natural_end: str | int | None) -> Script:
    text, matched = stop_cut(QUIRK_TEXT, stops_of(request.body))
    return Script(Completion(text_deltas(text), stop_reason=matched if matched is not None else natural_end,
                             stop_field=stop_field))


def _max_tokens(request: MockRequest) -> int | None:
    limit = request.body.get("max_completion_tokens") or request.body.get("max_tokens")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else None


def _images(request: MockRequest) -> bool:
    for message in request.messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image_url" for p in content):
            return True
    return False


def _error(status: int, body: dict[str, Any]) -> Script:
    return Script(Completion(()), error=HttpError(status, orjson.dumps(body)))


# ---------------------------------------------------------------------------------------------
# vLLM v0.34.0


def vllm_error(message: str, *, param: str | None = None, value: Any = None) -> Script:
    """vllm/entrypoints/serve/exception_handling/error_response.py ``create_error_response``:
    a ``VLLMValidationError`` (or a bare ValueError) is 400 ``BadRequestError``; its text ends in
    `` (parameter=…, value=…)`` (vllm/exceptions.py ``VLLMValidationError.__str__``)."""
    extras = [f"{name}={v}" for name, v in (("parameter", param), ("value", value)) if v is not None]
    text = f"{message} ({', '.join(extras)})" if extras else message
    return _error(400, {"error": {"message": text, "type": "BadRequestError", "param": param, "code": 400}})


@scenario("vllm_stop_reason_string")
def vllm_stop_reason_string(request: MockRequest) -> Script:
    """vLLM: the matched stop string in ``choices[].stop_reason``, left out of the text
    (``include_stop_str_in_output`` defaults to false); ``null`` on an EOS. vllm/v1/engine/
    output_processor.py (stop_reason = stop_string), chat_completion/protocol.py
    ``ChatCompletionResponseChoice.stop_reason`` / ``ChatCompletionResponseStreamChoice``."""
    return _reply(request, stop_field="stop_reason", natural_end=None)


@scenario("vllm_stop_token_id")
def vllm_stop_token_id(request: MockRequest) -> Script:
    """vLLM: a ``stop_token_ids`` hit puts the token id (an int) in ``stop_reason`` with
    finish_reason stop: vllm/v1/core/sched/utils.py ``check_stop``. Not a stop sequence."""
    return Script(Completion(text_deltas(QUIRK_TEXT), stop_reason=EOS_TOKEN_ID))


@scenario("vllm_context_length_exceeded_400")
def vllm_context_length_exceeded_400(request: MockRequest) -> Script:
    """vLLM: a prompt longer than max_model_len is a 400 before anything is generated (streamed
    or not): vllm/renderers/params.py ``TokenizeParams._token_len_check``."""
    n = request.prompt_tokens
    if n <= MAX_MODEL_LEN:
        return _reply(request, stop_field="stop_reason", natural_end=None)
    return vllm_error(
        f"This model's maximum context length is {MAX_MODEL_LEN} tokens. However, your prompt contains "
        f"{n} input tokens, which exceeds this limit even without any output tokens. Please reduce the "
        "length of the input prompt.", param="input_tokens", value=n)


@scenario("vllm_max_tokens_over_max_model_len_400")
def vllm_max_tokens_over_max_model_len_400(request: MockRequest) -> Script:
    """vLLM: max_tokens larger than max_model_len itself is a 400 (vllm/renderers/params.py
    ``TokenizeParams.__post_init__``, names from chat_completion/protocol.py
    ``build_tok_params``); prompt + max_tokens over the context is NOT an error in v0.34.0:
    vllm/entrypoints/serve/utils/api_utils.py ``get_max_tokens`` lowers max_tokens to what the
    prompt leaves, and the reply ends with finish_reason length when that runs out."""
    limit = _max_tokens(request)
    if limit is None:
        return _reply(request, stop_field="stop_reason", natural_end=None)
    field = "max_completion_tokens" if request.body.get("max_completion_tokens") else "max_tokens"
    if limit > MAX_MODEL_LEN:
        return vllm_error(f"{field}={limit} cannot be greater than max_model_len={MAX_MODEL_LEN}. Please "
                          "request fewer output tokens.", param=field, value=limit)
    left = MAX_MODEL_LEN - request.prompt_tokens
    if limit > left:
        return Script(Completion(text_deltas(QUIRK_TEXT), finish_reason="length", completion_tokens=left))
    return _reply(request, stop_field="stop_reason", natural_end=None)


@scenario("vllm_auto_tool_choice_400")
def vllm_auto_tool_choice_400(request: MockRequest) -> Script:
    """vLLM started without --enable-auto-tool-choice / --tool-call-parser: tools with tool_choice
    auto (the default when tools are given) are a 400. vllm/renderers/online_renderer.py
    ``render_chat``."""
    choice = request.body.get("tool_choice", "auto")
    if not request.body.get("tools") or choice == "none":
        return _reply(request, stop_field="stop_reason", natural_end=None)
    if choice == "auto":
        return vllm_error('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set')
    wanted = f'function "{choice["function"]["name"]}"' if isinstance(choice, dict) else f'"{choice}"'
    return vllm_error(f"tool_choice={wanted} requires --tool-call-parser to be set")


@scenario("vllm_not_multimodal_400")
def vllm_not_multimodal_400(request: MockRequest) -> Script:
    """vLLM serving a text-only model: an image part raises ValueError "<model> is not a
    multimodal model" (vllm/multimodal/registry.py ``create_processor``, reached from
    renderers/chat_utils/item_tracker.py), which the fallback handler makes a 400."""
    if not _images(request):
        return _reply(request, stop_field="stop_reason", natural_end=None)
    model = request.body.get("model", "mock")
    return vllm_error(f"{model} is not a multimodal model")


# ---------------------------------------------------------------------------------------------
# SGLang v0.5.23


def sglang_error(message: str, *, type: str = "BadRequestError", status: int = 400) -> Script:
    """sglang/srt/entrypoints/openai/serving_base.py ``create_error_response``: the
    ``ErrorResponse`` fields at the top level, NOT under ``error`` (protocol.py ``ErrorResponse``)."""
    return _error(status, {"object": "error", "message": message, "type": type, "param": None, "code": status})


@scenario("sglang_matched_stop")
def sglang_matched_stop(request: MockRequest) -> Script:
    """SGLang: the matched stop string in ``choices[].matched_stop``, trimmed from the text
    (``no_stop_trim`` defaults to false). sglang/srt/managers/schedule_batch.py
    ``FINISH_MATCHED_STR``; serving_chat.py ``_build_chat_response`` (matched_stop=
    finish_reason["matched"])."""
    return _reply(request, stop_field="matched_stop", natural_end=EOS_TOKEN_ID)


@scenario("sglang_matched_stop_eos_token_id")
def sglang_matched_stop_eos_token_id(request: MockRequest) -> Script:
    """SGLang: every natural end reports the EOS token id (an int) in ``matched_stop``:
    schedule_batch.py ``Req._check_token_based_finish`` -> ``FINISH_MATCHED_TOKEN(matched=token_id)``."""
    return Script(Completion(text_deltas(QUIRK_TEXT), stop_reason=EOS_TOKEN_ID, stop_field="matched_stop"))


@scenario("sglang_context_length_exceeded_400")
def sglang_context_length_exceeded_400(request: MockRequest) -> Script:
    """SGLang sglang/srt/managers/tokenizer_manager.py ``_validate_one_request`` (no
    --allow-auto-truncate): the prompt reaching the context, then prompt + max_new_tokens over
    it, are ValueErrors that serving_chat.py answers as 400 before the stream starts."""
    n = request.prompt_tokens
    if n >= MAX_MODEL_LEN:
        return sglang_error(f"The input ({n} tokens) is longer than the model's context length "
                            f"({MAX_MODEL_LEN} tokens).")
    limit = _max_tokens(request)
    if limit is not None and n + limit > MAX_MODEL_LEN:
        return sglang_error(
            f"Requested token count exceeds the model's maximum context length of {MAX_MODEL_LEN} tokens. "
            f"You requested a total of {n + limit} tokens: {n} tokens from the input messages and {limit} "
            "tokens for the completion. Please reduce the number of tokens in the input messages or the "
            "completion to fit within the limit.")
    return _reply(request, stop_field="matched_stop", natural_end=EOS_TOKEN_ID)


@scenario("sglang_continue_final_message")
def sglang_continue_final_message(request: MockRequest) -> Script:
    """SGLang serving_chat.py ``_handle_last_assistant_message``: with continue_final_message a
    trailing assistant message with string content is removed and its text appended to the prompt
    after the generation prompt, so the reply is the continuation only (no echo; the chat request
    has no ``add_generation_prompt`` field, so it is ignored); without the flag the trailing
    assistant message becomes a user message and the model starts afresh."""
    last = request.messages[-1] if request.messages else None
    if isinstance(last, dict) and last.get("role") == "assistant" and isinstance(last.get("content"), str):
        reply = CONTINUATION if request.body.get("continue_final_message") is True else FRESH_REPLY
        return Script(Completion((Delta(content=reply),), stop_reason=EOS_TOKEN_ID, stop_field="matched_stop"))
    return Script(Completion((Delta(content=FRESH_REPLY),), stop_reason=EOS_TOKEN_ID, stop_field="matched_stop"))


def sglang_tokenize_error(body: dict[str, Any]) -> str | None:
    """SGLang sglang/srt/entrypoints/openai/serving_tokenize.py ``_tokenize_chat_request`` (with
    a Jinja chat template): an explicit add_generation_prompt false together with
    continue_final_message is refused; omitted, messages render as for a chat completion."""
    if body.get("add_generation_prompt") is False and body.get("continue_final_message") is True:
        return "continue_final_message needs add_generation_prompt to open the assistant turn."
    return None


# ---------------------------------------------------------------------------------------------
# Ollama v0.33.0-rc2


def ollama_error(status: int, message: str) -> Script:
    """ollama openai/openai.go ``NewError`` via middleware/openai.go ``BaseWriter.writeError``:
    ``{"error": {"message", "type", "param": null, "code": null}}``."""
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return _error(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})


@scenario("ollama_no_matched_stop")
def ollama_no_matched_stop(request: MockRequest) -> Script:
    """Ollama /v1: the text stops before the stop string, finish_reason "stop", and no field says
    which stop matched, or whether one did: openai/openai.go ``ChunkChoice`` / ``Choice`` have only
    finish_reason, ``FinishChunk`` / ``ToChatCompletion`` fill it from done_reason."""
    return _reply(request, stop_field="", natural_end=None)


@scenario("ollama_prompt_too_long_400")
def ollama_prompt_too_long_400(request: MockRequest) -> Script:
    """Ollama: history that does not fit is dropped from the front first (server/prompt.go
    ``chatPrompt``); a prompt that still does not fit, with context shift off, is a 400:
    llm/llama_server.go ``completionPromptForRequest``."""
    if request.prompt_tokens <= MAX_MODEL_LEN:
        return _reply(request, stop_field="", natural_end=None)
    return ollama_error(400, "the prompt is longer than the context length currently available to the model; "
                             "shorten the prompt, adjust the context length in settings, or use a model with "
                             "a longer context length")


@scenario("ollama_thinking_unsupported_400")
def ollama_thinking_unsupported_400(request: MockRequest) -> Script:
    """Ollama serving a model without the thinking capability: any reasoning_effort but "none"
    turns think on (openai/openai.go ``thinkFromReasoningEffort``) and ChatHandler answers 400
    ``"<model>" does not support thinking`` (server/routes.go ``ChatHandler``)."""
    reasoning = request.body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else request.body.get("reasoning_effort")
    if effort in (None, "", "none"):
        return _reply(request, stop_field="", natural_end=None)
    return ollama_error(400, f'"{request.body.get("model", "mock")}" does not support thinking')


@scenario("ollama_tools_unsupported_400")
def ollama_tools_unsupported_400(request: MockRequest) -> Script:
    """Ollama serving a model without the tools capability: tools are a 400 "<name> does not
    support tools" (server/images.go ``CheckCapabilities``, server/routes.go ``scheduleRunner``
    and ``handleScheduleError``)."""
    if not request.body.get("tools"):
        return _reply(request, stop_field="", natural_end=None)
    name = f"registry.ollama.ai/library/{request.body.get('model', 'mock')}:latest"
    return ollama_error(400, f"{name} does not support tools")


@scenario("ollama_prefill_continued")
def ollama_prefill_continued(request: MockRequest) -> Script:
    """Ollama: a trailing assistant message is continued with no flag (template/template.go
    ``Execute`` cuts the template after the last ``.Response``; ``.Messages`` templates leave the
    last assistant turn open), and the reply holds only the new text (no echo)."""
    reply = CONTINUATION if request.last_role == "assistant" else FRESH_REPLY
    return Script(Completion((Delta(content=reply),), stop_field=""))
