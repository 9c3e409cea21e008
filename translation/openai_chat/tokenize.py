"""Exact input-token counts from the backend's own tokenizer (``count_tokens``, Anthropic docs, token counting).

The translated Chat Completions body is what the model will see, so that is what gets counted:
vLLM and SGLang render messages and tools through the model's chat template and tokenize the
result in one call; llama.cpp renders with ``/apply-template`` and tokenizes the prompt.
"""

from __future__ import annotations

from typing import Any

# Fields of the chat body that change the rendered prompt.
_TEMPLATE_FIELDS = ("tools", "chat_template_kwargs", "continue_final_message", "add_generation_prompt")


def tokenize_chat_body(chat_body: dict[str, Any]) -> dict[str, Any]:
    """vLLM / SGLang ``TokenizeChatRequest`` for a Chat Completions body; llama.cpp's
    ``/apply-template`` takes the same request and answers ``{"prompt": …}``."""
    body: dict[str, Any] = {"model": chat_body["model"], "messages": chat_body["messages"]}
    body.update({k: chat_body[k] for k in _TEMPLATE_FIELDS if k in chat_body})
    body.setdefault("add_generation_prompt", True)
    return body


def llamacpp_tokenize_body(prompt: str) -> dict[str, Any]:
    # The rendered template already holds its special tokens as text.
    return {"content": prompt, "add_special": False, "parse_special": True}


def tokenize_count(answer: Any) -> int | None:
    """The token count of a tokenize answer (``count``, else ``len(tokens)``); None if absent."""
    if not isinstance(answer, dict):
        return None
    count = answer.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    tokens = answer.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None
