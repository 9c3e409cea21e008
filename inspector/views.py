"""What the exchange page shows, built from one stored Exchange: diffs, stream lanes, the
message folded from the client's events, usage side by side, the validator's verdict, and the
exports (curl, JSON, test fixture). Replay sends a stored request through the pipeline again."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import orjson
from asgiref.sync import async_to_sync
from django.conf import settings

from inspector.diff import Change, json_diff, notes_attach, notes_unmatched
from inspector.hooks import Route, RouteTable, hooks
from inspector.models import Exchange
from inspector.recorder import ExchangeRecord, recorder
from inspector.storage import INTERNAL_COLUMNS
from translation.errors import ApiError
from translation.fold import message_fold
from translation.sse import SSEDecoder
from translation.usage import usage_merge
from translation.validate import stream_validate

FIXTURE_FORMAT = "dragoman-exchange-fixture/1"
REPLAY_HEADER = "x-dragoman-replay-of"
# Headers a reader needs to send the request again; the rest (user agents, lengths) is noise.
_CURL_HEADERS = ("content-type", "anthropic-version", "anthropic-beta", "x-api-key", "authorization")


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
    for chunk in upstream_chunks(exchange):
        for sse in decoder.feed(str(chunk[1]).encode()):
            if not sse.data or sse.data == "[DONE]":
                continue
            try:
                usage_merge(found, orjson.loads(sse.data))
            except orjson.JSONDecodeError:
                continue
    return found or None


def validator_verdict(exchange: Exchange) -> dict[str, Any]:
    """The stored verdict when the recorder keeps one, else the validator run on the stored events."""
    if hasattr(exchange, "valid"):
        valid = getattr(exchange, "valid", None)
        if valid is not None:
            return {"valid": bool(valid), "error": getattr(exchange, "validation_error", "") or "",
                    "source": "recorded"}
    events = client_events(exchange)
    if not events:
        return {"valid": None, "error": "", "source": "no events stored (not a stream, or not captured)"}
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


def exchange_page_context(exchange: Exchange) -> dict[str, Any]:
    changes, notes = request_diff(exchange)
    events = [e[2] for e in client_events(exchange)]
    message = message_fold(events) if events else _body(exchange.client_response)
    timings = exchange.timings or {}
    return {
        "exchange": exchange,
        "request_changes": change_rows(changes),
        "notes_unmatched": notes_unmatched(changes, notes),
        "response_changes": change_rows(response_diff(exchange)),
        "lanes": stream_lanes(exchange) if upstream_chunks(exchange) or events else None,
        "message_json": json_pretty(message) if message is not None else "",
        "usage_rows": usage_rows(upstream_usage(exchange), exchange.usage or {}),
        "verdict": validator_verdict(exchange),
        "timings": sorted(timings.items(), key=lambda kv: kv[1]),
        "curl": exchange_curl(exchange),
        "client_body_json": json_pretty(_body(exchange.client_request)),
        "upstream_body_json": json_pretty(_body(exchange.upstream_request)),
        "upstream_response_json": json_pretty(exchange.upstream_response or {}),
        "client_response_json": json_pretty(exchange.client_response or {}),
        "client_headers": sorted(((exchange.client_request or {}).get("headers") or {}).items()),
        "upstream_headers": sorted(((exchange.upstream_request or {}).get("headers") or {}).items()),
        "upstream_url": (exchange.upstream_request or {}).get("url", ""),
        "replay_of": ((exchange.client_request or {}).get("headers") or {}).get(REPLAY_HEADER, ""),
    }


def usage_rows(upstream: dict[str, Any] | None, translated: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, upstream value, translated value), OpenAI names mapped to Anthropic's."""
    upstream = upstream or {}
    aliases = {"input_tokens": ("prompt_tokens", "input_tokens"),
               "output_tokens": ("completion_tokens", "output_tokens")}
    rows = []
    for name, keys in aliases.items():
        rows.append((name, next((upstream[k] for k in keys if k in upstream), None), translated.get(name)))
    seen = {k for keys in aliases.values() for k in keys}
    for name in sorted(set(upstream) | set(translated)):
        if name not in seen and name not in aliases:
            rows.append((name, upstream.get(name), translated.get(name)))
    return rows


# -- exports --------------------------------------------------------------------------------

def exchange_curl(exchange: Exchange, base_url: str = "$ANTHROPIC_BASE_URL") -> str:
    """The client's request as a curl command; secrets stay masked as stored."""
    request = exchange.client_request or {}
    body = _body(request)
    if body is None:
        return ""
    headers = request.get("headers") or {}
    parts = ["curl", "-sN", "-X", request.get("method", "POST"), f'"{base_url}"{shlex.quote(request.get("path", "/v1/messages"))}']
    for name, value in headers.items():
        if name.lower() in _CURL_HEADERS:
            parts += ["-H", shlex.quote(f"{name.lower()}: {value}")]
    parts += ["--data-binary", shlex.quote(orjson.dumps(body).decode())]
    return " \\\n  ".join(parts)


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


def exchange_replay(exchange: Exchange, *, target: str, user: str) -> str:
    """Send the stored client request again (staff only, from the admin; no API key involved)
    and return the new exchange's id once it is stored."""
    request = exchange.client_request or {}
    body = _body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "this exchange has no stored request body to replay")
    route = _replay_route(hooks.routes_now(), str(body.get("model", "")), target)
    headers = {**(request.get("headers") or {}), REPLAY_HEADER: exchange.id}
    raw = orjson.dumps(body)
    record = ExchangeRecord(id=hooks.exchange_id("req_"), capture=settings.INSPECTOR_CAPTURE, key_name=f"replay by {user}")
    record.client_request = {"method": "POST", "path": request.get("path", "/v1/messages"),
                             "headers": headers, "body_raw": raw}
    async_to_sync(hooks.replay_run())(raw, route, record)
    recorder.flush(10)
    return record.id
