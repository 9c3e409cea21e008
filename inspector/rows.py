"""How an exchange reads in a list row: its time, endpoint, status and stream verdict. One home
for the stored list (inspector.admin_list) and the live tail (inspector.live), so both show
the same words for the same exchange."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.utils import timezone

Verdict = Literal["valid", "ended-with-error", "invalid", "none"]

# The endpoints the gateway serves, by the names the recorder gives them (the pipeline's name, or
# for a request refused before it, the path after /v1/).
ENDPOINT_NAMES = {"messages": "messages", "count_tokens": "count_tokens", "messages/count_tokens": "count_tokens",
                  "models": "models"}


def time_label(created_at: datetime, *, now: datetime | None = None) -> tuple[str, str]:
    """``02:35:10`` today, ``12-03 02:35`` another day (one line in a narrow column), and the
    full timestamp for the title."""
    local = timezone.localtime(created_at)
    today = timezone.localtime(now or timezone.now()).date()
    short = local.strftime("%H:%M:%S") if local.date() == today else local.strftime("%m-%d %H:%M")
    return short, local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + local.strftime(" %Z")


def endpoint_label(*, endpoint: str, method: str, path: str) -> str:
    """messages, count_tokens, models, or the path for anything else; the method unless POST."""
    name = ENDPOINT_NAMES.get(endpoint) or path.split("?", 1)[0] or f"/v1/{endpoint}"
    return name if method in ("", "POST") else f"{method} {name}"


def status_label(*, status: int, error_type: str, disconnected: bool) -> tuple[str, bool]:
    """The status as the list shows it, and whether the row is an error row: any status outside
    2xx, and a 200 whose stream ended with an error event (the client got an error after all)."""
    if status == 0:
        return "…", False
    if disconnected:
        return f"{status} client left", True
    if 200 <= status < 300:
        return (f"{status} · ended with {error_type}", True) if error_type else (str(status), False)
    return (f"{status} {error_type}" if error_type else str(status)), True


def verdict_of(*, valid: bool | None, error_type: str) -> Verdict:
    """The stream validator's verdict, told apart from how the stream ended: a well-formed stream
    that ended with an error event is not the same as one that finished."""
    if valid is None:
        return "none"
    if not valid:
        return "invalid"
    return "ended-with-error" if error_type else "valid"


VERDICT_LABELS: dict[Verdict, tuple[str, str]] = {
    "valid": ("✓", "well-formed stream"),
    "ended-with-error": ("✓ err", "well-formed, ended with an error event"),
    "invalid": ("✗", "malformed stream (see the exchange page)"),
    "none": ("—", "not a stream, or not checked"),
}


def attempt_outline(attempt: Any) -> str:
    """One attempt in a few words: its backend, its outcome and the backend's status."""
    if not isinstance(attempt, dict):
        return "?"
    status = attempt.get("status")
    words = [str(attempt.get("backend") or "?"), str(attempt.get("outcome") or "?")]
    return " ".join([*words, str(status)] if status is not None else words)


def failover_label(attempts: Any) -> tuple[str, str] | None:
    """The list's marker for an exchange that failed over (``↻3``: three attempts) and its title,
    the backends tried in order; None for one attempt, or a row written before attempts."""
    if not isinstance(attempts, list) or len(attempts) < 2:
        return None
    return f"↻{len(attempts)}", f"failed over, {len(attempts)} attempts: " + " → ".join(map(attempt_outline, attempts))
