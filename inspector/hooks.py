"""What the inspector needs from the application it records, declared here and handed over at
start-up (``gateway.apps.GatewayConfig.ready`` calls ``hooks_register``), so the inspector never
imports the gateway: the gateway depends on the inspector, not the other way round
(tests/test_architecture.py enforces it).

- ``route_table()``: the routes as configured now (the replay form's choices, the route a replay
  takes, the capabilities a fixture export names);
- ``replay(raw, route, record)``: send a stored request body again through one of those routes,
  recording into ``record``;
- ``count_tokens_replay(raw, route, record)``: the same for a stored count_tokens body;
- ``on_written(key_ids)``: after a batch is stored, with the API key ids it used (their last use);
- ``id_new(prefix)``: a new exchange id, shaped like the ones the API hands out;
- ``on_stored(records, began, ended)``: after a batch is stored, its records and when its write
  began and ended (ns since the epoch): the trace's ``inspector write`` spans (set by
  ``gateway.tracing`` while it runs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from translation.capabilities import Capabilities

if TYPE_CHECKING:
    from inspector.recorder import ExchangeRecord


class RouteBackend(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def preset(self) -> str: ...
    @property
    def capabilities(self) -> Capabilities: ...


class Route(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def pattern(self) -> str: ...
    @property
    def upstream_model(self) -> str: ...
    @property
    def backend(self) -> RouteBackend: ...
    @property
    def capabilities(self) -> Capabilities: ...


class RouteTable(Protocol):
    """The routing part of the gateway's configuration snapshot."""

    @property
    def routes(self) -> Sequence[Route]: ...
    @property
    def backends(self) -> Mapping[str, RouteBackend]: ...
    def route_resolve(self, model: str) -> Route | None: ...


# ``route`` is one of ``route_table().routes`` (or what its ``route_resolve`` returned).
Replay = Callable[[bytes, Any, "ExchangeRecord"], Awaitable[None]]


@dataclass
class InspectorHooks:
    route_table: Callable[[], RouteTable] | None = None
    replay: Replay | None = None
    count_tokens_replay: Replay | None = None
    on_written: Callable[[set[int]], None] | None = None
    id_new: Callable[[str], str] | None = None
    on_stored: Callable[[list[ExchangeRecord], int, int], None] | None = None

    def routes_now(self) -> RouteTable:
        return _needed(self.route_table, "route_table")()

    def replay_run(self, endpoint: str = "messages") -> Replay:
        if endpoint == "count_tokens":
            return _needed(self.count_tokens_replay, "count_tokens_replay")
        return _needed(self.replay, "replay")

    def exchange_id(self, prefix: str) -> str:
        return _needed(self.id_new, "id_new")(prefix)


def _needed(value: Any, name: str) -> Any:
    if value is None:
        raise RuntimeError(f"inspector: no {name} hook registered (inspector.hooks.hooks_register)")
    return value


hooks = InspectorHooks()


def hooks_register(*, route_table: Callable[[], RouteTable], replay: Replay,
                   on_written: Callable[[set[int]], None], id_new: Callable[[str], str],
                   count_tokens_replay: Replay | None = None) -> None:
    hooks.route_table, hooks.replay, hooks.on_written, hooks.id_new = route_table, replay, on_written, id_new
    hooks.count_tokens_replay = count_tokens_replay
