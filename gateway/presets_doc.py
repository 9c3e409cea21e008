"""Operator-facing words for the admin: why each preset is what it is, and capability help.

The reasons repeat the comments on ``translation.capabilities.PRESETS`` in plain language; a
test checks that every preset has one, so a new preset cannot reach the admin undocumented.
"""

from __future__ import annotations

from typing import Any

from translation.capabilities import FIELD_HELP, PRESETS, Capabilities

PRESET_HELP: dict[str, str] = {
    "generic": "Anthropic semantics, no assumptions about the backend.",
    "vllm": "Checked against vLLM v0.34.0 (chat_completion/serving.py, protocol.py). Prefill goes out as "
    "continue_final_message + add_generation_prompt:false; vLLM reads and writes 'reasoning'; the matched stop "
    "string comes back in stop_reason; Qwen3-style templates switch thinking with "
    "chat_template_kwargs.enable_thinking (budget: thinking_token_budget), and a prefill turns thinking off.",
    "sglang": "Checked against SGLang v0.5.23 (serving_chat.py). continue_final_message for prefill; matched_stop "
    "names the stop string; reasoning_content both ways; enable_thinking (qwen3/glm45 parsers — set "
    "thinking_control=template_thinking for deepseek-v3/kimi_k2).",
    "llamacpp": "Checked against a real llama-server (llama-cpp-python 0.3.36, make test-real). It continues a "
    "prefill but repeats it in front of its reply, so continue_final_message is sent and the echo stripped; "
    "the stop word and a full context are read from __verbose; thinking_budget_tokens carries the budget; "
    "a prefill turns thinking off (llama.cpp answers 400 to both together).",
    "ollama": "Checked against Ollama v0.33.0-rc2 (openai/openai.go). 'reasoning' both ways; reasoning_effort "
    "switches thinking; it never says which stop sequence matched, so the gateway matches them; "
    "parallel_tool_calls is ignored, so it is not sent.",
    "openai": "No prefill (rewritten into a user turn), no reasoning text replayed, max_completion_tokens, "
    "no top_k, reasoning_effort.",
    "openai-responses": "For kind openai_responses: no prefill (rewritten into a user turn), no top_k, "
    "reasoning: {effort, summary}, stateless reasoning round trips (store: false + encrypted reasoning).",
    "deepseek": "Prefill is the {\"prefix\": true} message flag; in thinking mode reasoning_content is "
    "required on tool-call turns; thinking is an object; no top_k.",
    "kimi": "Prefill is the {\"partial\": true} message flag; reasoning_content required on tool-call turns "
    "with thinking on; thinking is an object; no top_k.",
    "openrouter": "'reasoning' both ways and a reasoning: {...} request object; a trailing assistant message "
    "passes to providers that continue it.",
    "anthropic": "Native Anthropic up to Claude 4.5: prefill is native (trailing whitespace trimmed), Claude "
    "Code's system blocks kept, thinking passes through, temperature and top_p are exclusive.",
    "anthropic-no-prefill": "Claude 4.6 and later answer 400 to a prefill: it is rewritten into a user turn.",
}

_DEFAULTS = Capabilities()


def value_show(value: Any) -> str:
    """A capability value as an operator types it in the form."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ",".join(value) if value else "(none)"
    if isinstance(value, dict):
        return "{}" if not value else ", ".join(f"{k}={v}" for k, v in value.items())
    if value == "":
        return "(empty)"
    return str(value)


def capability_help(name: str) -> str:
    """FIELD_HELP plus the default and every preset that changes it, e.g. 'Preset vllm: reasoning'."""
    parts = [FIELD_HELP.get(name, "").rstrip()]
    parts.append(f"Default: {value_show(getattr(_DEFAULTS, name))}.")
    changed = [f"{preset} = {value_show(values[name])}" for preset, values in PRESETS.items() if name in values]
    if changed:
        parts.append("Presets that set it: " + "; ".join(changed) + ".")
    parts.append("Leave empty to use the preset's value.")
    return " ".join(p for p in parts if p)


def preset_changes(preset: str) -> str:
    values = PRESETS.get(preset, {})
    return ", ".join(f"{k}={value_show(v)}" for k, v in values.items()) or "nothing (all defaults)"
