"""Every change to backends, routes or keys bumps the config stamp and drops the local snapshot."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save

from gateway.models import ApiKey, Backend, ConfigStamp, Route, RouteTarget


def config_changed(sender: Any, **kwargs: Any) -> None:
    from gateway import snapshot

    if kwargs.get("update_fields") == frozenset({"last_used_at"}):
        return
    updated = ConfigStamp.objects.filter(pk=1).update(version=F("version") + 1)
    if not updated:
        ConfigStamp.objects.get_or_create(pk=1, defaults={"version": 1})
    snapshot.snapshot_invalidate()
    # Again once the change is committed: a request in between may have rebuilt from the rows
    # as they were before (the stamp check would catch that, but only after the interval).
    transaction.on_commit(snapshot.snapshot_invalidate)


for _model in (Backend, Route, RouteTarget, ApiKey):
    post_save.connect(config_changed, sender=_model, dispatch_uid=f"config-save-{_model.__name__}")
    post_delete.connect(config_changed, sender=_model, dispatch_uid=f"config-delete-{_model.__name__}")
