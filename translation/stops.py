"""Stop sequences the backend cannot report, matched by the gateway (capability ``stop_sequences``).

The Responses API has no stop sequences at all, and most Chat Completions servers (llama.cpp
without ``__verbose``, Ollama, OpenAI) stop at a sequence without saying which one, so a client
would get ``end_turn`` where Anthropic answers ``stop_reason: "stop_sequence"`` with the sequence.
Where the backend cannot say, the gateway does not send the sequences: it watches the text, cuts
it at the first match (the sequence itself is not part of the reply, as in Anthropic's API) and
ends the message there.
"""

from __future__ import annotations


class StopScanner:
    """Text is cut at the first match of any stop sequence.

    Incremental: ``feed`` returns the text that can no longer be part of a match and holds back
    only the longest tail that is a prefix of some stop sequence; once a sequence matched,
    ``matched`` names it and everything after it is discarded.
    """

    def __init__(self, stops: list[str] | None) -> None:
        self.stops = [s for s in stops or () if s]
        self.held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        if self.matched is not None:
            return ""
        if not self.stops:
            return text
        combined = self.held + text
        best: tuple[int, int] | None = None
        for order, stop in enumerate(self.stops):
            at = combined.find(stop)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, order)
        if best is not None:
            self.matched = self.stops[best[1]]
            self.held = ""
            return combined[: best[0]]
        keep = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(combined)), keep, -1):
                if combined.endswith(stop[:k]):
                    keep = k
                    break
        self.held = combined[len(combined) - keep:] if keep else ""
        return combined[: len(combined) - keep]

    def flush(self) -> str:
        """The held tail at the end of a text (it did not become a match)."""
        held, self.held = self.held, ""
        return held


def stop_matched_detail(stop: str) -> str:
    return f"Cut the output at stop sequence {stop!r} (matched by the gateway: the backend cannot say " \
           "which sequence stopped it) and ended the turn with stop_reason stop_sequence."
