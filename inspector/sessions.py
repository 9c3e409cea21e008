"""A Claude Code session as a thread: its exchanges (one per request) grouped by agent
(``x-claude-code-agent-id``), each subagent under the turn of its parent agent
(``x-claude-code-parent-agent-id``) that spawned it, what every turn changed in the prompt
(``inspector.turns``), and the totals.

The scalar columns come from one query on the ``(session_id, created_at)`` index; the request
bodies are read only for the between-turns comparison, a few exchanges at a time, keeping the
previous body of each agent and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.admin.utils import quote
from django.db.models import Count, Max, Min, Sum
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from inspector.facts import body_decoded
from inspector.models import FAILED, Exchange
from inspector.storage import exchanges_load
from inspector.turns import TurnChange, turn_change

# A session page shows at most this many turns (the first ones) and says so.
TURNS_MAX = 500
# Exchanges whose bodies are decoded at once for the comparison.
_BODY_BATCH = 20
# Claude Code's tool that starts a subagent (named Agent in later versions).
SPAWN_TOOLS = frozenset({"Task", "Agent"})
SESSION_ID_MAX = Exchange._meta.get_field("session_id").max_length or 100

TURN_COLUMNS = ("id", "created_at", "session_id", "agent_id", "parent_agent_id", "user_id", "client_agent",
                "client_model", "backend_name", "upstream_model", "stream", "status", "stop_reason", "error_type",
                "error_message", "disconnected", "input_tokens", "output_tokens", "cache_read_tokens",
                "cache_creation_tokens", "rewrite_count", "ttft_ms", "first_event_ms", "duration_ms")


def exchange_url(exchange_id: str) -> str:
    return reverse("admin:inspector_exchange_change", args=[quote(exchange_id)])


def session_url(session_id: str) -> str:
    try:
        return reverse("admin:inspector_exchange_session", args=[session_id])
    except NoReverseMatch:  # a session id with a slash cannot be in the path
        return ""


def session_list_url(session_id: str) -> str:
    return reverse("admin:inspector_exchange_changelist") + "?" + urlencode({"session_id": session_id})


def duration_label(ms: float) -> str:
    """A duration as a person reads it: "242 ms", "12.3 s", "4 min 12 s", "1 h 03 min"."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second:02d} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min"


@dataclass
class Totals:
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    errors: int = 0
    prefix_breaks: int = 0
    duration_ms: float = 0.0

    def add(self, exchange: Exchange) -> None:
        self.turns += 1
        self.input_tokens += exchange.input_tokens or 0
        self.output_tokens += exchange.output_tokens or 0
        self.cache_read_tokens += exchange.cache_read_tokens or 0
        self.cache_creation_tokens += exchange.cache_creation_tokens or 0
        self.errors += exchange.failed
        self.duration_ms += exchange.duration_ms or 0.0

    @property
    def duration(self) -> str:
        return duration_label(self.duration_ms)

    def merge(self, other: Totals) -> None:
        for name in ("turns", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
                     "errors", "prefix_breaks", "duration_ms"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class SessionTurn:
    exchange: Exchange
    number: int  # 1-based, within its agent
    offset_ms: float = 0.0  # since the session's first request
    client: TurnChange | None = None  # what the client's request changed
    backend: TurnChange | None = None  # what the request the backend got changed
    subagents: list[SessionAgent] = field(default_factory=list)

    @property
    def url(self) -> str:
        return exchange_url(self.exchange.id)

    @property
    def offset(self) -> str:
        return "+" + duration_label(self.offset_ms)

    @property
    def failed(self) -> bool:
        return self.exchange.failed

    @property
    def breaks_prefix(self) -> bool:
        return any(c is not None and c.broken is not None for c in (self.client, self.backend))

    @property
    def backend_only_break(self) -> bool:
        """The gateway's translation broke a prefix the client kept."""
        return (self.backend is not None and self.backend.broken is not None
                and (self.client is None or self.client.broken is None))


@dataclass
class SessionAgent:
    agent_id: str
    parent_agent_id: str
    turns: list[SessionTurn] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    spawned_by_task: bool = False  # the parent's next request re-sends a Task tool call

    @property
    def first_at(self) -> datetime:
        return self.turns[0].exchange.created_at


@dataclass
class SessionThread:
    session_id: str
    agents: list[SessionAgent]  # the roots (normally one: the main agent), subagents nested in turns
    agent_count: int
    totals: Totals
    first_at: datetime
    last_at: datetime
    user_id: str = ""
    client_agent: str = ""
    capped: bool = False  # more than TURNS_MAX turns: the first TURNS_MAX are shown

    @property
    def span(self) -> str:
        return duration_label((self.last_at - self.first_at).total_seconds() * 1000)

    @property
    def busy(self) -> str:
        """The time the session's requests took, added up."""
        return duration_label(self.totals.duration_ms)

    @property
    def list_url(self) -> str:
        return session_list_url(self.session_id)


def session_thread(session_id: str, *, turns_max: int = TURNS_MAX) -> SessionThread | None:
    """The session's thread, or None when no exchange carries this session id."""
    rows = list(Exchange.objects.filter(session_id=session_id).order_by("created_at", "id")
                .only(*TURN_COLUMNS)[: turns_max + 1])
    if not rows:
        return None
    capped = len(rows) > turns_max
    rows = rows[:turns_max]
    agents: dict[str, SessionAgent] = {}
    turns: list[SessionTurn] = []
    for exchange in rows:
        agent = agents.get(exchange.agent_id)
        if agent is None:
            agent = agents[exchange.agent_id] = SessionAgent(exchange.agent_id, exchange.parent_agent_id)
        turn = SessionTurn(exchange, number=len(agent.turns) + 1,
                           offset_ms=(exchange.created_at - rows[0].created_at).total_seconds() * 1000)
        agent.turns.append(turn)
        agent.totals.add(exchange)
        turns.append(turn)
    turns_compare(turns)
    for turn in turns:
        if turn.breaks_prefix:
            agents[turn.exchange.agent_id].totals.prefix_breaks += 1
    roots = _nest(agents)
    totals = Totals()
    for agent in agents.values():
        totals.merge(agent.totals)
    named = next((e for e in rows if e.user_id), rows[0])
    return SessionThread(session_id=session_id, agents=roots, agent_count=len(agents), totals=totals,
                         first_at=rows[0].created_at, last_at=rows[-1].created_at, user_id=named.user_id,
                         client_agent=next((e.client_agent for e in rows if e.client_agent), ""), capped=capped)


def _parent(agent: SessionAgent, agents: dict[str, SessionAgent]) -> SessionAgent | None:
    """The agent that spawned ``agent``: the one its parent id names, else (a main agent that sent
    no agent id of its own) the agent without an id; None for a root."""
    if not agent.parent_agent_id or not agent.agent_id:
        return None
    return agents.get(agent.parent_agent_id) or agents.get("")


def _nest(agents: dict[str, SessionAgent]) -> list[SessionAgent]:
    """Each subagent under the last turn of its parent sent before the subagent's first turn;
    an agent without a parent here (the main agent, a parent not recorded, a parent chain that
    comes back to itself) is a root."""
    roots: list[SessionAgent] = []
    for agent in agents.values():
        parent = _parent(agent, agents)
        seen, up = {agent.agent_id}, parent
        while up is not None and up.agent_id not in seen:
            seen.add(up.agent_id)
            up = _parent(up, agents)
        if parent is None or up is not None:
            roots.append(agent)
            continue
        before = [t for t in parent.turns if t.exchange.created_at <= agent.first_at]
        spawner = before[-1] if before else parent.turns[0]
        spawner.subagents.append(agent)
        following = parent.turns[spawner.number:spawner.number + 1]
        agent.spawned_by_task = bool(following and following[0].client is not None
                                     and SPAWN_TOOLS.intersection(following[0].client.tool_calls))
    return sorted(roots, key=lambda a: a.first_at)


def _bodies(exchange: Exchange) -> tuple[Any, Any]:
    return body_decoded(exchange.client_request or {}), body_decoded(exchange.upstream_request or {})


def _change(seen: bool, previous: Any, current: Any) -> TurnChange:
    if seen and previous is None:
        return TurnChange(kind="unknown", reason="the previous request's body was not recorded")
    if current is None:
        return TurnChange(kind="unknown", reason="this request's body was not recorded")
    return turn_change(previous, current)


def turns_compare(turns: list[SessionTurn]) -> None:
    """Fill ``client`` and ``backend`` of every turn (in time order) from the bodies, read a few
    exchanges at a time; only the previous bodies of each agent are kept. The backend's request
    is compared with the agent's previous request that reached a backend (a rejected request
    never did: its ``backend`` stays None)."""
    clients: dict[str, Any] = {}
    backends: dict[str, Any] = {}
    for start in range(0, len(turns), _BODY_BATCH):
        batch = turns[start:start + _BODY_BATCH]
        loaded = list(Exchange.objects.filter(pk__in=[t.exchange.id for t in batch])
                      .only("id", "client_request", "upstream_request", "bodies"))
        exchanges_load(loaded)
        by_id = {e.id: e for e in loaded}
        for turn in batch:
            body = by_id.get(turn.exchange.id)
            client, backend = _bodies(body) if body is not None else (None, None)
            agent = turn.exchange.agent_id
            turn.client = _change(agent in clients, clients.get(agent), client)
            clients[agent] = client
            if backend is not None:
                turn.backend = _change(agent in backends, backends.get(agent), backend)
            if backend is not None or turn.exchange.backend_name:
                backends[agent] = backend


def sessions_recent(*, days: int = 7, limit: int = 100) -> list[dict[str, Any]]:
    """The sessions active in the last ``days``, most recent first: one GROUP BY session_id."""
    since = timezone.now() - timedelta(days=days)
    rows = (Exchange.objects.filter(created_at__gte=since).exclude(session_id="").values("session_id")
            .annotate(turns=Count("id"), agents=Count("agent_id", distinct=True),
                      input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
                      cache_read_tokens=Sum("cache_read_tokens"), errors=Count("id", filter=FAILED),
                      first_at=Min("created_at"), last_at=Max("created_at"), user_id=Max("user_id"))
            .order_by("-last_at")[:limit])
    return [{**row, "url": session_url(row["session_id"])} for row in rows]


def session_panel_context(exchange: Exchange) -> dict[str, Any] | None:
    """The exchange page's session panel: this turn's session and agent, the agent's previous and
    next turns, and what this turn changed. ``exchange``'s bodies must be loaded already
    (``exchanges_load``, as the exchange page does); None when it belongs to no session."""
    if not exchange.session_id:
        return None
    same_agent = Exchange.objects.filter(session_id=exchange.session_id, agent_id=exchange.agent_id)
    earlier = same_agent.filter(created_at__lt=exchange.created_at).order_by("-created_at")
    previous = earlier.only("id", "backend_name", "client_request", "upstream_request", "bodies").first()
    next_id = (same_agent.filter(created_at__gt=exchange.created_at).order_by("created_at")
               .values_list("id", flat=True).first())
    client, backend = _bodies(exchange)
    before_client = before_backend = None
    if previous is not None:
        exchanges_load([previous])
        before_client, before_backend = _bodies(previous)
    reached = previous is not None and (before_backend is not None or bool(previous.backend_name))
    if backend is not None and previous is not None and not reached:
        # The previous turn never reached a backend (rejected): compare with the last that did.
        older = earlier.exclude(backend_name="").only("id", "client_request", "upstream_request", "bodies").first()
        if older is not None:
            exchanges_load([older])
            before_backend, reached = _bodies(older)[1], True
    return {
        "session_id": exchange.session_id, "session_url": session_url(exchange.session_id),
        "session_list_url": session_list_url(exchange.session_id),
        "agent_id": exchange.agent_id, "parent_agent_id": exchange.parent_agent_id,
        "turn_number": earlier.count() + 1,
        "previous_id": previous.id if previous else "", "previous_url": exchange_url(previous.id) if previous else "",
        "next_id": next_id or "", "next_url": exchange_url(next_id) if next_id else "",
        "client": _change(previous is not None, before_client, client),
        "backend": _change(reached, before_backend, backend) if backend is not None else None,
    }
