"""Rewrite notes: every change a translator makes to a payload says which rule made it."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class RewriteNote:
    rule: str  # e.g. "prefill.continue_final_message"
    path: str  # JSON path in the payload it changed, e.g. "messages[3]" or "continue_final_message"
    detail: str  # one sentence a person can read

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
