"""Prefill rules shared by every backend kind.

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


def prefill_echo_prefix(request: MessagesRequest, caps: Capabilities) -> str:
    """The prefill text a backend may repeat at the start of its reply ("" if none is expected).

    Anthropic replies continue the prefill without echoing it. Two kinds of backend repeat it: a
    ``prefill=rewrite`` backend (asked in a user turn to continue a reply, models often start by
    quoting it) and a backend with ``prefill_echo`` (llama.cpp puts the continued prefill back in
    front of ``message.content``). The translators strip it from the first text, streamed and not.
    """
    if caps.prefill != "rewrite" and not caps.prefill_echo:
        return ""
    message = prefill_message(request)
    return prefill_trimmed(prefill_text(message), caps) if message is not None else ""


class PrefixStrip:
    """Removes an echoed prefill (``prefill_echo_prefix``) from the first text of a reply.

    Incremental: ``feed`` returns what may be emitted now, ``flush`` what is held back (text that
    matched the prefix so far, when the reply turns out not to repeat it whole).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pos = 0
        self.held: list[str] = []
        self.stripped = False

    @property
    def active(self) -> bool:
        return bool(self.prefix)

    def feed(self, text: str) -> str:
        if not self.prefix:
            return text
        head = text[: len(self.prefix) - self.pos]
        if self.prefix[self.pos: self.pos + len(head)] != head:
            return self.flush() + text
        self.pos += len(head)
        if self.pos < len(self.prefix):
            self.held.append(text)
            return ""
        self.prefix, self.held, self.stripped = "", [], True
        return text[len(head):]

    def flush(self) -> str:
        held = "".join(self.held)
        self.prefix, self.held = "", []
        return held


PREFIX_STRIP_DETAIL = "The backend repeated the prefill at the start of its reply; removed it (Anthropic " \
                      "replies hold only the continuation)."
