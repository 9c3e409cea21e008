"""Backend error answers that are really the client's request: what Anthropic answers instead.

Servers answer some requests that can never succeed with a 500 (llama.cpp: "image input is not
supported", "tools param requires --jinja flag"), and every server words a context overflow its
own way. Relayed as they are, a 500 makes the SDKs retry three times and Claude Code eleven times
over two minutes, and a context overflow that does not read like Anthropic's keeps Claude Code
from compacting. So these answers become what Anthropic says for the same request:

- the prompt alone does not fit: 400 ``prompt is too long: N tokens > M maximum`` (the wording
  Claude Code compacts on);
- prompt plus ``max_tokens`` do not fit: 400 ``input length and `max_tokens` exceed context limit:
  N + K > M, decrease input length or `max_tokens` and try again`` (Claude Code lowers max_tokens);
- a request the server can never serve: 400 ``invalid_request_error`` with the server's words.

Each pattern names the server code that words it, at the version read.
"""

from __future__ import annotations

import re

from translation.errors import ApiError

# The prompt alone is longer than the context: (prompt tokens, context) groups.
_PROMPT_TOO_LONG: tuple[tuple[re.Pattern[str], tuple[int, int]], ...] = (
    # llama.cpp tools/server/server-context.cpp (llama-cpp-python 0.3.36): ERROR_TYPE_EXCEED_CONTEXT_SIZE.
    (re.compile(r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)"), (1, 2)),
    # SGLang python/sglang/srt/managers/tokenizer_manager.py (_validate_one_request).
    (re.compile(r"input \((\d+) tokens\) is longer than the model's context length \((\d+) tokens\)"), (1, 2)),
    # vLLM v0.34.0 vllm/renderers/params.py: "... maximum context length is M tokens. However,
    # your prompt contains [at least] N input tokens, which exceeds this limit ...".
    (re.compile(r"maximum (?:context|input) length is (\d+) tokens\. However, your (?:request|prompt) "
                r"(?:has|contains)(?: at least)? (\d+) (?:input )?tokens"), (2, 1)),
)

# The prompt does not fit and the server gives no numbers: the message alone.
_PROMPT_TOO_LONG_WORDS = (
    # Ollama v0.33.0-rc2 llm/llama_server.go.
    "the prompt is longer than the context length",
)

# Prompt plus the requested output exceed the context: (prompt, output, context) groups.
_INPUT_PLUS_OUTPUT: tuple[tuple[re.Pattern[str], tuple[int, int, int]], ...] = (
    # vLLM serving_engine.py: "This model's maximum context length is M tokens. However, you
    # requested N tokens (P in the messages, K in the completion)."
    (re.compile(r"maximum context length is (\d+) tokens\. However, you requested \d+ tokens "
                r"\((\d+) in the messages, (\d+) in the completion\)"), (2, 3, 1)),
    # SGLang v0.5.23 python/sglang/srt/managers/tokenizer_manager.py (_validate_one_request).
    (re.compile(r"maximum context length of (\d+) tokens\. You requested a total of \d+ tokens: (\d+) tokens "
                r"from the input messages and (\d+) tokens for the completion"), (2, 3, 1)),
)

# A request this server can never serve, whatever the status it answered with.
_UNSERVABLE = (
    # llama.cpp tools/server/server-common.cpp (llama-cpp-python 0.3.36), answered as 500.
    "image input is not supported",
    "audio input is not supported",
    "tools param requires --jinja flag",
    "tool_choice param requires --jinja flag",
    "Cannot use custom grammar constraints with tools",
    "Cannot have 2 or more assistant messages at the end of the list",
    "Assistant response prefill is incompatible with enable_thinking",
)


def backend_error_reclassify(message: str) -> ApiError | None:
    """Anthropic's answer for a backend error text that is the client's request, else None."""
    for pattern, (prompt, window) in _PROMPT_TOO_LONG:
        found = pattern.search(message)
        if found:
            return ApiError(400, f"prompt is too long: {found.group(prompt)} tokens > {found.group(window)} "
                                 "maximum", source="client")
    for pattern, (prompt, output, window) in _INPUT_PLUS_OUTPUT:
        found = pattern.search(message)
        if found:
            return ApiError(400, f"input length and `max_tokens` exceed context limit: {found.group(prompt)} + "
                                 f"{found.group(output)} > {found.group(window)}, decrease input length or "
                                 "`max_tokens` and try again", source="client")
    lowered = message.lower()
    if any(words in lowered for words in _PROMPT_TOO_LONG_WORDS):
        return ApiError(400, f"prompt is too long: {message}", source="client")
    for phrase in _UNSERVABLE:
        if phrase.lower() in lowered:
            return ApiError(400, message, source="client")
    return None
