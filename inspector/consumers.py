"""The live tail's WebSocket: staff with view permission on exchanges receive every summary."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from inspector.live import GROUP


@database_sync_to_async
def _may_view(user: Any) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm("inspector.view_exchange"))


class LiveTailConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        if not await _may_view(self.scope.get("user")):
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def exchange_summary(self, message: dict[str, Any]) -> None:
        await self.send_json(message["exchange"])
