"""What the client asked for with ``thinking`` and ``output_config.effort``, resolved once.

Clients combine these inconsistently (Claude Code subagents send ``thinking: disabled`` with an
effort still set), so every backend kind reads the same resolved ``ThinkingIntent`` and maps it
to its own knob (README, What is translated).
"""

from __future__ import annotations

from dataclasses import dataclass

from translation.notes import RewriteNote
from translation.schemas import MessagesRequest

EFFORTS = ("low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True, slots=True)
class ThinkingIntent:
    # True: think; False: do not; None: the client said nothing (backend default).
    enabled: bool | None
    # Anthropic effort (low … max), from output_config.effort; None when not given.
    effort: str | None = None
    # budget_tokens of thinking: enabled.
    budget: int | None = None

    @property
    def effort_or_budget(self) -> str | None:
        """The effort, or one derived from the budget (< 4k low, < 16k medium, else high)."""
        if self.effort:
            return self.effort
        if self.budget is None:
            return None
        return "low" if self.budget < 4096 else "medium" if self.budget < 16384 else "high"


def thinking_intent(req: MessagesRequest, notes: list[RewriteNote] | None = None) -> ThinkingIntent:
    config = req.thinking
    effort = (req.output_config or {}).get("effort")
    effort = effort if isinstance(effort, str) and effort in EFFORTS else None
    if config is None:
        return ThinkingIntent(enabled=None, effort=effort)
    if config.type == "disabled":
        if effort and notes is not None:
            notes.append(RewriteNote("thinking.disabled_wins", "output_config.effort",
                                     f"thinking is disabled, so effort {effort!r} does not turn it on."))
        return ThinkingIntent(enabled=False)
    return ThinkingIntent(enabled=True, effort=effort,
                          budget=config.budget_tokens if config.type == "enabled" else None)
