"""Bad input, catalogued: every malformed request to /v1/messages and /v1/messages/count_tokens
gets Anthropic's error envelope with the right status and a message naming what to fix, never a
500, and the inspector stores exactly one Exchange for it holding everything the client sent.

The wrong-type and missing-field cases are generated from the request models' JSON Schema, so a
field added to ``translation.schemas`` is covered without touching this file. The 413 cases also
run through a real daphne (Content-Length and chunked), in test_body_limit_through_daphne below.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from tests.conftest import KEY, REPO
from translation.schemas import CountTokensRequest, MessagesRequest

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 256 * 1024  # DRAGOMAN_MAX_BODY_BYTES for these tests
MESSAGES, COUNT = "/v1/messages", "/v1/messages/count_tokens"
USER = [{"role": "user", "content": "Hi"}]


@dataclass(frozen=True)
class Bad:
    """One malformed request and what the client must get back."""

    name: str
    body: bytes
    status: int
    error_type: str
    fragment: str  # part of error.message: the field path or what to fix
    content_type: str = "application/json"
    endpoints: tuple[str, ...] = (MESSAGES, COUNT)


def _json(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _valid(endpoint_model: type[Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "test-model", "messages": USER}
    if endpoint_model is MessagesRequest:
        body["max_tokens"] = 100
    body.update(overrides)
    return body


def _image(data: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


TOOL_TURN = [{"role": "user", "content": "list files"},
             {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {}}]}]


def _catalogue() -> list[Bad]:
    both = [
        Bad("invalid JSON", b'{"model": "test-model", "messages": [', 400, "invalid_request_error", "not valid JSON"),
        Bad("empty body", b"", 400, "invalid_request_error", "empty"),
        Bad("array body", b"[1, 2]", 400, "invalid_request_error", "JSON object"),
        Bad("string body", b'"hello"', 400, "invalid_request_error", "JSON object"),
        Bad("null body", b"null", 400, "invalid_request_error", "JSON object"),
        Bad("empty messages", _json(model="test-model", max_tokens=10, messages=[]), 400, "invalid_request_error",
            "messages: List should have at least 1 item"),
        Bad("unknown role", _json(model="test-model", max_tokens=10, messages=[{"role": "robot", "content": "x"}]),
            400, "invalid_request_error", "messages.0.role: Unexpected role 'robot'"),
        Bad("unknown block type", _json(model="test-model", max_tokens=10, messages=[
            {"role": "user", "content": [{"type": "hologram", "text": "x"}]}]),
            400, "invalid_request_error", "messages.0.content.0: unknown block type 'hologram'"),
        Bad("block without type", _json(model="test-model", max_tokens=10, messages=[
            {"role": "user", "content": [{"text": "x"}]}]), 400, "invalid_request_error", "messages.0.content.0"),
        Bad("message not an object", _json(model="test-model", max_tokens=10, messages=["hi"]),
            400, "invalid_request_error", "messages.0: Input should be an object"),
        Bad("invalid base64 image", _json(model="test-model", max_tokens=10, messages=[
            {"role": "user", "content": [{"type": "text", "text": "see"}, _image("not base64!")]}]),
            400, "invalid_request_error", "messages.0.content.1.source.data: is not valid base64"),
        Bad("data URL as base64", _json(model="test-model", max_tokens=10, messages=[
            {"role": "user", "content": [_image("data:image/png;base64,iVBORw0KGgo=")]}]),
            400, "invalid_request_error", "no data: URL prefix"),
        Bad("empty base64 image", _json(model="test-model", max_tokens=10, messages=[
            {"role": "user", "content": [_image("")]}]),
            400, "invalid_request_error", "messages.0.content.0.source.data: is empty"),
        Bad("invalid base64 document", _json(model="test-model", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}]}]),
            400, "invalid_request_error", "messages.0.content.0.source.data: is not valid base64"),
        Bad("invalid base64 image in a tool result", _json(model="test-model", max_tokens=10, messages=[
            *TOOL_TURN, {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [_image("@@@@")]}]}]),
            400, "invalid_request_error", "messages.2.content.0.content.0.source.data"),
        Bad("tool_result without its tool_use", _json(model="test-model", max_tokens=10, messages=[
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"}]}]),
            400, "invalid_request_error", "messages.0.content.0: unexpected `tool_use_id` found in `tool_result`"),
        Bad("tool_result answering another id", _json(model="test-model", max_tokens=10, messages=[
            *TOOL_TURN, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2"}]}]),
            400, "invalid_request_error", "toolu_2"),
        Bad("deeply nested JSON", b'{"model": "test-model", "max_tokens": 10, "messages": [], "metadata": '
            + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid_request_error", "nested too deeply"),
        Bad("invalid UTF-8", b'{"model": "test-model", "max_tokens": 10, "messages": [{"role": "user", '
            b'"content": "caf\xe9 \xff"}]}', 400, "invalid_request_error", "not valid UTF-8: byte 0xe9"),
        Bad("NaN", b'{"model": "test-model", "max_tokens": 10, "temperature": NaN, "messages": '
            b'[{"role": "user", "content": "x"}]}', 400, "invalid_request_error", "NaN and Infinity"),
        Bad("huge model name", _json(model="m" * 100_000, max_tokens=10, messages=USER),
            400, "invalid_request_error", "model: String should have at most 256 characters"),
        Bad("huge string over the limit", _json(model="test-model", max_tokens=10,
                                                 messages=[{"role": "user", "content": "x" * (LIMIT + 10)}]),
            413, "request_too_large", f"larger than the limit of {LIMIT} bytes"),
        Bad("wrong content type", _json(model="test-model", max_tokens=10, messages=USER), 400,
            "invalid_request_error", "Content-Type must be application/json, not 'text/plain'",
            content_type="text/plain"),
        Bad("form content type", b"model=test-model&max_tokens=10", 400, "invalid_request_error",
            "Content-Type must be application/json", content_type="application/x-www-form-urlencoded"),
    ]
    messages_only = [
        Bad("negative max_tokens", _json(model="test-model", max_tokens=-1, messages=USER),
            400, "invalid_request_error", "max_tokens: Input should be greater than or equal to 0",
            endpoints=(MESSAGES,)),
        Bad("absurd max_tokens", _json(model="test-model", max_tokens=10**12, messages=USER),
            400, "invalid_request_error", "max_tokens: Input should be less than or equal to 1048576",
            endpoints=(MESSAGES,)),
        Bad("max_tokens beyond 64 bits", _json(model="test-model", max_tokens=10**30, messages=USER),
            400, "invalid_request_error", "max_tokens", endpoints=(MESSAGES,)),
    ]
    return both + messages_only + _generated(MessagesRequest, MESSAGES) + _generated(CountTokensRequest, COUNT)


# --- generated from the schema: a wrong JSON type for every top-level field, each required field missing


def _allowed_types(prop: dict[str, Any]) -> set[str]:
    if "anyOf" in prop or "oneOf" in prop:
        return set().union(*(_allowed_types(p) for p in prop.get("anyOf", prop.get("oneOf", []))))
    if "$ref" in prop:
        return {"object"}
    if "const" in prop or "enum" in prop:
        return {"string"}
    kind = prop.get("type")
    types = set(kind) if isinstance(kind, list) else {kind} if kind else {"object"}
    if "number" in types:
        types.add("integer")
    if types & {"integer", "number"}:
        # pydantic's lax mode (and Anthropic's validator, by its messages) reads true as 1: not wrong enough.
        types.add("boolean")
    return types


WRONG = {"object": {"wrong": "type"}, "array": ["wrong", "type"], "string": "wrong type", "integer": 12345,
         "boolean": True}


def _generated(model: type[Any], endpoint: str) -> list[Bad]:
    schema = model.model_json_schema()
    cases = []
    for name, prop in schema["properties"].items():
        allowed = _allowed_types(prop)
        for kind, value in WRONG.items():
            if kind not in allowed:
                body = _valid(model, **{name: value})
                cases.append(Bad(f"{name} as {kind}", json.dumps(body).encode(), 400, "invalid_request_error",
                                 f"{name}", endpoints=(endpoint,)))
    for name in schema["required"]:
        body = _valid(model)
        del body[name]
        cases.append(Bad(f"missing {name}", json.dumps(body).encode(), 400, "invalid_request_error",
                         f"{name}: Field required", endpoints=(endpoint,)))
    return cases


CATALOGUE = [(endpoint, bad) for bad in _catalogue() for endpoint in bad.endpoints]


@pytest.fixture(autouse=True)
def body_limit(settings: Any) -> None:
    settings.MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT


def test_the_catalogue_covers_every_top_level_field() -> None:
    names = {bad.name.split(" as ")[0] for _, bad in CATALOGUE if " as " in bad.name}
    assert names >= {"model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature", "top_p",
                     "top_k", "tools", "tool_choice", "thinking", "metadata", "output_config"}
    assert names >= set(MessagesRequest.model_fields)


@pytest.mark.parametrize(("endpoint", "bad"), CATALOGUE, ids=[f"{e.rsplit('/', 1)[1]}: {b.name}" for e, b in CATALOGUE])
async def test_bad_input_gets_a_clear_error_and_is_recorded(gateway_setup: str, recorded: Any, endpoint: str,
                                                            bad: Bad) -> None:
    response = await AsyncClient().post(endpoint, data=bad.body, content_type=bad.content_type,
                                        headers={"x-api-key": KEY})
    assert response.status_code == bad.status, response.content[:500]
    assert response["content-type"] == "application/json"
    envelope = json.loads(response.content)
    assert envelope["type"] == "error"
    assert envelope["error"]["type"] == bad.error_type
    assert bad.fragment in envelope["error"]["message"]
    assert len(envelope["error"]["message"]) < 600  # says what to fix; does not echo the input back
    assert envelope["request_id"] == response["request-id"]

    [exchange] = await recorded()
    assert exchange.id == response["request-id"]
    assert (exchange.status, exchange.error_type) == (bad.status, bad.error_type)
    assert exchange.error_message == envelope["error"]["message"]
    if bad.body:  # (the test client sends no Content-Type without a body)
        assert exchange.client_request["headers"]["Content-Type"] == bad.content_type
    assert body_as_stored(exchange.client_request, bad.body) == bad.body


def body_as_stored(part: dict[str, Any], raw: bytes) -> bytes:
    """The client's bytes as the inspector kept them (exact bytes for non-UTF-8, parsed JSON, text)."""
    if "body_base64" in part:
        return base64.b64decode(part["body_base64"])
    if "body_text" in part:
        return str(part["body_text"]).encode()
    assert "body" in part, part
    return raw if part["body"] == json.loads(raw) else json.dumps(part["body"]).encode()


async def test_a_body_over_the_limit_is_kept_with_an_explicit_marker(gateway_setup: str, recorded: Any,
                                                                    settings: Any) -> None:
    settings.INSPECTOR_MAX_BODY_BYTES = 1000
    raw = _json(model="test-model", max_tokens=10, messages=[{"role": "user", "content": "y" * (LIMIT + 1)}])
    response = await AsyncClient().post(MESSAGES, data=raw, content_type="application/json",
                                        headers={"x-api-key": KEY})
    assert response.status_code == 413
    assert f"({len(raw)} bytes) is larger than the limit of {LIMIT} bytes" in json.loads(response.content)["error"][
        "message"]
    [exchange] = await recorded()
    assert exchange.client_request["body_truncated"] == {
        "_truncated": True, "kept": 1000, "total": len(raw),
        "reason": f"over the {LIMIT}-byte request limit (DRAGOMAN_MAX_BODY_BYTES)"}
    assert exchange.client_request["body_text"].encode() == raw[:1000]


async def test_a_non_utf8_body_keeps_its_bytes_but_not_the_key(gateway_setup: str, recorded: Any) -> None:
    raw = b'{"model": "\xff", "note": "' + KEY.encode() + b'"}'
    response = await AsyncClient().post(MESSAGES, data=raw, content_type="application/json",
                                        headers={"x-api-key": KEY})
    assert response.status_code == 400
    [exchange] = await recorded()
    stored = base64.b64decode(exchange.client_request["body_base64"])
    assert stored == raw.replace(KEY.encode(), b"***" + KEY[-4:].encode())
    assert KEY not in json.dumps(exchange.client_request)


@pytest.mark.parametrize(("method", "path", "status", "fragment"), [
    ("GET", MESSAGES, 405, "Method GET not allowed"),
    ("PUT", COUNT, 405, "Method PUT not allowed"),
    ("POST", "/v1/message", 404, "Not found: POST /v1/message"),
    ("GET", "/v1/models?limit=0", 400, "limit: Input should be greater than or equal to 1"),
    ("GET", "/v1/models?limit=many", 400, "limit: Input should be a valid integer"),
])
async def test_failures_before_the_pipeline_are_recorded_too(gateway_setup: str, recorded: Any, method: str,
                                                             path: str, status: int, fragment: str) -> None:
    response = await AsyncClient().generic(method, path, data=b'{"model": "x"}', content_type="application/json",
                                           headers={"x-api-key": KEY})
    assert response.status_code == status
    assert fragment in json.loads(response.content)["error"]["message"]
    [exchange] = await recorded()
    assert (exchange.id, exchange.status) == (response["request-id"], status)
    assert exchange.client_request["method"] == method and exchange.client_request["path"] == path
    assert exchange.client_request["body"] == {"model": "x"}
    assert exchange.client_request["headers"]["X-Api-Key"].startswith("***")


# --- the same limit through a real daphne, which reads the body itself (and may stream it chunked)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    env: dict[str, str]
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    def exchange(self, request_id: str) -> dict[str, Any]:
        """The stored Exchange, read by the gateway's own code in a subprocess (its database)."""
        script = ("import json; from inspector.models import Exchange; "
                  f"x = Exchange.objects.get(id={request_id!r}); "
                  "print(json.dumps({'status': x.status, 'error_type': x.error_type, "
                  "'client_request': x.client_request}))")
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.e2e.conftest import daphne_serving

    tmp = tmp_path_factory.mktemp("badinput")
    config = tmp / "dragoman.yaml"
    config.write_text(f"keys:\n  - name: bad-input\n    key: {KEY}\n")
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'gw.sqlite3'}", "DRAGOMAN_SECRET_KEY": "bad-input",
           "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1", "DRAGOMAN_CONFIG": str(config),
           "DJANGO_SETTINGS_MODULE": "gateway.settings", "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05",
           "DRAGOMAN_MAX_BODY_BYTES": str(LIMIT), "DRAGOMAN_INSPECTOR_MAX_BODY_BYTES": "1000"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=120)
    url = f"http://127.0.0.1:{port}"
    with daphne_serving(url=url, port=port, env=env, log_path=tmp / "daphne.log"):
        yield Served(url=url, env=env)


def _wait_recorded(served: Served, request_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 10
    while True:
        try:
            return served.exchange(request_id)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.e2e
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_limit_through_daphne(served: Served, chunked: bool) -> None:
    raw = _json(model="test-model", max_tokens=10, messages=[{"role": "user", "content": "z" * (2 * LIMIT)}])
    # A generator body makes httpx send Transfer-Encoding: chunked, with no Content-Length.
    content: Any = (raw[i:i + 65536] for i in range(0, len(raw), 65536)) if chunked else raw
    response = httpx.post(f"{served.url}{MESSAGES}", content=content, timeout=30,
                          headers={"x-api-key": KEY, "content-type": "application/json"})
    assert response.status_code == 413
    assert response.request.headers.get("transfer-encoding") == ("chunked" if chunked else None)
    body = response.json()
    assert body["error"]["type"] == "request_too_large"
    assert f"larger than the limit of {LIMIT} bytes" in body["error"]["message"]
    assert body["request_id"] == response.headers["request-id"]
    exchange = _wait_recorded(served, response.headers["request-id"])
    assert (exchange["status"], exchange["error_type"]) == (413, "request_too_large")
    marker = exchange["client_request"]["body_truncated"]
    assert marker["_truncated"] is True and marker["kept"] == 1000
    assert marker["total"] == (None if chunked else len(raw))
    assert exchange["client_request"]["body_text"].encode() == raw[:1000]


@pytest.mark.e2e
def test_invalid_utf8_through_daphne_is_a_400_that_says_so(served: Served) -> None:
    raw = b'{"model": "test-model", "max_tokens": 10, "messages": [{"role": "user", "content": "\xc3\x28"}]}'
    response = httpx.post(f"{served.url}{MESSAGES}", content=raw, timeout=30,
                          headers={"x-api-key": KEY, "content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid UTF-8" in response.json()["error"]["message"]
    exchange = _wait_recorded(served, response.headers["request-id"])
    assert base64.b64decode(exchange["client_request"]["body_base64"]) == raw
