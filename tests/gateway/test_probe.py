"""The "Probe backend" action: real servers on real sockets, and the admin action end to end.

The probe suggests a preset only from what a server says about itself (its own endpoints and
``owned_by``) or from a well-known cloud host, and turns every network or protocol failure into
a message — never an exception, never the API key.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client

from gateway.backends.openai import server_root
from gateway.models import Backend
from gateway.probe import ProbeResult, backend_probe, preset_for_host
from tests.mockbackend import MockServerThread
from tests.mockbackend.scenarios import MAX_MODEL_LEN
from translation.capabilities import capabilities_build

SECRET = "sk-probe-secret-0123456789"
# GET /props captured from a real llama-server (tests/fixtures/llamacpp/README.md says which
# build and how it was started): the suggestions are read from the shape llama.cpp really sends.
LLAMACPP_PROPS = Path(__file__).parents[1] / "fixtures" / "llamacpp" / "props.json"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay_s: float = 0.0


def as_json(status: int = 200, **body: object) -> Reply:
    return Reply(status, json.dumps(body).encode())


@dataclass
class ScriptedServer:
    """A plain http.server on a free port answering fixed replies by path (404 otherwise).

    Exists because the mock backend plays one well-behaved vLLM-like server; these tests need
    other servers' fingerprints and misbehaviour (garbage, 401, silence).
    """

    routes: dict[str, Reply]
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                script.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                reply = script.routes.get(self.path, as_json(404, error="not found"))
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def paths(self) -> list[str]:
        return [p for p, _ in self.seen]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    started: list[ScriptedServer] = []
    yield started
    for server in started:
        server.close()


def serve(started: list[ScriptedServer], routes: dict[str, Reply]) -> ScriptedServer:
    server = ScriptedServer(routes)
    started.append(server)
    return server


@pytest.fixture
def vllm_like() -> Iterator[MockServerThread]:
    with MockServerThread(owned_by="vllm", version="0.11.0") as backend:
        yield backend


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def models_list(*ids: str, owned_by: str) -> Reply:
    return as_json(object="list", data=[{"id": i, "object": "model", "owned_by": owned_by} for i in ids])


# -- what the probe learns ---------------------------------------------------------------------


async def test_probe_lists_the_mock_backends_models_and_recognises_vllm(vllm_like: MockServerThread) -> None:
    result = await backend_probe(base_url=vllm_like.url, kind="openai_chat", api_key=SECRET)

    assert result.reachable and result.status == 200 and not result.error
    assert result.latency_ms is not None and result.latency_ms > 0
    assert "mock" in result.models and "mock-reasoning" in result.models
    assert result.server == "vLLM 0.11.0"
    assert result.suggested_preset == "vllm"
    assert any("/version" in line and "0.11.0" in line for line in result.evidence)


async def test_a_version_endpoint_alone_does_not_make_a_server_vllm() -> None:
    with MockServerThread() as backend:  # owned_by "dragoman-mock"
        result = await backend_probe(base_url=backend.url, kind="openai_chat")
    assert result.reachable and result.models
    assert result.suggested_preset is None
    assert "unknown server" in result.server


@pytest.mark.parametrize(("routes", "preset", "server"), [
    ({"/v1/models": models_list("Qwen/Qwen3-8B", owned_by="sglang"),
      "/get_model_info": as_json(model_path="Qwen/Qwen3-8B", is_generation=True)}, "sglang", "SGLang"),
    ({"/v1/models": models_list("qwen3.gguf", owned_by="llamacpp"),
      "/props": as_json(default_generation_settings={"n_ctx": 8192}, model_path="/m/qwen3.gguf",
                        build_info="b6123-abcdef", chat_template="{{ messages }}")}, "llamacpp", "llama.cpp b6123-abcdef"),
    ({"/v1/models": models_list("qwen3:8b", owned_by="library"),
      "/api/version": as_json(version="0.12.3")}, "ollama", "Ollama 0.12.3"),
])
async def test_each_local_server_is_recognised_by_its_own_endpoint(
    scripted: list[ScriptedServer], routes: dict[str, Reply], preset: str, server: str,
) -> None:
    backend = serve(scripted, routes)
    result = await backend_probe(base_url=backend.url, kind="openai_chat")
    assert (result.suggested_preset, result.server) == (preset, server)
    # The fingerprints are asked at the server root, not under /v1.
    assert {"/version", "/get_model_info", "/props", "/api/version"} <= set(backend.paths())


async def test_model_names_never_decide_the_preset(scripted: list[ScriptedServer]) -> None:
    backend = serve(scripted, {"/v1/models": models_list("vllm-sglang-llamacpp-ollama-gpt-4o", "deepseek-chat",
                                                         owned_by="someone")})
    result = await backend_probe(base_url=backend.url, kind="openai_chat")
    assert result.reachable and len(result.models) == 2
    assert result.suggested_preset is None
    assert any("no server fingerprint" in line for line in result.evidence)


async def test_anthropic_backends_are_asked_with_x_api_key_and_list_in_anthropic_shape(
    scripted: list[ScriptedServer],
) -> None:
    listing = as_json(data=[{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5",
                             "created_at": "2025-09-29T00:00:00Z"}], has_more=False,
                      first_id="claude-sonnet-4-5", last_id="claude-sonnet-4-5")
    backend = serve(scripted, {"/v1/models": listing})
    result = await backend_probe(base_url=backend.url, kind="anthropic", api_key=SECRET)

    assert result.models == ["claude-sonnet-4-5"]
    assert result.suggested_preset == "anthropic"
    [(path, headers)] = backend.seen  # no root fingerprints for a native Anthropic endpoint
    assert path == "/v1/models"
    assert headers["x-api-key"] == SECRET and headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers


@pytest.mark.parametrize(("base_url", "preset"), [
    ("https://api.openai.com/v1", "openai"),
    ("https://api.deepseek.com/v1", "deepseek"),
    ("https://api.moonshot.ai/v1", "kimi"),
    ("https://api.moonshot.cn/v1", "kimi"),
    ("https://openrouter.ai/api/v1", "openrouter"),
])
async def test_well_known_cloud_hosts_suggest_their_preset_without_root_probes(base_url: str, preset: str) -> None:
    # No real cloud in tests: httpx.MockTransport answers the one request the probe may send.
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, json={"object": "list", "data": [{"id": "m", "owned_by": "system"}]})

    result = await backend_probe(base_url=base_url, kind="openai_chat", api_key=SECRET,
                                 transport=httpx.MockTransport(answer))
    assert result.suggested_preset == preset
    assert asked == [base_url + "/models"]


def test_host_rules_match_hosts_not_substrings() -> None:
    assert preset_for_host("API.OpenAI.com") == "openai"
    assert preset_for_host("api.openai.com.evil.example") is None
    assert preset_for_host("openrouter.ai.example") is None
    assert server_root("http://vllm:8000/v1/") == "http://vllm:8000"
    assert server_root("http://llama:8080") == "http://llama:8080"


# -- capability suggestions -------------------------------------------------------------------


def llamacpp_props(**changes: Any) -> dict[str, Any]:
    """The captured /props body, with top-level keys replaced (a dict value merges one level)."""
    props: dict[str, Any] = json.loads(LLAMACPP_PROPS.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(props.get(key), dict):
            props[key] = {**props[key], **value}
        else:
            props[key] = value
    return props


def answering(routes: dict[str, Any]) -> httpx.MockTransport:
    """A server answering JSON bodies by path (404 otherwise)."""
    def answer(request: httpx.Request) -> httpx.Response:
        body = routes.get(request.url.path)
        return httpx.Response(404, json={"error": "not found"}) if body is None else httpx.Response(200, json=body)
    return httpx.MockTransport(answer)


async def probe_llamacpp(props: dict[str, Any]) -> ProbeResult:
    # llama-server's /v1/models entry (get_res_model_info): owned_by "llamacpp", meta.n_ctx.
    listing = {"object": "list", "data": [{"id": props["model_alias"], "object": "model", "owned_by": "llamacpp",
                                           "meta": {"n_ctx": props["default_generation_settings"]["n_ctx"]}}]}
    return await backend_probe(base_url="http://llama:8080/v1", kind="openai_chat",
                               transport=answering({"/v1/models": listing, "/props": props}))


def suggested(result: ProbeResult) -> dict[str, Any]:
    return {s.name: s.value for s in result.suggested_capabilities}


def with_suggestions(result: ProbeResult) -> Any:
    """What the backend would run with: the suggested preset plus the suggested values."""
    assert result.suggested_preset is not None
    return capabilities_build(preset=result.suggested_preset, overrides=suggested(result))


async def test_llamacpp_props_give_the_slot_context_an_image_placeholder_and_the_thinking_budget_field() -> None:
    props = llamacpp_props()
    result = await probe_llamacpp(props)

    assert result.suggested_preset == "llamacpp"
    caps = with_suggestions(result)
    assert caps.context_window == props["default_generation_settings"]["n_ctx"]
    assert caps.images == "placeholder"
    assert caps.thinking_budget_field == "thinking_budget_tokens"
    reasons = {s.name: s.reason for s in result.suggested_capabilities}
    assert "default_generation_settings.n_ctx" in reasons["context_window"]
    assert "modalities.vision is false" in reasons["images"]


async def test_suggestions_never_repeat_a_value_the_suggested_preset_already_holds() -> None:
    result = await probe_llamacpp(llamacpp_props())
    preset = capabilities_build(preset="llamacpp")
    assert result.suggested_capabilities
    assert all(getattr(preset, s.name) != s.value for s in result.suggested_capabilities)


async def test_a_llamacpp_vision_model_keeps_images_passing() -> None:
    result = await probe_llamacpp(llamacpp_props(modalities={"vision": True}))
    assert "images" not in suggested(result)
    assert with_suggestions(result).images == "pass"


async def test_the_llamacpp_build_is_reported_as_the_server() -> None:
    props = llamacpp_props()
    result = await probe_llamacpp(props)
    assert props["build_info"] and result.server == f"llama.cpp {props['build_info']}"
    assert any(props["build_info"] in line for line in result.evidence if "/props" in line)


async def test_a_template_that_cannot_render_tools_warns_that_tools_will_not_work_and_how_to_fix_it() -> None:
    result = await probe_llamacpp(llamacpp_props(chat_template_caps={"supports_tools": False}))
    [warning] = result.warnings
    assert "tools will not work" in warning and "supports_tools is false" in warning
    assert "--jinja" in warning and "--chat-template-file" in warning and "models/templates" in warning


async def test_a_template_that_renders_tools_gives_no_warning() -> None:
    result = await probe_llamacpp(llamacpp_props(chat_template_caps={"supports_tools": True,
                                                                     "supports_tool_calls": True}))
    assert result.warnings == []


async def test_an_older_llamacpp_without_modalities_or_caps_gets_no_guess() -> None:
    props = llamacpp_props()
    del props["modalities"], props["chat_template_caps"]
    result = await probe_llamacpp(props)
    assert "images" not in suggested(result) and result.warnings == []
    assert "context_window" in suggested(result)


# vLLM's /v1/models as its ModelCard serialises (vllm/entrypoints/openai/protocol.py at
# vllm-project/vllm 0052bed36509): a base model and a LoRA adapter share max_model_len.
def vllm_models(*cards: tuple[str, int | None]) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": model, "object": "model", "created": 1760000000, "owned_by": "vllm", "root": "Qwen/Qwen3-8B",
         "parent": None, "max_model_len": length, "permission": []} for model, length in cards]}


async def probe_vllm(listing: dict[str, Any]) -> ProbeResult:
    return await backend_probe(base_url="http://vllm:8000/v1", kind="openai_chat",
                               transport=answering({"/v1/models": listing, "/version": {"version": "0.11.0"}}))


async def test_vllm_suggests_the_context_window_its_model_list_states() -> None:
    result = await probe_vllm(vllm_models(("Qwen/Qwen3-8B", 40960), ("qwen-lora", 40960)))
    assert result.suggested_preset == "vllm"
    [suggestion] = result.suggested_capabilities
    assert (suggestion.name, suggestion.value) == ("context_window", 40960)
    assert "max_model_len is 40960" in suggestion.reason


async def test_models_of_different_lengths_suggest_no_context_window_for_the_whole_backend() -> None:
    result = await probe_vllm(vllm_models(("Qwen/Qwen3-8B", 40960), ("small", 8192)))
    assert "context_window" not in suggested(result)
    assert any("differ in max_model_len" in line for line in result.evidence)


async def test_a_model_list_without_max_model_len_suggests_nothing() -> None:
    result = await probe_vllm(vllm_models(("Qwen/Qwen3-8B", None)))
    assert result.suggested_capabilities == [] and result.warnings == []


# -- failures become messages ------------------------------------------------------------------


async def test_a_closed_port_is_reported_as_a_connect_error() -> None:
    result = await backend_probe(base_url=f"http://127.0.0.1:{closed_port()}/v1", kind="openai_chat", timeout=2)
    assert not result.reachable and result.status is None
    assert "cannot connect" in result.error


async def test_a_non_json_answer_is_reported_not_raised(scripted: list[ScriptedServer]) -> None:
    backend = serve(scripted, {"/v1/models": Reply(200, b"<html>Welcome to nginx</html>", "text/html"),
                               "/version": Reply(200, b"\x00\xffgarbage", "application/json")})
    result = await backend_probe(base_url=backend.url, kind="openai_chat")
    assert result.reachable and result.status == 200
    assert "not JSON" in result.error and "nginx" in result.error
    assert result.models == [] and result.suggested_preset is None


async def test_a_401_says_the_key_was_rejected_and_never_repeats_the_key(scripted: list[ScriptedServer]) -> None:
    # OpenAI-style servers echo the key they rejected.
    backend = serve(scripted, {"/v1/models": as_json(401, error={"message": f"Incorrect API key provided: {SECRET}",
                                                                 "type": "invalid_request_error"})})
    result = await backend_probe(base_url=backend.url, kind="openai_chat", api_key=SECRET)
    assert result.reachable and result.status == 401
    assert "rejected the API key" in result.error and "Incorrect API key" in result.error
    assert SECRET not in repr(result)
    assert backend.seen[0][1]["authorization"] == f"Bearer {SECRET}"


async def test_a_silent_backend_times_out_quickly(scripted: list[ScriptedServer]) -> None:
    backend = serve(scripted, {"/v1/models": Reply(delay_s=3)})
    started = time.monotonic()
    result = await backend_probe(base_url=backend.url, kind="openai_chat", timeout=0.3)
    assert time.monotonic() - started < 2
    assert not result.reachable
    assert "no answer" in result.error and "0.3 s" in result.error


# -- the admin action --------------------------------------------------------------------------


def probe_action(staff: Client, *backends: Backend) -> str:
    response = staff.post("/admin/gateway/backend/", {
        "action": "probe", "_selected_action": [b.pk for b in backends], "index": 0,
    }, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_the_probe_action_reports_models_server_and_preset_without_the_key(
    staff: Client, vllm_like: MockServerThread,
) -> None:
    backend = Backend.objects.create(name="gpu-box", base_url=vllm_like.url, api_key=SECRET, preset="generic")
    page = probe_action(staff, backend)
    assert "Backend gpu-box: reachable, HTTP 200" in page
    assert "server vLLM 0.11.0" in page
    assert "mock-demo" in page
    assert "suggested preset vllm (current: generic)" in page
    assert SECRET not in page


def test_the_probe_action_shows_each_suggested_capability_with_its_reason(
    staff: Client, vllm_like: MockServerThread,
) -> None:
    backend = Backend.objects.create(name="gpu-box", base_url=vllm_like.url, preset="vllm")
    page = probe_action(staff, backend)
    assert (f"Suggested capabilities for gpu-box on top of preset vllm: context_window = {MAX_MODEL_LEN} "
            f"(now 0), because GET /v1/models: max_model_len is {MAX_MODEL_LEN}") in page


def test_the_probe_action_shows_llamacpp_warnings_and_marks_values_already_set(
    staff: Client, scripted: list[ScriptedServer],
) -> None:
    props = llamacpp_props(chat_template_caps={"supports_tools": False})
    server = serve(scripted, {"/v1/models": models_list(props["model_alias"], owned_by="llamacpp"),
                              "/props": Reply(200, json.dumps(props).encode())})
    backend = Backend.objects.create(name="cpu-box", base_url=server.url, preset="llamacpp", cap_images="placeholder")
    page = probe_action(staff, backend)
    assert "images = placeholder (already set), because GET /props: modalities.vision is false" in page
    assert "Backend cpu-box: tools will not work" in page and "--chat-template-file" in page


def test_the_probe_action_reports_a_dead_backend_and_a_rejected_key_as_messages(
    staff: Client, scripted: list[ScriptedServer],
) -> None:
    rejecting = serve(scripted, {"/v1/models": as_json(401, error={"message": f"bad key {SECRET}"})})
    dead = Backend.objects.create(name="dead", base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key=SECRET)
    locked = Backend.objects.create(name="locked", base_url=rejecting.url, api_key=SECRET)
    page = probe_action(staff, dead, locked)
    assert "Backend dead: unreachable — cannot connect" in page
    assert "Backend locked: reachable, HTTP 401" in page and "rejected the API key" in page
    assert SECRET not in page


def test_the_probe_button_on_the_change_page_probes_that_backend(
    staff: Client, vllm_like: MockServerThread,
) -> None:
    backend = Backend.objects.create(name="gpu-box", base_url=vllm_like.url, preset="vllm", api_key=SECRET)
    change = staff.get(f"/admin/gateway/backend/{backend.pk}/change/").content.decode()
    assert f'href="/admin/gateway/backend/{backend.pk}/probe/"' in change
    response = staff.get(f"/admin/gateway/backend/{backend.pk}/probe/", follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/gateway/backend/{backend.pk}/change/"
    page = response.content.decode()
    assert "preset vllm fits" in page and SECRET not in page


def test_the_probe_button_needs_a_staff_login(vllm_like: MockServerThread, db: None) -> None:
    backend = Backend.objects.create(name="gpu-box", base_url=vllm_like.url)
    response = Client().get(f"/admin/gateway/backend/{backend.pk}/probe/")
    assert response.status_code == 302 and "/admin/login/" in response["location"]
