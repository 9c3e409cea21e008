"""What a translator may know about a backend.

``Capabilities`` is the only input besides the request that decides how a request is rewritten:
behaviour is never decided from a model-name substring. Backends start from a *preset* (a row of
``PRESETS``) and override single fields; a route may override further.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

# Every capability that takes one of a fixed set of strings is a ``Literal`` (mypy checks the
# translators' comparisons against it); the tuples below are the same sets for validation and
# the admin's choices, derived so the two can never disagree.
PrefillStrategy = Literal["native", "continue_final_message", "prefix_flag", "rewrite", "reject"]
PrefillThinkingPolicy = Literal["allow", "disable_thinking", "reject"]
SystemMessagePolicy = Literal["hoist", "keep", "reject"]
ReasoningReplayPolicy = Literal["always", "tool_turns", "never"]
ThinkingControl = Literal["none", "enable_thinking", "template_thinking", "reasoning_effort",
                          "thinking_object", "reasoning_object", "native"]
ToolChoiceSupport = Literal["full", "no_required", "auto_only", "omit"]
ForeignThinkingPolicy = Literal["drop", "to_text"]
ImagePolicy = Literal["pass", "placeholder", "reject"]
ReasoningSummary = Literal["none", "auto", "concise", "detailed"]
TokenCountMethod = Literal["estimate", "chat_tokenize", "llamacpp_tokenize", "native"]
StopSequenceSource = Literal["backend", "llamacpp_verbose", "gateway"]
MaxTokensField = Literal["max_tokens", "max_completion_tokens"]

PREFILL_STRATEGIES: tuple[str, ...] = get_args(PrefillStrategy)
PREFILL_THINKING_POLICIES: tuple[str, ...] = get_args(PrefillThinkingPolicy)
SYSTEM_MESSAGE_POLICIES: tuple[str, ...] = get_args(SystemMessagePolicy)
REASONING_REPLAY_POLICIES: tuple[str, ...] = get_args(ReasoningReplayPolicy)
THINKING_CONTROLS: tuple[str, ...] = get_args(ThinkingControl)
TOOL_CHOICE_SUPPORT: tuple[str, ...] = get_args(ToolChoiceSupport)
FOREIGN_THINKING_POLICIES: tuple[str, ...] = get_args(ForeignThinkingPolicy)
IMAGE_POLICIES: tuple[str, ...] = get_args(ImagePolicy)
REASONING_SUMMARIES: tuple[str, ...] = get_args(ReasoningSummary)
TOKEN_COUNT_METHODS: tuple[str, ...] = get_args(TokenCountMethod)
STOP_SEQUENCE_SOURCES: tuple[str, ...] = get_args(StopSequenceSource)
MAX_TOKENS_FIELDS: tuple[str, ...] = get_args(MaxTokensField)

# Fields the prefill strategy sets: no drop_fields or extra_body may remove or change them.
PROTECTED_BODY_FIELDS = ("continue_final_message", "add_generation_prompt")


@dataclass(frozen=True, slots=True)
class Capabilities:
    # -- prefill (Anthropic docs, prefill) --
    # How a trailing assistant message (prefill) reaches the backend.
    prefill: PrefillStrategy = "native"
    # Message flag that marks the trailing assistant message as a prefix when prefill is
    # "prefix_flag" (DeepSeek: "prefix", Kimi: "partial").
    prefix_flag_name: str = "prefix"
    # Prefill while thinking is on: pass both, turn thinking off for that request, or 400.
    prefill_with_thinking: PrefillThinkingPolicy = "allow"
    # Remove trailing whitespace from a prefill (Anthropic answers 400 to it).
    prefill_trim_whitespace: bool = False
    # The backend puts the prefill back in front of its reply (llama.cpp's message.content):
    # a reply that starts with the prefill has it removed, streamed and not.
    prefill_echo: bool = False
    # -- reasoning and thinking (docs/backends.md; README, What is translated) --
    # Message fields the backend puts its reasoning text in, read in this order.
    reasoning_fields_in: tuple[str, ...] = ("reasoning_content", "reasoning")
    # Field that carries history ``thinking`` back on assistant messages ("" = never send it).
    reasoning_field_out: str = "reasoning_content"
    # Which assistant turns get their thinking back: every turn, only turns that called tools
    # (DeepSeek thinking mode, Kimi: 400 without it), or none (legacy DeepSeek R1: 400 with it).
    reasoning_replay: ReasoningReplayPolicy = "always"
    # Sent as the reasoning of a tool-call turn that has none, under reasoning_replay=tool_turns.
    reasoning_placeholder: str = ""
    # The backend knob that the client's ``thinking`` / ``output_config.effort`` turns.
    thinking_control: ThinkingControl = "none"
    # -- output and sampling --
    # Name of the output-token limit field.
    max_tokens_field: MaxTokensField = "max_tokens"
    # Largest max_tokens the backend accepts (0 = no limit): larger requests are clamped.
    max_tokens_cap: int = 0
    # Send Anthropic's ``top_k`` (vLLM, SGLang, llama.cpp, Ollama accept it; OpenAI rejects it).
    top_k: bool = True
    # The backend rejects temperature together with top_p (current Claude): keep temperature.
    sampling_exclusive: bool = False
    # Ask for usage in streams (``stream_options.include_usage``).
    stream_usage: bool = True
    # Who knows which stop sequence ended the output: the backend names it (vLLM ``stop_reason``,
    # SGLang ``matched_stop``), llama.cpp names it in ``__verbose.stopping_word`` when asked, or
    # nobody does and the gateway matches the sequences itself (not sent; the text is cut there).
    stop_sequences: StopSequenceSource = "backend"
    # Tokens the model's context holds, prompt and output together (0: unknown). With a backend
    # that counts exactly, max_tokens is clamped to what is left after the prompt.
    context_window: int = 0
    # Body field that carries a thinking budget (llama.cpp: thinking_budget_tokens; "" = none).
    thinking_budget_field: str = ""
    # -- token counting (count_tokens) --
    # How count_tokens counts: the backend renders and tokenizes the translated request
    # (chat_tokenize: vLLM/SGLang messages+tools; llamacpp_tokenize: /apply-template then
    # /tokenize), native (Anthropic's own endpoint), or a conservative local estimate.
    token_count: TokenCountMethod = "estimate"
    # Path of the tokenize endpoint on the backend's server root (vLLM /tokenize, SGLang /v1/tokenize).
    tokenize_path: str = "/tokenize"
    # -- tools and content --
    # tool_choice the backend accepts: everything, no "required"/named, only auto, or none at all.
    tool_choice: ToolChoiceSupport = "full"
    # The backend accepts ``parallel_tool_calls``.
    parallel_tool_calls: bool = True
    # Images: pass them, replace them by a text placeholder (text-only model), or answer 400.
    images: ImagePolicy = "pass"
    # -- system prompt --
    # Drop Claude Code's per-request ``x-anthropic-billing-header`` system block (it defeats
    # prefix caching on local backends).
    strip_billing_header: bool = True
    # What to do with ``role: system`` messages inside ``messages``.
    system_messages: SystemMessagePolicy = "hoist"
    # -- OpenAI Responses backends (OpenAI Responses API reference) --
    # Reasoning summary to ask for with reasoning.effort ("none": do not ask).
    reasoning_summary: ReasoningSummary = "auto"
    # Stateless use: store: false and include reasoning.encrypted_content, so reasoning can be
    # replayed from the client's history instead of server-side state.
    stateless: bool = True
    # -- native Anthropic backends (README, Native Anthropic backends) --
    # Thinking blocks the gateway made from another backend's reasoning: drop them, or send
    # their text as a text block (never as thinking Claude would reject).
    foreign_thinking: ForeignThinkingPolicy = "drop"
    # ``anthropic-beta`` values forwarded ("*" = all; empty = none).
    betas: tuple[str, ...] = ("*",)
    # Keep ``cache_control.ttl`` / ``scope`` (newer extensions some endpoints reject).
    cache_control_extensions: bool = True
    # -- prompt caching (OpenAI prompt caching guide; API reference, prompt_cache_key) --
    # Send the client's session (Claude Code's session id) as ``prompt_cache_key``: OpenAI routes
    # requests by it, so one session's turns keep landing on the machine that holds its prefix.
    # Only OpenAI's own presets turn it on. The local servers' prefix caches match by content and
    # read no such key: vLLM's ChatCompletionRequest has none (chat_completion/protocol.py; its
    # cache_salt only salts the cache), nor has SGLang's (srt/entrypoints/openai/protocol.py, which
    # has session_id/cache_salt/extra_key instead); Ollama v0.33.0-rc2 (openai/responses.go) parses
    # it on /v1/responses and marks it "Not supported"; llama.cpp picks a slot by prompt similarity.
    prompt_cache_key: bool = False
    # -- escape hatches --
    # Top-level body fields removed from every upstream request (after all other rewrites).
    drop_fields: tuple[str, ...] = ()
    # JSON object merged into every upstream body (objects merge key by key).
    extra_body: dict[str, Any] = field(default_factory=dict, hash=False)
    # Extra HTTP headers sent to the backend.
    extra_headers: dict[str, Any] = field(default_factory=dict, hash=False)

    def replace(self, **changes: Any) -> Capabilities:
        return capabilities_build(base=self, overrides=changes)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


FIELD_HELP: dict[str, str] = {
    "prefill": "How a trailing assistant message (prefill) is sent: native (as is), "
    "continue_final_message (vLLM/SGLang flags), prefix_flag (DeepSeek prefix / Kimi partial), "
    "rewrite (a user turn asks to continue; for backends that reject prefill such as Claude 4.6+ "
    "and OpenAI), or reject (clear 400).",
    "prefix_flag_name": "Flag set to true on the trailing assistant message when prefill is "
    "prefix_flag (DeepSeek: prefix, Kimi: partial).",
    "prefill_with_thinking": "Prefill while thinking is on: allow, disable_thinking for that request "
    "(llama.cpp answers 400 'Assistant response prefill is incompatible with enable_thinking'; "
    "thinking templates misfile the continuation), or reject.",
    "prefill_trim_whitespace": "Trim trailing whitespace from a prefill (Anthropic answers 400 to it).",
    "prefill_echo": "The backend repeats the prefill at the start of its reply (llama.cpp's non-streamed "
    "message.content): a reply that starts with it has it removed, streamed and not.",
    "reasoning_fields_in": "Response fields read as reasoning, in order (vLLM moved from "
    "reasoning_content to reasoning).",
    "reasoning_field_out": "Assistant-message field that carries replayed thinking; an empty value "
    "(\"-\" in the admin) never sends it.",
    "reasoning_replay": "Which history turns get their thinking back: always, tool_turns (only turns "
    "with tool calls, as DeepSeek thinking mode and Kimi require), or never (legacy DeepSeek R1).",
    "reasoning_placeholder": "Reasoning sent on a tool-call turn that has none when reasoning_replay "
    "is tool_turns (DeepSeek accepts an empty string).",
    "thinking_control": "How the client's thinking setting reaches the backend: none, enable_thinking "
    "(chat_template_kwargs.enable_thinking: Qwen3, GLM), template_thinking (chat_template_kwargs.thinking: "
    "DeepSeek V3.1, Kimi on vLLM), reasoning_effort, thinking_object (thinking: {type}: DeepSeek, Kimi), "
    "reasoning_object (reasoning: {effort|max_tokens|enabled}: OpenRouter), native (Anthropic).",
    "max_tokens_field": "Output-token limit field: max_tokens, or max_completion_tokens for OpenAI.",
    "max_tokens_cap": "Largest output-token limit the backend accepts; larger requests are clamped "
    "(0: no limit).",
    "token_count": "How count_tokens counts: chat_tokenize (the backend renders and tokenizes the translated "
    "messages and tools: vLLM, SGLang), llamacpp_tokenize (/apply-template then /tokenize), native "
    "(Anthropic count_tokens), or estimate (a documented local estimate that errs high). A failed "
    "backend count falls back to the estimate.",
    "tokenize_path": "Tokenize endpoint on the server root (without /v1): vLLM /tokenize, SGLang /v1/tokenize.",
    "top_k": "Forward top_k (OpenAI rejects unknown sampling fields).",
    "sampling_exclusive": "The backend rejects temperature and top_p together: top_p is dropped.",
    "stream_usage": "Send stream_options.include_usage so streams report token usage.",
    "stop_sequences": "Which stop sequence ended the output: backend (vLLM stop_reason / SGLang matched_stop), "
    "llamacpp_verbose (llama.cpp's __verbose.stopping_word, asked for per request), or gateway (not sent; the "
    "gateway cuts the text at the first match and stops the backend).",
    "context_window": "Tokens the model's context holds (prompt plus output; 0: unknown). With an exact "
    "token_count, max_tokens is clamped to what the prompt leaves; shown in /v1/models as max_input_tokens.",
    "thinking_budget_field": "Body field for the thinking budget (llama.cpp: thinking_budget_tokens); "
    "empty: the budget is not sent.",
    "tool_choice": "tool_choice the backend accepts: full, no_required (any becomes auto), auto_only, "
    "or omit (never sent).",
    "parallel_tool_calls": "The backend accepts parallel_tool_calls (sent for disable_parallel_tool_use).",
    "images": "Images: pass, placeholder (replace by a text note, for text-only models), or reject (400).",
    "strip_billing_header": "Remove Claude Code's per-request x-anthropic-billing-header system block.",
    "system_messages": "role:system messages inside messages: hoist into the system prompt, keep, or reject.",
    "reasoning_summary": "Responses backends: reasoning summary requested with reasoning.effort "
    "(none, auto, concise, detailed).",
    "stateless": "Responses backends: send store: false and include reasoning.encrypted_content so "
    "reasoning round-trips through the client's history.",
    "foreign_thinking": "Native Anthropic backends: thinking blocks made by the gateway from another "
    "backend's reasoning are dropped, or sent as text (never with a signature Claude would reject).",
    "betas": "Native Anthropic backends: anthropic-beta values forwarded; * for all, empty for none.",
    "cache_control_extensions": "Native Anthropic backends: keep cache_control ttl/scope (some endpoints "
    "reject them).",
    "prompt_cache_key": "OpenAI Chat Completions and Responses: send the client's session (Claude Code's "
    "x-claude-code-session-id, else the session in metadata.user_id) as prompt_cache_key, which OpenAI "
    "routes its prompt cache by. Servers that do not read it (vLLM, SGLang, llama.cpp, Ollama) leave it off.",
    "drop_fields": "Top-level body fields removed from every upstream request.",
    "extra_body": "JSON object merged into every upstream request body.",
    "extra_headers": "JSON object of extra HTTP headers sent to the backend.",
}

# Admin form sections, in order: every field appears in exactly one group.
FIELD_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Prefill", ("prefill", "prefix_flag_name", "prefill_with_thinking", "prefill_trim_whitespace",
                 "prefill_echo")),
    ("Reasoning and thinking", ("reasoning_fields_in", "reasoning_field_out", "reasoning_replay",
                                "reasoning_placeholder", "thinking_control", "thinking_budget_field")),
    ("Output and sampling", ("max_tokens_field", "max_tokens_cap", "top_k", "sampling_exclusive",
                             "stream_usage", "stop_sequences", "context_window")),
    ("Token counting", ("token_count", "tokenize_path")),
    ("Tools and content", ("tool_choice", "parallel_tool_calls", "images")),
    ("System prompt", ("strip_billing_header", "system_messages")),
    ("OpenAI Responses backends", ("reasoning_summary", "stateless")),
    ("Native Anthropic backends", ("foreign_thinking", "betas", "cache_control_extensions")),
    ("Prompt caching", ("prompt_cache_key",)),
    ("Escape hatches", ("drop_fields", "extra_body", "extra_headers")),
)

CAPABILITY_CHOICES: dict[str, tuple[str, ...]] = {
    "prefill": PREFILL_STRATEGIES,
    "prefill_with_thinking": PREFILL_THINKING_POLICIES,
    "reasoning_replay": REASONING_REPLAY_POLICIES,
    "thinking_control": THINKING_CONTROLS,
    "system_messages": SYSTEM_MESSAGE_POLICIES,
    "max_tokens_field": MAX_TOKENS_FIELDS,
    "tool_choice": TOOL_CHOICE_SUPPORT,
    "foreign_thinking": FOREIGN_THINKING_POLICIES,
    "images": IMAGE_POLICIES,
    "reasoning_summary": REASONING_SUMMARIES,
    "token_count": TOKEN_COUNT_METHODS,
    "stop_sequences": STOP_SEQUENCE_SOURCES,
}

# One table: each preset says only where it differs from the defaults, and why (the README's
# presets table repeats these reasons for operators).
PRESETS: dict[str, dict[str, Any]] = {
    # Anthropic semantics, no assumptions about the backend.
    "generic": {},
    # vLLM (checked against v0.34.0, vllm/entrypoints/openai/chat_completion/serving.py and
    # protocol.py; docs/backends.md): prefill needs continue_final_message + add_generation_prompt:
    # false, and the reply does not repeat it; it writes "reasoning" (renamed from
    # reasoning_content, PR #27752 / #33402); the matched stop string is choices[].stop_reason;
    # Qwen3-style templates switch thinking with chat_template_kwargs.enable_thinking and the
    # budget is thinking_token_budget; a prefill turns thinking off (a continuation under an open
    # <think> is misfiled).
    "vllm": {"prefill": "continue_final_message", "reasoning_field_out": "reasoning",
             "thinking_control": "enable_thinking", "prefill_with_thinking": "disable_thinking",
             "token_count": "chat_tokenize", "thinking_budget_field": "thinking_token_budget"},
    # SGLang (checked against v0.5.23, python/sglang/srt/entrypoints/openai/serving_chat.py):
    # continue_final_message (string content only), no echo; matched_stop names the stop string;
    # reasoning_content both ways; enable_thinking (qwen3/glm45 parsers; set
    # thinking_control=template_thinking for deepseek-v3/kimi_k2).
    "sglang": {"prefill": "continue_final_message", "thinking_control": "enable_thinking",
               "prefill_with_thinking": "disable_thinking", "token_count": "chat_tokenize",
               "tokenize_path": "/v1/tokenize"},
    # llama.cpp (checked against llama-server from llama-cpp-python 0.3.36, tools/server/
    # server-common.cpp oaicompat_chat_params_parse and server-task.cpp, in make test-real): a
    # trailing assistant message is continued (--prefill-assistant, on by default), but the reply
    # puts the prefill back in front (non-streamed always, streamed unless continue_final_message
    # is sent), so both are sent and the echo stripped; with thinking on it answers 400 "Assistant
    # response prefill is incompatible with enable_thinking"; finish_reason says only "stop", the
    # stop word and a full context are in __verbose when asked; thinking_budget_tokens is read.
    "llamacpp": {"prefill": "continue_final_message", "prefill_echo": True, "thinking_control": "enable_thinking",
                 "prefill_with_thinking": "disable_thinking", "token_count": "llamacpp_tokenize",
                 "stop_sequences": "llamacpp_verbose", "thinking_budget_field": "thinking_budget_tokens"},
    # Ollama /v1 (checked against v0.33.0-rc2, openai/openai.go and middleware/openai.go): a
    # trailing assistant message is continued, not echoed; "reasoning" both ways; reasoning_effort
    # switches thinking; it never says which stop sequence matched, so the gateway matches them;
    # parallel_tool_calls is not a field it reads.
    "ollama": {"prefill": "native", "reasoning_field_out": "reasoning", "thinking_control": "reasoning_effort",
               "stop_sequences": "gateway", "parallel_tool_calls": False},
    # OpenAI: no prefill, no reasoning text, max_completion_tokens, no top_k, reasoning_effort; its
    # prompt cache routes by prompt_cache_key (Chat Completions and Responses both take it).
    "openai": {
        "prefill": "rewrite",
        "reasoning_field_out": "",
        "reasoning_replay": "never",
        "max_tokens_field": "max_completion_tokens",
        "top_k": False,
        "thinking_control": "reasoning_effort",
        "prompt_cache_key": True,
    },
    # OpenAI Responses API (kind openai_responses): no prefill, no top_k, reasoning.effort with a
    # summary, stateless reasoning round trips (store: false + encrypted reasoning).
    "openai-responses": {"prefill": "rewrite", "top_k": False, "thinking_control": "reasoning_effort",
                         "reasoning_replay": "never", "reasoning_field_out": "", "prompt_cache_key": True},
    # DeepSeek: chat prefix completion is {"prefix": true}; in thinking mode reasoning_content is
    # required (even "") on tool-call turns and ignored elsewhere; thinking: {type}; no top_k.
    "deepseek": {"prefill": "prefix_flag", "top_k": False, "reasoning_replay": "tool_turns",
                 "thinking_control": "thinking_object"},
    # Kimi / Moonshot: {"partial": true} prefill; reasoning_content required on tool-call turns
    # with thinking on; thinking must be an object.
    "kimi": {"prefill": "prefix_flag", "prefix_flag_name": "partial", "top_k": False,
             "reasoning_replay": "tool_turns", "thinking_control": "thinking_object"},
    # OpenRouter: "reasoning" string both ways, reasoning: {...} request object; passes a trailing
    # assistant message to providers that continue it.
    "openrouter": {"prefill": "native", "reasoning_field_out": "reasoning",
                   "thinking_control": "reasoning_object"},
    # Native Anthropic up to Claude 4.5: prefill is native; keep Claude Code's system blocks and its
    # mid-conversation system messages (it sends them with their beta, which Claude accepts);
    # thinking passes through; trailing prefill whitespace and temperature+top_p are 400s.
    "anthropic": {"prefill": "native", "strip_billing_header": False, "thinking_control": "native",
                  "token_count": "native", "system_messages": "keep",
                  "prefill_trim_whitespace": True, "sampling_exclusive": True,
                  "prefill_with_thinking": "disable_thinking"},
    # Claude 4.6 and later answer 400 to a prefill: rewrite it into a user turn.
    "anthropic-no-prefill": {"prefill": "rewrite", "strip_billing_header": False, "thinking_control": "native",
                             "token_count": "native", "system_messages": "keep",
                             "prefill_trim_whitespace": True, "sampling_exclusive": True},
}

@dataclass(frozen=True, slots=True)
class CapabilityProblem:
    """One bad capability: the field it is about and what is wrong with it (and what is allowed)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class CapabilityError(ValueError):
    """Every problem of one set of capabilities, not only the first."""

    def __init__(self, problems: list[CapabilityProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def _shown(value: Any) -> str:
    """A bad value as the message quotes it: scalars as written, containers only by their type
    (an ``extra_headers`` or ``extra_body`` value may hold a secret)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str | int | float | bool) or value is None:
        return json.dumps(value, ensure_ascii=False)
    return type(value).__name__


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default``; a bad value raises ``CapabilityError`` with one problem."""
    def bad(message: str) -> CapabilityError:
        return CapabilityError([CapabilityProblem(name, message)])

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad(f"{_shown(value)} is not true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad(f"{_shown(value)} is not a whole number (0 or more)")
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise bad(f"{_shown(value)} is not a JSON object")
        if name == "extra_body":
            clash = sorted(set(value) & set(PROTECTED_BODY_FIELDS))
            if clash:
                raise bad(f"may not set {', '.join(clash)}: the prefill capability owns them")
        if name == "extra_headers":
            wrong = sorted(k for k, v in value.items() if not isinstance(v, str))
            if wrong:
                raise bad(f"values must be strings (not the value of {', '.join(wrong)})")
        return dict(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise bad("must be a list of strings")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad(f"{_shown(value)} is not a string")
        choices = CAPABILITY_CHOICES.get(name)
        if choices and value not in choices:
            raise bad(f"{_shown(value)} is not one of {', '.join(choices)}")
        return value
    return value


def _unknown(name: str, known: set[str]) -> CapabilityProblem:
    near = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"did you mean {near[0]}?" if near else "the README's Capabilities and presets tables list the known ones"
    return CapabilityProblem(name, f"unknown field ({hint})")


def capabilities_build(*, preset: str = "generic", overrides: dict[str, Any] | None = None,
                       base: Capabilities | None = None) -> Capabilities:
    """A preset (or ``base``) with per-field ``overrides``.

    Every unknown name and bad value is checked before anything raises: the ``CapabilityError``
    lists them all, each with its field, so an operator fixes a file or a form in one go.
    """
    problems: list[CapabilityProblem] = []
    if base is None:
        if preset not in PRESETS:
            raise CapabilityError([CapabilityProblem(
                "preset", f"{_shown(preset)} is not one of {', '.join(PRESETS)}")])
        base = Capabilities(**_coerced(PRESETS[preset], Capabilities(), problems))
        if problems:
            raise CapabilityError(problems)
    changes = _coerced(overrides or {}, base, problems)
    if problems:
        raise CapabilityError(problems)
    return dataclasses.replace(base, **changes) if changes else base


def _coerced(values: dict[str, Any], base: Capabilities, problems: list[CapabilityProblem]) -> dict[str, Any]:
    """The good ``values`` coerced to their fields' types; a problem appended for each bad one."""
    known = {f.name for f in fields(Capabilities)}
    good: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            problems.append(_unknown(str(name), known))
            continue
        try:
            good[name] = _coerce(name, value, getattr(base, name))
        except CapabilityError as exc:
            problems.extend(exc.problems)
    return good
