"""OpenTelemetry end to end: the gateway under daphne, started as an operator starts it with
OTEL_EXPORTER_OTLP_ENDPOINT (and OTEL_SERVICE_NAME) in its environment, exports the traces and
metrics of exchanges the real Anthropic SDK makes to a real OTLP/HTTP receiver; the mock backend
shows the traceparent it got."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import pytest

from tests.e2e.conftest import E2E_KEY, Gateway, _database_url, _drop_database, daphne_serving, free_port
from tests.mockbackend import MockServerThread
from tests.otlp_receiver import OTLPReceiver

pytestmark = pytest.mark.e2e

BACKEND_KEY = "sk-e2e-backend-secret-7777777777777777"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@dataclass
class Traced:
    gateway: Gateway
    receiver: OTLPReceiver
    database_url: str

    def trace_id(self, exchange_id: str) -> str:
        """The inspector row's trace id, read from the gateway's own database."""
        query = "SELECT trace_id FROM inspector_exchange WHERE id = %s"
        if self.database_url.startswith("sqlite:///"):
            with contextlib.closing(sqlite3.connect(self.database_url.removeprefix("sqlite:///"))) as conn:
                row = conn.execute(query.replace("%s", "?"), (exchange_id,)).fetchone()
        else:
            import psycopg

            with psycopg.connect(self.database_url) as pg:
                row = pg.execute(query, (exchange_id,)).fetchone()  # type: ignore[arg-type]
        assert row is not None, f"{exchange_id} not stored"
        return str(row[0])


@pytest.fixture(scope="module")
def traced(mock_backend: MockServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    """A gateway of its own (the shared one exports nothing), its exporters sending every 0.1 s
    (spans) and 0.5 s (metrics) so a test waits on what arrives, never on a clock."""
    tmp = tmp_path_factory.mktemp("traced")
    db_url, pg_name = _database_url(tmp)
    config = tmp / "dragoman.yaml"
    config.write_text(f"""
backends:
  - name: mock-vllm
    base_url: {mock_backend.url}
    api_key: {BACKEND_KEY}
    preset: vllm
routes:
  - model: claude-*
    backend: mock-vllm
    upstream_model: mock-model
keys:
  - name: e2e
    key: {E2E_KEY}
""")
    port = free_port()
    with OTLPReceiver().serving() as receiver:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
               "DATABASE_URL": db_url, "DRAGOMAN_SECRET_KEY": "e2e-secret", "DEBUG": "0",
               "ALLOWED_HOSTS": "127.0.0.1,localhost", "DRAGOMAN_CONFIG": str(config),
               "DJANGO_SETTINGS_MODULE": "gateway.settings", "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05",
               "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "dragoman-e2e",
               "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500"}
        gateway = Gateway(url=f"http://127.0.0.1:{port}", key=E2E_KEY, mock=mock_backend, env=env)
        gateway.manage("migrate", "--noinput")
        try:
            with daphne_serving(url=gateway.url, port=port, env=env, log_path=tmp / "daphne.log"):
                yield Traced(gateway, receiver, db_url)
        finally:
            if pg_name:
                _drop_database(db_url, pg_name)


def test_a_streamed_exchange_reaches_the_collector_as_one_trace_continued_from_the_client(traced: Traced) -> None:
    client = anthropic.Anthropic(base_url=traced.gateway.url, api_key=E2E_KEY, max_retries=0, timeout=30)
    with client.messages.stream(model="claude-e2e-trace", max_tokens=100,
                                messages=[{"role": "user", "content": "[[mock:text]] platypus"}],
                                extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}) as stream:
        message = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
    assert message.stop_reason == "end_turn"

    spans = traced.receiver.spans_wait(CLIENT_TRACE, count=7, timeout=20)
    names = sorted(s["name"] for s in spans)
    assert names == sorted(["POST /v1/messages", "admission", "chat mock-model", "upstream connect",
                            "upstream first byte", "upstream stream", "inspector write"])
    [server] = [s for s in spans if s["name"] == "POST /v1/messages"]
    assert server["parent_span_id"] == CLIENT_SPAN
    assert server["attributes"]["dragoman.request_id"] == request_id
    assert server["attributes"]["gen_ai.request.model"] == "claude-e2e-trace"
    assert server["attributes"]["gen_ai.usage.output_tokens"] == message.usage.output_tokens
    assert server["resource"]["service.name"] == "dragoman-e2e"
    assert traced.trace_id(request_id) == CLIENT_TRACE

    [sent] = [r for r in traced.gateway.mock.requests if CLIENT_TRACE in r["headers"].get("traceparent", "")]
    assert sent["headers"]["traceparent"] == f"00-{CLIENT_TRACE}-{server['span_id']}-01"
    assert sent["headers"]["authorization"] == f"Bearer {BACKEND_KEY}"

    everything = b"".join(traced.receiver.raw)
    assert E2E_KEY.encode() not in everything and BACKEND_KEY.encode() not in everything
    assert b"platypus" not in everything

    [tokens] = traced.receiver.metrics_wait("gen_ai.client.token.usage", timeout=20)[-1:]
    kinds = {p["attributes"]["gen_ai.token.type"] for p in tokens["points"]}
    assert kinds == {"input", "output"}
