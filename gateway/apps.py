from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from gateway.snapshot import RouteInfo
    from inspector.recorder import ExchangeRecord


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gateway import signals  # noqa: F401  (connects config-change signals)
        from gateway.ids import id_new
        from gateway.snapshot import snapshot_build
        from inspector.hooks import hooks_register

        # The inspector never imports the gateway (tests/test_architecture.py): it is handed
        # what it needs from here, in every process that loads the apps (server, tests, commands).
        hooks_register(route_table=snapshot_build, replay=_replay, count_tokens_replay=_count_tokens_replay,
                       on_written=_keys_used, id_new=id_new)


async def _replay(raw: bytes, route: RouteInfo, record: ExchangeRecord) -> None:
    from gateway.pipeline import messages_replay  # the whole pipeline: loaded on first use only

    await messages_replay(raw, route, record)


async def _count_tokens_replay(raw: bytes, route: RouteInfo, record: ExchangeRecord) -> None:
    from gateway.pipeline import count_tokens_replay

    await count_tokens_replay(raw, route, record)


def _keys_used(key_ids: set[int]) -> None:
    from gateway.services import apikeys_touch

    apikeys_touch(key_ids=key_ids)
