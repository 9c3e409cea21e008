"""The live tail: staff receive every exchange summary over the WebSocket, others are refused."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User

from inspector.consumers import LiveTailConsumer
from inspector.live import live_publish
from inspector.recorder import ExchangeRecord

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(user: object) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveTailConsumer.as_asgi(), "/admin/inspector/exchange/live/ws")
    communicator.scope["user"] = user
    return communicator


async def test_staff_receive_in_flight_and_finished_exchanges() -> None:
    user = await sync_to_async(User.objects.create_superuser)("root", "root@example.com", "pw")
    communicator = await connect(user)
    connected, _ = await communicator.connect()
    assert connected
    record = ExchangeRecord(id="req_live", client_model="m", backend_name="b")
    live_publish(record, state="in-flight", stream=True)
    first = await communicator.receive_json_from(timeout=2)
    assert (first["id"], first["state"], first["stream"]) == ("req_live", "in-flight", True)
    record.status, record.stop_reason = 200, "end_turn"
    live_publish(record, state="done")
    second = await communicator.receive_json_from(timeout=2)
    assert (second["state"], second["status"], second["stop_reason"]) == ("done", 200, "end_turn")
    await communicator.disconnect()


async def test_anonymous_users_are_refused() -> None:
    communicator = await connect(AnonymousUser())
    connected, code = await communicator.connect()
    assert not connected and code == 4403


def test_publishing_outside_an_event_loop_is_a_no_op() -> None:
    live_publish(ExchangeRecord(id="req_sync"), state="done")  # no loop: nothing to do, no error


async def test_publishing_never_waits_for_the_channel_layer() -> None:
    record = ExchangeRecord(id="req_fast")
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(1000):
        live_publish(record, state="done")
    assert loop.time() - start < 1.0
    await asyncio.sleep(0)


async def test_a_summary_carries_the_stored_lists_columns_and_marks_a_failure() -> None:
    user = await sync_to_async(User.objects.create_superuser)("root2", "root2@example.com", "pw")
    communicator = await connect(user)
    assert (await communicator.connect())[0]
    record = ExchangeRecord(id="req_live_500", endpoint="count_tokens", key_hint="sk-…WXYZ", client_model="m")
    record.client_request = {"method": "POST", "path": "/v1/messages/count_tokens",
                             "headers": {"X-Claude-Code-Session-Id": "sess-1234"}}
    live_publish(record, state="in-flight", stream=False)
    first = await communicator.receive_json_from(timeout=2)
    assert (first["status_label"], first["is_error"], first["endpoint_label"]) == ("…", False, "count_tokens")
    assert (first["session_id"], first["key_hint"]) == ("sess-1234", "sk-…WXYZ")
    record.status, record.error_type = 500, "api_error"
    live_publish(record, state="done")
    done = await communicator.receive_json_from(timeout=2)
    assert (done["status_label"], done["is_error"], done["verdict"]) == ("500 api_error", True, "none")
    assert len(done["time"]) == len("02:35:10") and done["time_title"].startswith(done["created_at"][:10])
    await communicator.disconnect()
