"""GET /v1/models and /v1/models/{id}: the routes a key may use, as Anthropic's model objects."""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from gateway.pipeline.admission import key_authenticate
from gateway.snapshot import RouteInfo, snapshot_get
from translation.errors import ApiError


def _model_info(route: RouteInfo, name: str) -> dict[str, Any]:
    info: dict[str, Any] = {"type": "model", "id": name, "display_name": name, "created_at": route.created_at}
    if route.capabilities.context_window > 0:  # Claude Code sizes its context from it
        info["max_input_tokens"] = route.capabilities.context_window
    return info


async def models_list(request: HttpRequest, *, limit: int, after_id: str | None,
                      before_id: str | None) -> HttpResponseBase:
    snap = await snapshot_get()
    key = key_authenticate(request, snap)
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit: must be between 1 and 1000")
    seen: set[str] = set()
    models = []
    for route in snap.routes:
        # A glob route lists its aliases, each only if requests for it really reach this route.
        names = route.aliases if route.is_glob else (route.pattern,)
        for name in names:
            if name not in seen and key.allows(name) and (not route.is_glob or snap.route_resolve(name) is route):
                seen.add(name)
                models.append(_model_info(route, name))
    ids = [m["id"] for m in models]
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else len(ids)
        models = models[start:]
        page, has_more = models[:limit], len(models) > limit
    elif before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        models = models[:end]
        page, has_more = models[-limit:], len(models) > limit
    else:
        page, has_more = models[:limit], len(models) > limit
    body = {"data": page, "has_more": has_more,
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}
    return HttpResponse(orjson.dumps(body), content_type="application/json")


async def model_get(request: HttpRequest, *, model_id: str) -> HttpResponseBase:
    snap = await snapshot_get()
    key = key_authenticate(request, snap)
    if not key.allows(model_id):
        raise ApiError(404, f"model: {model_id!r} not found")  # as if absent, like the list
    for route in snap.routes:
        if not route.is_glob and route.pattern == model_id:
            return HttpResponse(orjson.dumps(_model_info(route, route.pattern)), content_type="application/json")
    matched = snap.route_resolve(model_id)
    if matched is None:
        raise ApiError(404, f"model: {model_id!r} not found")
    return HttpResponse(orjson.dumps(_model_info(matched, model_id)), content_type="application/json")
