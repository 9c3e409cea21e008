"""One pooled client serves every user of a backend: a cookie a backend (or the load balancer in
front of it) sets while answering one user must never be sent with another user's request."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, user_request
from tests.security.conftest import api_post

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_cookie_set_by_a_backend_is_never_replayed_on_later_requests(
        gateway_setup: str, upstream: Upstream) -> None:
    upstream.handler = lambda request: httpx.Response(
        200, json=chat_completion("Hi"),
        headers=[("set-cookie", "AWSALB=user-a-sticky; Path=/"), ("set-cookie", "session=user-a; Path=/")],
    )
    first = await api_post(user_request(), key=KEY)
    second = await api_post(user_request(), key=KEY)
    assert first.status_code == second.status_code == 200
    assert len(upstream.requests) == 2
    assert "cookie" not in upstream.requests[1].headers, upstream.requests[1].headers
