"""One refresh mechanism for the config snapshot (gateway.snapshot.ConfigStore): requests wait
only for the first build and a rebuild after a change made here; a change made elsewhere (the
shared stamp moved) is picked up by the watcher's check, which a test triggers explicitly."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db.models import F

from gateway.models import ApiKey, ConfigStamp
from gateway.snapshot import store

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_change_made_elsewhere_is_served_after_the_watchers_check(gateway_setup: str) -> None:
    first = await store.get()
    assert await store.get() is first  # no query: the snapshot is served as it is

    def elsewhere() -> None:  # another instance's change: rows and stamp, no signal here
        ApiKey.objects.filter(name="tester").update(enabled=False)
        ConfigStamp.objects.filter(pk=1).update(version=F("version") + 1)

    await sync_to_async(elsewhere)()
    await sync_to_async(store.check)()  # what the watcher thread does twice per interval
    now = await store.get()
    assert now.version == first.version + 1
    assert [k.enabled for keys in now.keys_by_prefix.values() for k in keys] == [False]


async def test_an_unchanged_stamp_keeps_the_snapshot(gateway_setup: str) -> None:
    first = await store.get()
    await sync_to_async(store.check)()
    assert await store.get() is first


async def test_a_change_made_here_is_served_by_the_next_request(gateway_setup: str) -> None:
    first = await store.get()
    key = await ApiKey.objects.aget(name="tester")
    key.enabled = False
    await key.asave()  # the signal bumps the stamp and drops the snapshot
    now = await store.get()
    assert now is not first and now.version > first.version
