"""A body over DRAGOMAN_MAX_BODY_BYTES is refused without being received whole, over a real socket.

daphne itself reads no further than admission will (``gateway.asgi_handler.BoundedWebRequest``):
a Content-Length over the limit gets its 413 after the body's head, the part the inspector keeps
(or what of it arrives within a second), and a chunked upload as soon as it passes the limit.
The client here declares a gigabyte and sends a few KB, or streams chunks and never ends the
body: an answer at all, within the socket's timeout, shows the server did not wait for the rest;
the connection then closes. The exchange is recorded as for any body over the limit.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h11
import pytest

from tests.conftest import REPO
from tests.e2e.conftest import _database_url, _drop_database, daphne_serving, free_port

pytestmark = pytest.mark.e2e

KEY = "dgm_body_limit_key_0123456789abcd"
LIMIT = 256 * 1024  # DRAGOMAN_MAX_BODY_BYTES here
HEAD = 1000  # DRAGOMAN_INSPECTOR_MAX_BODY_BYTES: the head kept of a body over the limit
GIGABYTE = 1024 ** 3


@dataclass
class Served:
    port: int
    env: dict[str, str]

    def exchange(self, request_id: str) -> dict[str, Any]:
        """The stored Exchange as the inspector's model reads it (in a subprocess: the gateway's database)."""
        script = ("import json; from inspector.models import Exchange; "
                  f"x = Exchange.objects.filter(id={request_id!r}).first(); "
                  "print(json.dumps(x and {'status': x.status, 'error_type': x.error_type, "
                  "'client_request': x.client_request}))")
        deadline = time.monotonic() + 15
        while True:  # the writer stores it within its flush interval
            done = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=REPO, env=self.env,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            found: dict[str, Any] | None = json.loads(done.stdout.strip().splitlines()[-1])
            if found is not None:
                return found
            assert time.monotonic() < deadline, f"exchange {request_id} was not recorded"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("bodylimit")
    db_url, pg_name = _database_url(tmp)
    config = tmp / "dragoman.yaml"
    config.write_text(f"keys:\n  - name: body-limit\n    key: {KEY}\n")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "DRAGOMAN_SECRET_KEY": "body-limit", "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1", "DRAGOMAN_CONFIG": str(config), "DJANGO_SETTINGS_MODULE": "gateway.settings",
           "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05", "DRAGOMAN_MAX_BODY_BYTES": str(LIMIT),
           "DRAGOMAN_INSPECTOR_MAX_BODY_BYTES": str(HEAD)}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=120)
    try:
        with daphne_serving(url=f"http://127.0.0.1:{port}", port=port, env=env, log_path=tmp / "daphne.log"):
            yield Served(port=port, env=env)
    finally:
        if pg_name:
            _drop_database(db_url, pg_name)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    closed: bool  # the server said it would close the connection after its answer, and did


def upload(served: Served, *, headers: list[tuple[str, str]], parts: list[bytes], end: bool = False) -> Answer:
    """POST /v1/messages sending ``parts`` of a body (ended only if ``end``), then wait for the
    answer; the socket's timeout fails the test if the server waits for more."""
    client = h11.Connection(h11.CLIENT)
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(client.send(h11.Request(method="POST", target="/v1/messages", headers=[
            ("host", "127.0.0.1"), ("x-api-key", KEY), ("content-type", "application/json"), *headers])) or b"")
        for part in parts:
            sock.sendall(client.send(h11.Data(data=part)) or b"")
        if end:
            sock.sendall(client.send(h11.EndOfMessage()) or b"")
        response: h11.Response | None = None
        body = b""
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        assert response is not None
        # Said to close: within the timeout nothing more comes and the connection is closed (reset,
        # where the server closed it with the rest of the upload unread).
        closed = (b"connection", b"close") in response.headers and _closed(sock)
    return Answer(status=response.status_code, body=json.loads(body), closed=closed,
                  headers={name.decode(): value.decode() for name, value in response.headers})


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def json_head(size: int) -> bytes:
    return (b'{"model": "test-model", "max_tokens": 10, "messages": [{"role": "user", "content": "'
            + b"z" * size)


def assert_refused(answer: Answer, *, declared: int | None) -> None:
    assert answer.status == 413
    assert answer.body["type"] == "error" and answer.body["error"]["type"] == "request_too_large"
    sent = f" ({declared} bytes)" if declared else ""
    assert answer.body["error"]["message"].startswith(f"Request body{sent} is larger than the limit of {LIMIT} bytes")
    assert answer.body["request_id"] == answer.headers["request-id"]
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close" and answer.closed


@pytest.mark.parametrize("sent", [4096, 300], ids=["head-sent", "less-than-the-head-sent"])
def test_a_declared_gigabyte_is_refused_after_its_head_without_waiting_for_the_rest(served: Served,
                                                                                     sent: int) -> None:
    head = json_head(sent)[:sent]
    answer = upload(served, headers=[("content-length", str(GIGABYTE))], parts=[head])
    assert_refused(answer, declared=GIGABYTE)
    exchange = served.exchange(answer.headers["request-id"])
    assert (exchange["status"], exchange["error_type"]) == (413, "request_too_large")
    kept = min(sent, HEAD)
    assert exchange["client_request"]["body_truncated"] == {
        "_truncated": True, "kept": kept, "total": GIGABYTE,
        "reason": f"over the {LIMIT}-byte request limit (DRAGOMAN_MAX_BODY_BYTES)"}
    assert exchange["client_request"]["body_text"].encode() == head[:kept]


def test_a_chunked_upload_is_refused_once_it_passes_the_limit(served: Served) -> None:
    body = json_head(LIMIT + 64 * 1024)
    parts = [body[i:i + 16384] for i in range(0, len(body), 16384)]
    answer = upload(served, headers=[("transfer-encoding", "chunked")], parts=parts)  # the body never ends
    assert_refused(answer, declared=None)
    exchange = served.exchange(answer.headers["request-id"])
    assert (exchange["status"], exchange["error_type"]) == (413, "request_too_large")
    marker = exchange["client_request"]["body_truncated"]
    assert (marker["kept"], marker["total"]) == (HEAD, None)
    assert exchange["client_request"]["body_text"].encode() == body[:HEAD]


def test_a_body_within_the_limit_is_still_read_whole(served: Served) -> None:
    body = json_head(LIMIT // 2) + b'"}]}'
    answer = upload(served, headers=[("transfer-encoding", "chunked")],
                    parts=[body[i:i + 16384] for i in range(0, len(body), 16384)], end=True)
    # Past the body limit the request is read and parsed: this gateway has no route for it.
    assert answer.status == 404 and "no route for 'test-model'" in answer.body["error"]["message"]
    assert answer.headers.get("connection") != "close"
