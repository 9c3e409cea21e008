"""Claude Code's gateway contract over a real socket: ``HEAD /`` (its connectivity check, sent
before any request that carries a key) answers 2xx under daphne with no body bytes after the head."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.e2e


def test_head_on_the_root_answers_2xx_with_nothing_after_the_headers(gateway: Gateway) -> None:
    # A raw socket: an HTTP client library would discard a body sent to HEAD without saying so.
    url = urlsplit(gateway.url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
        conn.sendall(f"HEAD / HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 200 <= status < 300, head
    assert rest == b""
