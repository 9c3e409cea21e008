"""The scripted OpenAI-compatible backend, exercised over real sockets with httpx."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.mockbackend import MockServer, MockServerThread, mock_server_start
from tests.mockbackend.scenarios import BASH_ARGUMENTS, PREFILL_REJECTED, TEXT_REPLY

REPO = Path(__file__).resolve().parents[2]
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
async def backend() -> AsyncIterator[MockServer]:
    # One server per test on a free port, so recorded requests never leak between tests.
    server = await mock_server_start(stall_ms=300, first_byte_ms=300)
    yield server
    await server.close()


@pytest.fixture
async def client(backend: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=backend.url, timeout=10) as client:
        yield client


def chat(scenario: str | None = None, *, stream: bool = False, **body: Any) -> dict[str, Any]:
    """Keyword arguments for client.post() of a chat completion."""
    payload: dict[str, Any] = {"model": "mock", "messages": HELLO, **body}
    if stream:
        payload["stream"] = True
    headers = {"x-mock-scenario": scenario} if scenario else {}
    return {"url": "/chat/completions", "json": payload, "headers": headers}


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


def chunks(text: str) -> list[dict[str, Any]]:
    data = sse_data(text)
    assert data[-1] == "[DONE]"
    return [orjson.loads(item) for item in data[:-1]]


def streamed_text(parsed: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in parsed if c["choices"])


async def test_non_streamed_text_is_one_chat_completion_with_usage(client: httpx.AsyncClient) -> None:
    response = await client.post(**chat("text"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": TEXT_REPLY}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_streamed_text_is_chunks_that_start_with_the_role_and_end_with_done(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(**chat("text", stream=True))

    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    parsed = chunks(response.text)
    assert all(c["object"] == "chat.completion.chunk" for c in parsed)
    assert len({c["id"] for c in parsed}) == 1
    assert parsed[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(parsed) > 3  # several content deltas, not one
    assert streamed_text(parsed) == TEXT_REPLY
    assert parsed[-1]["choices"][0]["delta"] == {}
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in parsed)


async def test_include_usage_adds_a_last_chunk_with_empty_choices_and_null_usage_elsewhere(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(**chat("text", stream=True, stream_options={"include_usage": True}))

    parsed = chunks(response.text)
    *others, last = parsed
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] > 0
    assert all(c["usage"] is None for c in others)


async def test_tool_calls_empty_streams_text_chunks_with_an_empty_tool_calls_list(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(**chat("tool_calls_empty", stream=True))

    deltas = [c["choices"][0]["delta"] for c in chunks(response.text)]
    assert deltas[1:4] == [
        {"content": "1\n", "tool_calls": []},
        {"content": "2\n", "tool_calls": []},
        {"content": "3", "tool_calls": []},
    ]
    message = (await client.post(**chat("tool_calls_empty"))).json()["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "1\n2\n3", "tool_calls": []}


async def test_tool_call_streams_id_and_name_once_and_arguments_in_fragments(
    client: httpx.AsyncClient,
) -> None:
    parsed = chunks((await client.post(**chat("tool_call", stream=True))).text)

    fragments = [f for c in parsed for f in c["choices"][0]["delta"].get("tool_calls", [])]
    assert len(fragments) > 2
    assert fragments[0]["id"] == "call_mock_0" and fragments[0]["function"]["name"] == "Bash"
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in fragments[1:])
    assert "".join(f["function"]["arguments"] for f in fragments) == BASH_ARGUMENTS
    assert streamed_text(parsed) == "I'll run a tool."
    assert parsed[-1]["choices"][0]["finish_reason"] == "tool_calls"

    message = (await client.post(**chat("tool_call"))).json()["choices"][0]["message"]
    call = message["tool_calls"][0]
    assert call["id"] == "call_mock_0" and call["function"] == {"name": "Bash", "arguments": BASH_ARGUMENTS}


async def test_parallel_tools_start_the_second_call_in_the_first_calls_last_chunk(
    client: httpx.AsyncClient,
) -> None:
    parsed = chunks((await client.post(**chat("parallel_tools", stream=True))).text)

    shared = [c for c in parsed if len(c["choices"] and c["choices"][0]["delta"].get("tool_calls", [])) == 2]
    assert len(shared) == 1
    first, second = shared[0]["choices"][0]["delta"]["tool_calls"]
    assert first["index"] == 0 and "id" not in first
    assert second["index"] == 1 and second["id"] == "call_mock_1"


async def test_tool_scenarios_answer_a_tool_result_with_text_so_agent_loops_end(
    client: httpx.AsyncClient,
) -> None:
    messages = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_mock_0", "type": "function"}]},
        {"role": "tool", "tool_call_id": "call_mock_0", "content": "hello"},
    ]
    body = (await client.post(**chat("tool_call", messages=messages))).json()

    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == "The tool returned: hello"


async def test_reasoning_goes_in_the_field_the_request_asks_for(client: httpx.AsyncClient) -> None:
    default = (await client.post(**chat("reasoning"))).json()["choices"][0]["message"]
    assert "reasoning_content" in default and "reasoning" not in default

    kwargs = chat("reasoning", stream=True)
    kwargs["headers"]["x-mock-reasoning-field"] = "both"
    parsed = chunks((await client.post(**kwargs)).text)
    reasoning = [c["choices"][0]["delta"] for c in parsed if "reasoning" in c["choices"][0]["delta"]]
    assert reasoning and all(d["reasoning"] == d["reasoning_content"] for d in reasoning)


async def test_echo_replies_with_the_compact_json_of_the_request_body(client: httpx.AsyncClient) -> None:
    kwargs = chat("echo", stream=True, max_tokens=7, continue_final_message=True)

    parsed = chunks((await client.post(**kwargs)).text)

    assert orjson.loads(streamed_text(parsed)) == kwargs["json"]


async def test_mock_requests_records_chat_bodies_oldest_first_and_delete_clears_them(
    backend: MockServer, client: httpx.AsyncClient
) -> None:
    await client.post(**chat("text", temperature=0.1))
    await client.post(**chat("http_500", temperature=0.2))

    recorded = (await client.get(backend.origin + "/_mock/requests")).json()
    assert [r["body"]["temperature"] for r in recorded] == [0.1, 0.2]
    assert recorded[0]["path"] == "/v1/chat/completions"
    assert recorded[1]["headers"]["x-mock-scenario"] == "http_500"
    assert backend.requests == recorded

    assert (await client.delete(backend.origin + "/_mock/requests")).status_code == 200
    assert (await client.get(backend.origin + "/_mock/requests")).json() == []


async def test_scenario_comes_from_header_then_directive_then_mock_model(client: httpx.AsyncClient) -> None:
    directive = [{"role": "user", "content": [{"type": "text", "text": "hi [[mock:continuation]]"}]}]

    by_directive = await client.post(**chat(messages=directive))
    by_header = await client.post(**chat("text", messages=directive))
    by_model = await client.post(**chat(model="mock-length"))
    by_default = await client.post(**chat())

    assert by_directive.json()["choices"][0]["message"]["content"] == "hello world."
    assert by_header.headers["x-mock-scenario"] == "text"
    assert by_model.json()["choices"][0]["finish_reason"] == "length"
    assert by_default.headers["x-mock-scenario"] == "demo"
    assert "Say hello" in by_default.json()["choices"][0]["message"]["content"]


async def test_directive_arguments_set_knobs(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "go [[mock:bench events=5]]"}]

    parsed = chunks((await client.post(**chat(messages=messages, stream=True))).text)

    assert streamed_text(parsed) == " tok" * 5


async def test_unknown_scenario_is_a_400_openai_error(client: httpx.AsyncClient) -> None:
    response = await client.post(**chat("no_such_thing"))

    assert response.status_code == 400
    assert "no_such_thing" in response.json()["error"]["message"]


async def test_http_429_has_retry_after_and_an_openai_error_body(client: httpx.AsyncClient) -> None:
    response = await client.post(**chat("http_429", stream=True))

    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert set(response.json()["error"]) >= {"message", "type", "code"}


async def test_reject_prefill_refuses_a_trailing_assistant_message_only(client: httpx.AsyncClient) -> None:
    prefill = [*HELLO, {"role": "assistant", "content": "Hello"}]

    refused = await client.post(**chat("reject_prefill", messages=prefill))
    accepted = await client.post(**chat("reject_prefill"))

    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == PREFILL_REJECTED
    assert accepted.status_code == 200


async def test_continuation_continues_a_prefill(client: httpx.AsyncClient) -> None:
    prefill = [*HELLO, {"role": "assistant", "content": "hello"}]

    body = (await client.post(**chat("continuation", messages=prefill))).json()

    assert body["choices"][0]["message"]["content"] == " world."


async def test_stop_sequence_reports_the_first_stop_string_as_vllm_stop_reason(
    client: httpx.AsyncClient,
) -> None:
    parsed = chunks((await client.post(**chat("stop_sequence", stream=True, stop=["END", "FIN"]))).text)

    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"
    assert parsed[-1]["choices"][0]["stop_reason"] == "END"


async def test_usage_cached_reports_cached_prompt_tokens(client: httpx.AsyncClient) -> None:
    usage = (await client.post(**chat("usage_cached"))).json()["usage"]

    assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_tokens"] // 2


async def test_drop_mid_stream_closes_the_connection_without_done(client: httpx.AsyncClient) -> None:
    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        async with client.stream(**{"method": "POST", **chat("drop_mid_stream", stream=True)}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    received.append(line)

    assert len(received) == 3
    assert "data: [DONE]" not in received


async def test_faulty_streams_end_the_way_their_names_say(client: httpx.AsyncClient) -> None:
    error = sse_data((await client.post(**chat("error_chunk", stream=True))).text)
    garbage = sse_data((await client.post(**chat("garbage", stream=True))).text)
    no_done = sse_data((await client.post(**chat("no_done", stream=True))).text)

    assert orjson.loads(error[-2]) == {"error": {"message": "boom", "type": "server_error", "code": 500}}
    assert error[-1] == "[DONE]"
    assert "{this is not json" in garbage and garbage[-1] == "[DONE]"
    assert no_done[-1] != "[DONE]" and orjson.loads(no_done[-1])["choices"][0]["finish_reason"] == "stop"


async def test_stall_sends_the_first_chunk_then_waits(client: httpx.AsyncClient) -> None:
    loop = asyncio.get_running_loop()
    async with client.stream(**{"method": "POST", **chat("stall", stream=True)}) as response:
        lines = response.aiter_lines()
        first = await anext(lines)
        started = loop.time()
        rest = [line async for line in lines if line.startswith("data: ")]

    assert '"role":"assistant"' in first
    assert loop.time() - started >= 0.25  # stall_ms=300 in the fixture
    assert rest[-1] == "data: [DONE]"


async def test_delay_knob_paces_the_stream(client: httpx.AsyncClient) -> None:
    kwargs = chat("bench", stream=True)
    kwargs["headers"].update({"x-mock-events": "4", "x-mock-delay-ms": "50"})
    loop = asyncio.get_running_loop()
    started = loop.time()

    await client.post(**kwargs)

    assert loop.time() - started >= 0.3  # 7 frames, 6 gaps of 50 ms


async def test_a_client_that_disconnects_mid_stream_ends_its_connection_quietly(
    backend: MockServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    kwargs = chat("bench", stream=True)
    kwargs["headers"].update({"x-mock-events": "50", "x-mock-delay-ms": "20"})
    async with httpx.AsyncClient(base_url=backend.url) as other:
        async with other.stream(**{"method": "POST", **kwargs}) as response:
            await anext(response.aiter_lines())
            assert len(backend._tasks) == 1
    for _ in range(100):  # the server notices on its next write, 20 ms later
        if not backend._tasks:
            break
        await asyncio.sleep(0.02)

    assert not backend._tasks
    assert not [r for r in caplog.records if r.levelno >= 30]
    assert (await client.get(backend.origin + "/health")).status_code == 200


async def test_keep_alive_serves_several_requests_on_one_connection(backend: MockServer) -> None:
    reader, writer = await asyncio.open_connection(backend.host, backend.port)
    body = orjson.dumps({"model": "mock", "messages": HELLO, "stream": True})
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-mock-scenario: text\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
    )
    try:
        for _ in range(2):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"transfer-encoding: chunked" in head
            data = await reader.readuntil(b"0\r\n\r\n")
            assert data.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
        writer.write(b"GET /version HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"content-length: 18\r\n" in head
        assert await reader.readexactly(18) == b'{"version":"mock"}'
    finally:
        writer.close()


async def test_tokenize_counts_one_token_per_four_bytes_of_the_rendered_chat(
    backend: MockServer, client: httpx.AsyncClient
) -> None:
    tokenize = backend.origin + "/tokenize"
    first = (await client.post(tokenize, json={"model": "mock", "messages": HELLO})).json()
    again = (await client.post(tokenize, json={"model": "mock", "messages": HELLO})).json()
    longer = (await client.post(tokenize, json={"model": "mock", "messages": HELLO * 3})).json()
    prompt = (await client.post(tokenize, json={"prompt": "x" * 40})).json()
    usage = (await client.post(**chat("text"))).json()["usage"]

    rendered = "<|im_start|>user\nSay hello<|im_end|>\n<|im_start|>assistant\n"
    assert first == again
    assert first["count"] == -(-len(rendered) // 4) == len(first["tokens"])
    assert first["max_model_len"] == 32768
    assert longer["count"] > first["count"]
    assert prompt["count"] == 10
    assert usage["prompt_tokens"] == first["count"]


async def test_models_health_and_version_answer_json(backend: MockServer, client: httpx.AsyncClient) -> None:
    models = (await client.get("/models")).json()

    assert models["object"] == "list"
    assert {"mock", "mock-tool_call"} <= {m["id"] for m in models["data"]}
    assert (await client.get(backend.origin + "/health")).status_code == 200
    assert (await client.get(backend.origin + "/version")).json() == {"version": "mock"}


async def test_unknown_paths_are_404_openai_errors(backend: MockServer, client: httpx.AsyncClient) -> None:
    response = await client.get(backend.origin + "/nowhere")

    assert response.status_code == 404
    assert set(response.json()["error"]) >= {"message", "type", "code"}


async def test_fifty_concurrent_streams_all_complete(client: httpx.AsyncClient) -> None:
    kwargs = chat("bench", stream=True, stream_options={"include_usage": True})
    kwargs["headers"].update({"x-mock-events": "20", "x-mock-delay-ms": "5"})

    responses = await asyncio.gather(*(client.post(**kwargs) for _ in range(50)))

    for response in responses:
        parsed = chunks(response.text)
        assert streamed_text(parsed) == " tok" * 20
        assert parsed[-1]["usage"]["completion_tokens"] == 20


def test_thread_helper_serves_sync_clients() -> None:
    with MockServerThread(reasoning_field="reasoning") as backend:
        response = httpx.post(
            backend.url + "/chat/completions",
            json={"model": "mock-reasoning", "messages": HELLO},
            timeout=10,
        )
        assert response.json()["choices"][0]["message"]["reasoning"]
        assert len(backend.requests) == 1
        assert backend.url == f"http://127.0.0.1:{backend.port}/v1"


async def test_module_command_prints_its_url_and_exits_cleanly_on_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(REPO)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mockbackend", "--port", "0", cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("mock backend listening on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].strip()
        async with httpx.AsyncClient() as client:
            assert (await client.get(url.removesuffix("/v1") + "/health")).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
