"""What a translator may know about a backend.

``Capabilities`` is the only input besides the request that decides how a request is rewritten:
behaviour is never decided from a model-name substring. Backends start from a *preset* (a row of
``PRESETS``) and override single fields; a route may override further.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

PREFILL_STRATEGIES = ("native", "continue_final_message", "prefix_flag", "rewrite", "reject")
SYSTEM_MESSAGE_POLICIES = ("hoist", "keep", "reject")


@dataclass(frozen=True, slots=True)
class Capabilities:
    # How a trailing assistant message (prefill) reaches the backend; see protocol.md §6.
    prefill: str = "native"
    # Message flag that marks the trailing assistant message as a prefix when prefill is
    # "prefix_flag" (DeepSeek: "prefix", Kimi: "partial").
    prefix_flag_name: str = "prefix"
    # Message fields the backend puts its reasoning text in, read in this order.
    reasoning_fields_in: tuple[str, ...] = ("reasoning_content", "reasoning")
    # Field that carries history ``thinking`` back on assistant messages ("" = never send it).
    reasoning_field_out: str = "reasoning_content"
    # Name of the output-token limit field.
    max_tokens_field: str = "max_tokens"
    # Ask for usage in streams (``stream_options.include_usage``).
    stream_usage: bool = True
    # Send Anthropic's ``top_k`` (vLLM, SGLang, llama.cpp, Ollama accept it; OpenAI rejects it).
    top_k: bool = True
    # Drop Claude Code's per-request ``x-anthropic-billing-header`` system block (it defeats
    # prefix caching on local backends).
    strip_billing_header: bool = True
    # What to do with ``role: system`` messages inside ``messages``.
    system_messages: str = "hoist"

    def replace(self, **changes: Any) -> Capabilities:
        return capabilities_build(base=self, overrides=changes)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


FIELD_HELP: dict[str, str] = {
    "prefill": "How a trailing assistant message (prefill) is sent: native (as is), "
    "continue_final_message (vLLM/SGLang flags), prefix_flag, rewrite, or reject.",
    "prefix_flag_name": "Flag set to true on the trailing assistant message when prefill is "
    "prefix_flag (DeepSeek: prefix, Kimi: partial).",
    "reasoning_fields_in": "Response fields read as reasoning, in order (vLLM moved from "
    "reasoning_content to reasoning).",
    "reasoning_field_out": "Assistant-message field that carries replayed thinking; empty to never send it.",
    "max_tokens_field": "Output-token limit field: max_tokens, or max_completion_tokens for OpenAI.",
    "stream_usage": "Send stream_options.include_usage so streams report token usage.",
    "top_k": "Forward top_k (OpenAI rejects unknown sampling fields).",
    "strip_billing_header": "Remove Claude Code's per-request x-anthropic-billing-header system block.",
    "system_messages": "role:system messages inside messages: hoist into the system prompt, keep, or reject.",
}

CAPABILITY_CHOICES: dict[str, tuple[str, ...]] = {
    "prefill": PREFILL_STRATEGIES,
    "system_messages": SYSTEM_MESSAGE_POLICIES,
    "max_tokens_field": ("max_tokens", "max_completion_tokens"),
}

# One table: each preset says only where it differs from the defaults, and why.
PRESETS: dict[str, dict[str, Any]] = {
    # Anthropic's own behaviour: passes a trailing assistant message through as is.
    "generic": {},
    # vLLM: prefill needs continue_final_message + add_generation_prompt:false; current vLLM
    # writes and reads "reasoning" (it renamed reasoning_content, PR #27752 / #33402).
    "vllm": {"prefill": "continue_final_message", "reasoning_field_out": "reasoning"},
    # SGLang: continue_final_message; reasoning_content both ways.
    "sglang": {"prefill": "continue_final_message"},
    # llama.cpp: a trailing assistant message is continued automatically (--prefill-assistant).
    "llamacpp": {"prefill": "native"},
    # Ollama /v1: "reasoning" both ways.
    "ollama": {"prefill": "native", "reasoning_field_out": "reasoning"},
    # OpenAI: no prefill, no reasoning text, max_completion_tokens, no top_k.
    "openai": {
        "prefill": "rewrite",
        "reasoning_field_out": "",
        "max_tokens_field": "max_completion_tokens",
        "top_k": False,
    },
    # DeepSeek: chat prefix completion is {"prefix": true}; reasoning_content is required on
    # tool-call turns in thinking mode.
    "deepseek": {"prefill": "prefix_flag", "top_k": False},
    # Kimi / Moonshot: {"partial": true} prefill; reasoning_content.
    "kimi": {"prefill": "prefix_flag", "prefix_flag_name": "partial", "top_k": False},
    # OpenRouter: "reasoning" string both ways; no portable prefill.
    "openrouter": {"prefill": "native", "reasoning_field_out": "reasoning"},
    # Native Anthropic up to Claude 4.5: prefill is native; keep Claude Code's system blocks.
    "anthropic": {"prefill": "native", "strip_billing_header": False},
    # Claude 4.6 and later answer 400 to a prefill.
    "anthropic-no-prefill": {"prefill": "rewrite", "strip_billing_header": False},
}

PRESET_CHOICES = tuple(PRESETS)


class CapabilityError(ValueError):
    pass


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise CapabilityError(f"capability {name!r} must be true or false, not {value!r}")
        return value
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise CapabilityError(f"capability {name!r} must be a list of strings")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise CapabilityError(f"capability {name!r} must be a string, not {value!r}")
        choices = CAPABILITY_CHOICES.get(name)
        if choices and value not in choices:
            raise CapabilityError(f"capability {name!r} must be one of {', '.join(choices)}; got {value!r}")
        return value
    return value


def capabilities_build(*, preset: str = "generic", overrides: dict[str, Any] | None = None,
                       base: Capabilities | None = None) -> Capabilities:
    """A preset (or ``base``) with per-field ``overrides``; unknown names and bad values raise."""
    if base is None:
        if preset not in PRESETS:
            raise CapabilityError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        base = Capabilities(**{
            name: _coerce(name, value, getattr(Capabilities(), name))
            for name, value in PRESETS[preset].items()
        })
    known = {f.name for f in fields(Capabilities)}
    changes: dict[str, Any] = {}
    for name, value in (overrides or {}).items():
        if name not in known:
            raise CapabilityError(f"unknown capability {name!r}; known: {', '.join(sorted(known))}")
        changes[name] = _coerce(name, value, getattr(base, name))
    return dataclasses.replace(base, **changes) if changes else base
