"""Prefill rules shared by every backend kind (protocol.md §6).

A trailing ``assistant`` message without tool calls is a prefill: Anthropic continues from its
text and returns only the continuation.
"""

from __future__ import annotations

from translation.capabilities import Capabilities
from translation.schemas import Message, MessagesRequest, TextBlock, ToolUseBlock

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"

PREFILL_REWRITE_INSTRUCTION = (
    "Continue your previous reply from exactly where it stops. Do not repeat any of it: "
    "output only the continuation. The reply so far is between the markers.\n"
    "<reply_so_far>\n{text}\n</reply_so_far>"
)


def prefill_message(request: MessagesRequest) -> Message | None:
    """The trailing assistant message when it is a prefill (not a finished tool-call turn)."""
    last = request.messages[-1]
    if last.role != "assistant":
        return None
    if any(isinstance(b, ToolUseBlock) for b in last.blocks()):
        return None
    return last


def prefill_text(message: Message) -> str:
    return "".join(b.text for b in message.blocks() if isinstance(b, TextBlock))


def prefill_trimmed(text: str, caps: Capabilities) -> str:
    """The prefill text the backend gets: without trailing whitespace where it would 400."""
    return text.rstrip() if caps.prefill_trim_whitespace else text


def prefill_rewrite_prefix(request: MessagesRequest, caps: Capabilities) -> str:
    """The prefill text a ``prefill=rewrite`` backend was asked to continue ("" if none).

    Such a backend may repeat it at the start of its reply; Anthropic semantics say the reply
    continues the prefill without echoing it, so the translators strip a repeated prefix.
    """
    if caps.prefill != "rewrite":
        return ""
    message = prefill_message(request)
    return prefill_trimmed(prefill_text(message), caps) if message is not None else ""
