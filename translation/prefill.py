"""Prefill rules shared by every backend kind (Anthropic docs, prefill).

A trailing ``assistant`` message without tool calls is a prefill: Anthropic continues from its
text and returns only the continuation. ``prefill_plan`` decides once, for every backend kind,
what becomes of it (strategy, trimmed text, thinking, notes, errors); each request builder only
shapes the kind's own fields from the plan. ``PrefixStrip`` removes the prefill when a backend
repeats it at the start of its reply, in every response and stream translator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from translation.capabilities import Capabilities, PrefillStrategy
from translation.errors import ApiError
from translation.notes import RewriteNote
from translation.schemas import Message, MessagesRequest, TextBlock, ToolUseBlock
from translation.thinking import thinking_intent

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"

PREFILL_REWRITE_INSTRUCTION = (
    "Continue your previous reply from exactly where it stops. Do not repeat any of it: "
    "output only the continuation. The reply so far is between the markers.\n"
    "<reply_so_far>\n{text}\n</reply_so_far>"
)

BackendKind = Literal["openai_chat", "openai_responses", "anthropic"]


@dataclass(frozen=True, slots=True)
class _KindRules:
    """How far a backend kind can honour ``caps.prefill``, and what it reports itself."""

    supported: tuple[PrefillStrategy, ...]
    fallback: PrefillStrategy  # what an unsupported strategy becomes
    fallback_rule: str
    fallback_detail: str  # {strategy} is the configured one
    # The plan notes the trim and the rewrite itself; native Anthropic trims the client's blocks
    # and places the instruction itself, so it words those notes (its request builder).
    plan_notes_trim: bool
    plan_notes_rewrite: bool
    # Chat templates may think without being asked (Qwen3, GLM): the thinking switch is turned
    # off for a prefill even when the client did not ask for thinking. Anthropic thinks only
    # when asked.
    thinks_unasked: bool


_KINDS: dict[BackendKind, _KindRules] = {
    "openai_chat": _KindRules(
        supported=("native", "continue_final_message", "prefix_flag", "rewrite", "reject"), fallback="native",
        fallback_rule="", fallback_detail="", plan_notes_trim=True, plan_notes_rewrite=True, thinks_unasked=True),
    # The Responses API has no prefill (OpenAI Responses API reference): only rewrite works.
    "openai_responses": _KindRules(
        supported=("rewrite", "reject"), fallback="rewrite", fallback_rule="prefill.rewrite_forced",
        fallback_detail="The Responses API cannot continue an assistant message (capability prefill={strategy}); "
                        "rewrote the prefill instead.",
        plan_notes_trim=True, plan_notes_rewrite=True, thinks_unasked=False),
    "anthropic": _KindRules(
        supported=("native", "rewrite", "reject"), fallback="native", fallback_rule="prefill.native",
        fallback_detail="prefill={strategy} has no meaning for a native Anthropic backend; the trailing "
                        "assistant message is sent as a prefill.",
        plan_notes_trim=False, plan_notes_rewrite=False, thinks_unasked=False),
}

_REWRITE_DETAIL = ("Replaced the trailing assistant message by a user message asking to continue it; "
                   "a repeated prefix is stripped from the reply.")
PREFILL_TRIM_DETAIL = "Removed trailing whitespace from the prefill (capability prefill_trim_whitespace)."


@dataclass(frozen=True, slots=True)
class PrefillPlan:
    """What becomes of the prefill ``messages[index]`` on one backend."""

    index: int
    # What the builder does: native, continue_final_message, prefix_flag or rewrite (reject raised).
    strategy: PrefillStrategy
    text: str  # the prefill text the backend gets (trimmed where the capability asks)
    trimmed: bool  # ``text`` lost trailing whitespace
    thinking_off: bool  # thinking is turned off for this request
    notes: tuple[RewriteNote, ...]  # added where the builder handles the prefill message
    thinking_note: RewriteNote | None  # added where the builder turns the thinking knob

    @property
    def path(self) -> str:
        return f"messages[{self.index}]"

    @property
    def instruction(self) -> str:
        """The user turn that asks a backend which cannot continue a message (rewrite) for the rest."""
        return PREFILL_REWRITE_INSTRUCTION.format(text=self.text)


def prefill_strategy(caps: Capabilities, kind: BackendKind) -> PrefillStrategy:
    """``caps.prefill`` as far as ``kind`` can honour it (the rest falls back, see ``_KINDS``)."""
    rules = _KINDS[kind]
    return caps.prefill if caps.prefill in rules.supported else rules.fallback


def prefill_plan(*, request: MessagesRequest, caps: Capabilities, kind: BackendKind,
                 backend: str = "this backend", thinking_dropped: bool = False) -> PrefillPlan | None:
    """The plan for the request's prefill on a ``kind`` backend, or None when there is none.

    Raises the 400 for ``prefill=reject`` and ``prefill_with_thinking=reject`` (naming the
    message as Anthropic's own errors do, ``messages.N``). ``thinking_dropped``: the builder's
    shaped prefill carried reasoning that a rewrite loses (noted).
    """
    message = prefill_message(request)
    if message is None:
        return None
    index = len(request.messages) - 1
    path = f"messages[{index}]"
    rules = _KINDS[kind]
    strategy = prefill_strategy(caps, kind)
    if strategy == "reject":
        raise ApiError(400, f"messages.{index}: {backend} does not accept a trailing assistant message "
                            "(prefill; capability prefill=reject). End the conversation with a user message.")
    raw = prefill_text(message)
    text = prefill_trimmed(raw, caps)
    notes: list[RewriteNote] = []
    if text != raw and rules.plan_notes_trim:
        notes.append(RewriteNote("prefill.trim_whitespace", f"{path}.content", PREFILL_TRIM_DETAIL))
    if strategy != caps.prefill:
        notes.append(RewriteNote(rules.fallback_rule, path, rules.fallback_detail.format(strategy=caps.prefill)))
    notes.extend(_strategy_notes(strategy, path, caps, rules, thinking_dropped=thinking_dropped))
    thinking_off = strategy != "rewrite" and _thinking_off(request, caps, rules, index=index, backend=backend)
    thinking_note = RewriteNote(
        "prefill.thinking_off", "thinking",
        "Thinking turned off for this request: the backend cannot continue a prefill while thinking "
        "(capability prefill_with_thinking=disable_thinking).") if thinking_off else None
    return PrefillPlan(index=index, strategy=strategy, text=text, trimmed=text != raw, thinking_off=thinking_off,
                       notes=tuple(notes), thinking_note=thinking_note)


def _strategy_notes(strategy: PrefillStrategy, path: str, caps: Capabilities, rules: _KindRules, *,
                    thinking_dropped: bool) -> list[RewriteNote]:
    if strategy == "continue_final_message":
        return [RewriteNote("prefill.continue_final_message", path,
                            "Trailing assistant message sent with continue_final_message: true and "
                            "add_generation_prompt: false so the model continues it.")]
    if strategy == "prefix_flag":
        flag = caps.prefix_flag_name
        return [RewriteNote("prefill.prefix_flag", f"{path}.{flag}",
                            f"Marked the trailing assistant message with {flag}: true (prefix completion).")]
    if strategy != "rewrite":
        return []
    notes = []
    if thinking_dropped:
        notes.append(RewriteNote("reasoning.drop_prefill", path, "Dropped the prefill's thinking: the turn it "
                                                                 "belonged to is rewritten into a user message."))
    if rules.plan_notes_rewrite:
        notes.append(RewriteNote("prefill.rewrite", path, _REWRITE_DETAIL))
    return notes


def _thinking_off(request: MessagesRequest, caps: Capabilities, rules: _KindRules, *, index: int,
                  backend: str) -> bool:
    """The prefill-with-thinking rule (``prefill_with_thinking``): True to turn thinking off.

    Thinking templates open ``<think>`` and misfile the continuation; llama.cpp answers 400
    "Assistant response prefill is incompatible with enable_thinking"; Anthropic does not allow
    a prefill with thinking enabled (Anthropic docs, extended thinking).
    """
    policy = caps.prefill_with_thinking
    if policy == "allow":
        return False
    enabled = thinking_intent(request).enabled
    if policy == "reject":
        if enabled:
            raise ApiError(400, f"messages.{index}: {backend} does not accept a prefill while thinking is enabled "
                                "(capability prefill_with_thinking=reject). Disable thinking or end the "
                                "conversation with a user message.")
        return False
    return enabled is True or rules.thinks_unasked


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


def prefill_echo_prefix(request: MessagesRequest, caps: Capabilities, kind: BackendKind = "openai_chat") -> str:
    """The prefill text a backend may repeat at the start of its reply ("" if none is expected).

    Anthropic replies continue the prefill without echoing it. Two kinds of backend repeat it: a
    ``prefill=rewrite`` backend (asked in a user turn to continue a reply, models often start by
    quoting it) and a backend with ``prefill_echo`` (llama.cpp puts the continued prefill back in
    front of ``message.content``). The translators strip it from the first text, streamed and not.
    """
    if prefill_strategy(caps, kind) != "rewrite" and not caps.prefill_echo:
        return ""
    message = prefill_message(request)
    return prefill_trimmed(prefill_text(message), caps) if message is not None else ""


class PrefixStrip:
    """Removes an echoed prefill (``prefill_echo_prefix``) from the first text of a reply.

    Incremental: ``feed`` returns what may be emitted now, ``flush`` what is held back (text that
    matched the prefix so far, when the reply turns out not to repeat it whole) and ends the
    check; ``strip`` does both for a whole text (a non-streamed reply). Every response and
    stream translator uses this one matcher, so they agree on what counts as a repeat.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pos = 0
        self.held: list[str] = []
        self.stripped = False  # the whole prefix was found and removed
        self._unreported = False

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
        self.prefix, self.held, self.stripped, self._unreported = "", [], True, True
        return text[len(head):]

    def flush(self) -> str:
        held = "".join(self.held)
        self.prefix, self.held = "", []
        return held

    def strip(self, text: str) -> str:
        """``text`` without the prefix if it starts with all of it (then the check is over)."""
        rest = self.feed(text)
        return rest + self.flush()

    def note(self) -> RewriteNote | None:
        """The rewrite note, once, after the prefix was removed (None before, and after that)."""
        if not self._unreported:
            return None
        self._unreported = False
        return prefix_strip_note()


PREFIX_STRIP_DETAIL = "The backend repeated the prefill at the start of its reply; removed it (Anthropic " \
                      "replies hold only the continuation)."


def prefix_strip_note() -> RewriteNote:
    return RewriteNote("prefill.strip_repeated_prefix", "content", PREFIX_STRIP_DETAIL)
