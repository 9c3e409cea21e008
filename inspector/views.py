"""What the exchange page shows, built from one stored Exchange: the conversation, diffs (rule
rewrites first, protocol mapping folded), stream lanes, the message folded from the client's
events, usage side by side, the timeline, the validator's verdict, and the exports (curl, JSON,
test fixture). Replay sends a stored (or edited) request through the pipeline again."""

from __future__ import annotations

import difflib
import itertools
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import orjson
from asgiref.sync import async_to_sync
from django.conf import settings

from inspector.conversation import message_conversation, request_conversation
from inspector.diff import (
    MAPPED,
    Change,
    changes_grouped,
    json_diff,
    mapping_pair,
    notes_attach,
    notes_unmatched,
)
from inspector.hooks import Route, RouteTable, hooks
from inspector.models import Exchange
from inspector.recorder import ExchangeRecord, recorder
from inspector.sessions import session_list_url, session_url
from inspector.storage import INTERNAL_COLUMNS
from translation.errors import ApiError
from translation.fold import message_fold
from translation.sse import SSEDecoder, SSELineTooLong
from translation.usage import usage_merge
from translation.validate import stream_validate

FIXTURE_FORMAT = "dragoman-exchange-fixture/1"
REPLAY_HEADER = "x-dragoman-replay-of"
# Headers a reader needs to send the request again; the rest (user agents, lengths) is noise.
_CURL_HEADERS = ("content-type", "anthropic-version", "anthropic-beta", "x-api-key", "authorization")
# The credentials curl takes from the reader's environment (the stored ones are masked).
_CURL_SECRETS = {"x-api-key": "$ANTHROPIC_API_KEY", "authorization": "Bearer $ANTHROPIC_AUTH_TOKEN"}
# A body longer than this goes in a file (``--data-binary @body.json``) the page links to.
CURL_INLINE_MAX = 4000
# Texts up to this size are compared word by word on the replay's page.
COMPARE_WORDS_MAX = 40_000
# A silence longer than this between two moments of an exchange is highlighted on its timeline.
STALL_MS = 1000.0


def json_pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str).decode()


def json_short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def client_events(exchange: Exchange) -> list[list[Any]]:
    events = (exchange.client_response or {}).get("events")
    return events if isinstance(events, list) else []


def upstream_chunks(exchange: Exchange) -> list[list[Any]]:
    chunks = (exchange.upstream_response or {}).get("chunks")
    return chunks if isinstance(chunks, list) else []


# -- the message the client saw -------------------------------------------------------------

def upstream_usage(exchange: Exchange) -> dict[str, Any] | None:
    """The usage the backend reported: the body's, or folded from the stream's chunks as the
    request path folds it (``translation.usage.usage_merge``)."""
    response = exchange.upstream_response or {}
    body = response.get("body")
    if isinstance(body, dict):
        usage = body.get("usage")
        return usage if isinstance(usage, dict) else None
    found: dict[str, Any] = {}
    decoder = SSEDecoder()
    events: list[Any] = []
    try:
        for chunk in upstream_chunks(exchange):
            events.extend(decoder.feed(str(chunk[1]).encode()))
        events.extend(decoder.flush())  # a last event without its blank line counts too, as the relay's does
    except SSELineTooLong:
        pass  # the stream failed there: the usage folded so far is what it reported
    for sse in events:
        if not sse.data or sse.data == "[DONE]":
            continue
        try:
            usage_merge(found, orjson.loads(sse.data))
        except orjson.JSONDecodeError:
            continue
    return found or None


def stream_error(exchange: Exchange) -> dict[str, Any] | None:
    """The ``error`` event a stream ended with (its ``error`` object), if it did."""
    events = client_events(exchange)
    last = events[-1][2] if events else None
    if isinstance(last, dict) and last.get("type") == "error":
        error = last.get("error")
        return error if isinstance(error, dict) else {"type": "error", "message": ""}
    return None


def validator_verdict(exchange: Exchange) -> dict[str, Any]:
    """The stored verdict when the recorder keeps one, else the validator run on the stored events.
    A well-formed stream that ended with an error event is no success: it says so."""
    error = stream_error(exchange)
    if error is not None:
        valid = getattr(exchange, "valid", None)
        return {"valid": valid, "ended_error": f"{error.get('type', 'error')}: {error.get('message', '')}",
                "error": getattr(exchange, "validation_error", "") or "",
                "source": "recorded" if valid is not None else "checked now"}
    if hasattr(exchange, "valid"):
        valid = getattr(exchange, "valid", None)
        if valid is not None:
            return {"valid": bool(valid), "error": getattr(exchange, "validation_error", "") or "",
                    "source": "recorded"}
    events = client_events(exchange)
    if not events:
        return {"valid": None, "error": "", "source": "no events stored (not captured)" if exchange.stream
                else "not streamed: no events to check"}
    problem = stream_validate(e[2] for e in events)
    return {"valid": problem is None, "error": problem or "", "source": "checked now"}


# -- the two streams, aligned ---------------------------------------------------------------

@dataclass
class LaneRow:
    index: int  # upstream chunk index; -1 for what the gateway sent before any chunk
    t_ms: float | None
    raw: str
    events: list[dict[str, Any]] = field(default_factory=list)
    gap_ms: float | None = None  # time since the previous chunk

    @property
    def held(self) -> bool:
        return self.index >= 0 and not self.events


def stream_lanes(exchange: Exchange) -> list[LaneRow]:
    chunks = upstream_chunks(exchange)
    rows = [LaneRow(-1, None, "")] + [LaneRow(i, c[0], str(c[1])) for i, c in enumerate(chunks)]
    for row, previous in zip(rows[2:], rows[1:], strict=False):
        if row.t_ms is not None and previous.t_ms is not None:
            row.gap_ms = round(row.t_ms - previous.t_ms, 3)
    for t_ms, index, event in client_events(exchange):
        row = rows[min(max(int(index), -1), len(rows) - 2) + 1]
        delay = round(t_ms - row.t_ms, 3) if row.t_ms is not None else None
        row.events.append({"t_ms": t_ms, "delay_ms": delay, "type": event.get("type"),
                           "text": json_short(event, 300)})
    return rows if rows[0].events else rows[1:]


# -- diffs ----------------------------------------------------------------------------------

def _body(part: dict[str, Any] | None) -> Any:
    part = part or {}
    return part.get("body", part.get("body_text"))


def request_diff(exchange: Exchange) -> tuple[list[Change], list[dict[str, str]]]:
    notes = list(exchange.notes or [])
    changes = notes_attach(json_diff(_body(exchange.client_request), _body(exchange.upstream_request)), notes)
    return changes, notes


def response_diff(exchange: Exchange) -> list[Change] | None:
    upstream, client = _body(exchange.upstream_response), _body(exchange.client_response)
    if upstream is None or client is None:
        return None
    return notes_attach(json_diff(upstream, client), list(exchange.notes or []))


def change_rows(changes: list[Change] | None) -> list[dict[str, Any]] | None:
    if changes is None:
        return None
    return [{"op": c.op, "path": c.path, "old": json_short(c.old), "new": json_short(c.new), "note": c.note}
            for c in changes]


def diff_split(changes: list[Change] | None) -> dict[str, Any] | None:
    """The changes a rewrite rule made (with its note), and the rest read as the protocol mapping."""
    if changes is None:
        return None
    ruled = [c for c in changes if c.note is not None]
    mapping = mapping_pair([c for c in changes if c.note is None])
    rows = []
    for change, count in changes_grouped(mapping):
        row = {"op": change.op, "path": change.path, "old": json_short(change.old), "new": json_short(change.new),
               "count": count, "moved": change.op == MAPPED and change.old == change.new}
        if count > 1:
            row["path"] = _path_generic(change.path)
        rows.append(row)
    return {"rules": change_rows(ruled), "mapping": rows, "count": len(mapping)}


def _path_generic(path: str) -> str:
    return re.sub(r"\[\d+\]", "[*]", path)


def exchange_rejected(exchange: Exchange) -> dict[str, Any] | None:
    """A request the gateway refused before anything went upstream: the error the client got."""
    if exchange.status < 400 or exchange.upstream_request or exchange.status == 499:
        return None
    sent = exchange.client_response or {}
    envelope = sent.get("body", sent.get("body_text"))
    error = envelope.get("error") if isinstance(envelope, dict) else None
    error = error if isinstance(error, dict) else {}
    return {"status": sent.get("status", exchange.status),
            "type": error.get("type") or exchange.error_type or "error",
            "message": error.get("message") or exchange.error_message,
            "envelope": json_pretty(envelope) if envelope is not None else "(not stored)"}


def session_panel(exchange: Exchange) -> dict[str, Any] | None:
    if not exchange.session_id:
        return None
    return {"id": exchange.session_id, "agent": exchange.agent_id, "parent": exchange.parent_agent_id,
            "url": session_url(exchange.session_id), "list_url": session_list_url(exchange.session_id)}


def _bodies_both(exchange: Exchange) -> bool:
    return _body(exchange.client_request) is not None and _body(exchange.upstream_request) is not None


def exchange_message(exchange: Exchange) -> Any:
    """The message the client got: folded from its events when streamed, else the body."""
    events = [e[2] for e in client_events(exchange)]
    return message_fold(events) if events else _body(exchange.client_response)


def exchange_page_context(exchange: Exchange) -> dict[str, Any]:
    rejected = exchange_rejected(exchange)
    changes, notes = request_diff(exchange)
    response_changes = response_diff(exchange)
    message = exchange_message(exchange) if rejected is None else None
    return {
        "exchange": exchange,
        "rejected": rejected,
        "session": session_panel(exchange),
        "conversation": request_conversation(_body(exchange.client_request)),
        "reply": message_conversation(message),
        "request_diff": diff_split(changes) if rejected is None and _bodies_both(exchange) else None,
        "notes_unmatched": notes_unmatched(changes, notes),
        "response_diff": diff_split(response_changes) if rejected is None else None,
        "lanes": stream_lanes(exchange) if upstream_chunks(exchange) or client_events(exchange) else None,
        "message_json": json_pretty(message) if message is not None else "",
        "usage_table": usage_table(exchange),
        "verdict": validator_verdict(exchange),
        "timeline": exchange_timeline(exchange),
        "attempts": exchange_attempts(exchange),
        "curl": exchange_curl(exchange),
        "curl_body_file": curl_body_file(exchange),
        "client_body_json": json_pretty(_body(exchange.client_request)),
        "client_body_stored": _body(exchange.client_request) not in (None, ""),
        "upstream_body_json": json_pretty(_body(exchange.upstream_request)),
        "upstream_response_json": json_pretty(exchange.upstream_response or {}),
        "client_response_json": json_pretty(exchange.client_response or {}),
        "client_headers": sorted(((exchange.client_request or {}).get("headers") or {}).items()),
        "upstream_headers": sorted(((exchange.upstream_request or {}).get("headers") or {}).items()),
        "upstream_url": (exchange.upstream_request or {}).get("url", ""),
        "replay_of": ((exchange.client_request or {}).get("headers") or {}).get(REPLAY_HEADER, ""),
    }


# -- upstream attempts ----------------------------------------------------------------------

def _ms_of(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def attempts_of(exchange: Exchange) -> list[dict[str, Any]]:
    """The exchange's upstream attempts as stored (none on a row written before they were)."""
    attempts = getattr(exchange, "attempts", None)
    return [a for a in attempts if isinstance(a, dict)] if isinstance(attempts, list) else []


def exchange_attempts(exchange: Exchange) -> list[dict[str, Any]] | None:
    """The attempts table of the exchange page: one row per target tried, in order, the last the
    one the client's answer came from. None when there is nothing to tell: no attempt recorded,
    or the route's only target answered at once."""
    attempts = attempts_of(exchange)
    if not attempts or (len(attempts) == 1 and attempts[0].get("reason") == "only target"):
        return None
    rows = []
    for number, attempt in enumerate(attempts, 1):
        started, ended = _ms_of(attempt.get("started_ms")), _ms_of(attempt.get("ended_ms"))
        group, weight = attempt.get("group"), attempt.get("weight")
        rows.append({
            "number": number, "backend": str(attempt.get("backend") or ""),
            "upstream_model": str(attempt.get("upstream_model") or ""),
            "group": "" if group in (None, "") else str(group), "weight": "" if weight is None else str(weight),
            "reason": str(attempt.get("reason") or ""), "outcome": str(attempt.get("outcome") or ""),
            "status": attempt.get("status"), "error": str(attempt.get("error") or ""),
            "error_type": str(attempt.get("error_type") or ""),
            "started_ms": started, "ended_ms": ended,
            "took_ms": round(ended - started, 1) if started is not None and ended is not None else None,
            "answered": number == len(attempts),
        })
    return rows


# -- usage and timeline ---------------------------------------------------------------------

# The backend's names for Anthropic's usage fields (OpenAI's Chat and Responses APIs).
_USAGE_ALIASES = {"input_tokens": ("input_tokens", "prompt_tokens"),
                  "output_tokens": ("output_tokens", "completion_tokens")}


def _usage_value(value: Any) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


def usage_table(exchange: Exchange) -> dict[str, Any]:
    """Usage field by field: what ``message_start`` announced, what the client got at the end
    (``message_delta``'s, or the body's), and what the backend reported; rows where the figures
    the client saw differ are marked."""
    start: dict[str, Any] | None = None
    for _, _, event in client_events(exchange):
        if isinstance(event, dict) and event.get("type") == "message_start":
            usage = (event.get("message") or {}).get("usage")
            start = usage if isinstance(usage, dict) else {}
            break
    final = {k: v for k, v in (exchange.usage or {}).items()}
    backend = exchange.upstream_usage or upstream_usage(exchange) or {}
    names = list(_USAGE_ALIASES)
    seen = {k for keys in _USAGE_ALIASES.values() for k in keys}
    for name in [*(start or {}), *final, *backend]:
        if name not in names and name not in seen:
            names.append(name)
    rows = []
    for name in names:
        keys = _USAGE_ALIASES.get(name, (name,))
        up = next((backend[k] for k in keys if k in backend), None)
        first = (start or {}).get(name)
        last = final.get(name)
        rows.append({"name": name, "start": _usage_value(first), "final": _usage_value(last),
                     "backend": _usage_value(up),
                     "differs": start is not None and first is not None and last is not None and first != last})
    return {"rows": rows, "streamed": start is not None}


def exchange_timeline(exchange: Exchange) -> dict[str, Any] | None:
    """A waterfall: the recorded moments (``timings``), every upstream chunk and client event on
    one time axis drawn to scale, the backend's silences over ``STALL_MS`` marked with their
    length and the pings the gateway sent during them."""
    marks = sorted(((str(k), float(v)) for k, v in (exchange.timings or {}).items()
                    if isinstance(v, int | float)), key=lambda kv: kv[1])
    chunks = [float(c[0]) for c in upstream_chunks(exchange) if isinstance(c[0], int | float)]
    events = [(float(e[0]), str(e[2].get("type", "")) if isinstance(e[2], dict) else "")
              for e in client_events(exchange) if isinstance(e[0], int | float)]
    if not marks and not chunks and not events:
        return None
    pings = [t for t, kind in events if kind == "ping"]
    # A silence is the backend's: the pings the gateway sent meanwhile are drawn inside it.
    attempts = attempts_of(exchange) if getattr(exchange, "failed_over", False) else []
    spans = [(a, start, _ms_of(a.get("ended_ms")) or start) for a in attempts
             if (start := _ms_of(a.get("started_ms"))) is not None]
    # A failed attempt that got a status heard from its backend when it ended; one given up on did not.
    answers = [end for a, _, end in spans if a.get("status") is not None]
    moments = sorted({0.0, *(t for _, t in marks), *chunks, *(t for t, kind in events if kind != "ping"), *answers})
    total = max(moments[-1], *pings, *(end for _, _, end in spans), float(exchange.duration_ms or 0), 0.001)

    def left(t: float) -> float:
        return round(100 * t / total, 3)

    stalls = []
    for before, after in itertools.pairwise(moments):
        if after - before > STALL_MS:
            stalls.append({"from_ms": round(before, 1), "to_ms": round(after, 1), "seconds": f"{(after - before) / 1000:.1f}",
                           "left": left(before), "width": round(left(after) - left(before), 3),
                           "pings": sum(1 for t in pings if before < t < after)})
    rows, previous = [], 0.0
    for name, t in marks:
        rows.append({"name": name, "t_ms": round(t, 1), "left": left(previous), "width": max(left(t) - left(previous), 0.2),
                     "gap_ms": round(t - previous, 1), "stall": t - previous > STALL_MS})
        previous = t
    tried = [{"left": left(start), "width": max(round(left(end) - left(start), 3), 0.5),
              "backend": str(a.get("backend") or "?"), "outcome": str(a.get("outcome") or "?"),
              "from_ms": round(start, 1), "to_ms": round(end, 1)} for a, start, end in spans]
    return {"total_ms": round(total, 1), "marks": rows, "stalls": stalls, "attempts": tried,
            "chunks": [left(t) for t in chunks],
            "events": [left(t) for t, kind in events if kind != "ping"],
            "pings": [{"left": left(t), "t_ms": round(t, 1)} for t in pings]}


# -- exports --------------------------------------------------------------------------------

def _curl_body(request: dict[str, Any]) -> bytes | None:
    if str(request.get("method", "POST")).upper() in ("GET", "HEAD"):
        return None
    body = _body(request)
    if body is None:
        return None
    return body.encode() if isinstance(body, str) else orjson.dumps(body)


def curl_body_file(exchange: Exchange) -> bool:
    """Whether curl reads the body from ``body.json`` (the page links to its download)."""
    body = _curl_body(exchange.client_request or {})
    return body is not None and len(body) > CURL_INLINE_MAX


def exchange_curl(exchange: Exchange, base_url: str = "$ANTHROPIC_BASE_URL") -> str:
    """The client's request as a curl command, one header per line: the credentials it sent are
    taken from the environment (``$ANTHROPIC_API_KEY``, ``$ANTHROPIC_AUTH_TOKEN``), never the
    stored masks; no body on a GET or HEAD; a long body is read from ``body.json``."""
    request = exchange.client_request or {}
    if not request:
        return ""
    method = str(request.get("method") or exchange.method or "POST").upper()
    path = str(request.get("path") or exchange.path or "/v1/messages")
    lines = [f'curl -sN -X {method} "{base_url}"{shlex.quote(path)}']
    for name, value in (request.get("headers") or {}).items():
        name = name.lower()
        if name in _CURL_SECRETS:
            lines.append(f'-H "{name}: {_CURL_SECRETS[name]}"')
        elif name in _CURL_HEADERS:
            lines.append("-H " + shlex.quote(f"{name}: {value}"))
    body = _curl_body(request)
    if body is not None:
        lines.append("--data-binary @body.json" if len(body) > CURL_INLINE_MAX
                     else "--data-binary " + shlex.quote(body.decode("utf-8", "replace")))
    return " \\\n  ".join(lines)


def curl_body(exchange: Exchange) -> bytes:
    """The body ``--data-binary @body.json`` reads: the client's body as stored."""
    return _curl_body(exchange.client_request or {}) or b""


def exchange_export(exchange: Exchange) -> dict[str, Any]:
    """Everything stored about the exchange (download JSON)."""
    data = {f.attname: getattr(exchange, f.attname) for f in Exchange._meta.concrete_fields
            if f.name not in INTERNAL_COLUMNS}
    data["created_at"] = exchange.created_at.isoformat()
    return data


def route_capabilities(snap: RouteTable, model: str, backend_name: str) -> dict[str, Any] | None:
    route = snap.route_resolve(model)
    if route is not None and route.backend.name == backend_name:
        return route.capabilities.as_dict()
    backend = snap.backends.get(backend_name)
    return backend.capabilities.as_dict() if backend is not None else None


def exchange_fixture(exchange: Exchange) -> dict[str, Any]:
    """A regression fixture: replaying ``upstream_response`` through the translator with these
    capabilities must give ``expected`` (see tests/inspector/test_fixture_export.py)."""
    upstream = exchange.upstream_response or {}
    client = exchange.client_response or {}
    message = client.get("message") if exchange.stream else client.get("body")
    return {
        "format": FIXTURE_FORMAT,
        "exchange_id": exchange.id,
        "backend": exchange.backend_name,
        "preset": exchange.preset,
        "capabilities": route_capabilities(hooks.routes_now(), exchange.client_model, exchange.backend_name),
        "upstream_model": exchange.upstream_model,
        "message_id": (message or {}).get("id", ""),
        "client_request": _body(exchange.client_request),
        "upstream_request": _body(exchange.upstream_request),
        "upstream_response": ({"status": upstream.get("status"), "chunks": [c[1] for c in upstream_chunks(exchange)]}
                              if exchange.stream else {"status": upstream.get("status"), "body": _body(upstream)}),
        "expected": ({"events": [e[2] for e in client_events(exchange)], "message": message}
                     if exchange.stream else {"body": message}),
        "notes": exchange.notes,
    }


# -- replay ---------------------------------------------------------------------------------

def replay_targets(snap: RouteTable) -> list[tuple[str, str]]:
    """(value, label) for the replay form: the model's own route, or any configured route."""
    return [("", "the route the model resolves to now")] + [
        (str(r.id), f"{r.pattern} → {r.backend.name} ({r.upstream_model or 'same model'})") for r in snap.routes
    ]


def _replay_route(snap: RouteTable, model: str, target: str) -> Route:
    if target:
        for route in snap.routes:
            if str(route.id) == target:
                return route
        raise ApiError(404, f"no route with id {target}")
    resolved = snap.route_resolve(model)
    if resolved is None:
        raise ApiError(404, f"model: no route for {model!r}")
    return resolved


_ENDPOINT_PATHS = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens"}


def replay_body(exchange: Exchange) -> str:
    """The client's request body as the edit-before-replay form shows it."""
    body = _body(exchange.client_request)
    return json_pretty(body) if isinstance(body, dict) else ""


def replay_body_parse(text: str) -> dict[str, Any]:
    """An edited request body: a JSON object, or an ``ApiError`` saying what is wrong with it."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the edited request is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the edited request must be a JSON object, not {type(body).__name__}")
    return body


def exchange_replay(exchange: Exchange, *, target: str, user: str, body: dict[str, Any] | None = None) -> str:
    """Send the stored client request again, or ``body`` in its place (an edit), through the
    pipeline of its endpoint (messages or count_tokens), staff only, from the admin, no API key
    involved; return the new exchange's id once it is stored."""
    request = exchange.client_request or {}
    if body is None:
        body = _body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "this exchange has no stored request body to replay")
    endpoint = "count_tokens" if exchange.endpoint == "count_tokens" else "messages"
    route = _replay_route(hooks.routes_now(), str(body.get("model", "")), target)
    headers = {**(request.get("headers") or {}), REPLAY_HEADER: exchange.id}
    raw = orjson.dumps(body)
    record = ExchangeRecord(id=hooks.exchange_id("req_"), endpoint=endpoint, capture=settings.INSPECTOR_CAPTURE,
                            key_name=f"replay by {user}")
    record.client_request = {"method": "POST", "path": request.get("path") or _ENDPOINT_PATHS[endpoint],
                             "headers": headers, "body_raw": raw}
    async_to_sync(hooks.replay_run(endpoint))(raw, route, record)
    recorder.flush(10)
    return record.id


def words_marked(old: str, new: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Both texts as (piece, differs) runs, word by word, so the page can mark what changed."""
    a, b = re.split(r"(\s+)", old), re.split(r"(\s+)", new)
    before: list[tuple[str, bool]] = []
    after: list[tuple[str, bool]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if i2 > i1:
            before.append(("".join(a[i1:i2]), tag != "equal"))
        if j2 > j1:
            after.append(("".join(b[j1:j2]), tag != "equal"))
    return before, after


def replay_comparison(original: Exchange, replayed: Exchange) -> dict[str, Any]:
    """What differs between the original's message and the replay's, path by path; in a changed
    text, the words that differ."""
    before, after = exchange_message(original), exchange_message(replayed)
    changes = json_diff(before, after) if before is not None and after is not None else []
    rows = change_rows(changes) or []
    for row, change in zip(rows, changes, strict=True):
        if isinstance(change.old, str) and isinstance(change.new, str) and len(change.old) + len(change.new) < COMPARE_WORDS_MAX:
            row["old_marks"], row["new_marks"] = words_marked(change.old, change.new)
    return {"rows": rows, "same": before is not None and after is not None and not changes,
            "before": json_pretty(before) if before is not None else "", "after": json_pretty(after) if after is not None else ""}
