"""Ask a backend what it is: reachability, the models it serves, the server behind it, a preset.

The admin's "Probe backend" action runs this. The preset it suggests comes only from what the
server says about itself (its own endpoints, ``owned_by``) or from well-known cloud hosts —
never from a model-name substring, because the same model runs on every server kind.

Server fingerprints (each answered at the server root, the base URL without ``/v1``):

    vLLM       GET /version          {"version": "0.11.0"}, and /v1/models entries owned_by "vllm"
    SGLang     GET /get_model_info   {"model_path": ..., "is_generation": ...}
    llama.cpp  GET /props            {"default_generation_settings": ..., "model_path": ...}
    Ollama     GET /api/version      {"version": "0.12.3"}

Besides the preset it suggests single capability values the server states about itself (a
context window, a text-only model) and warns about what only the server's operator can fix
(a chat template that cannot render tools). A suggestion repeats nothing the suggested preset
already holds, and each carries the answer that called for it.

What differs by backend kind (the headers, a preset the kind alone implies) is the kind's
adapter's (``gateway.backends``). The admin calls it through ``asgiref.sync.async_to_sync``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.backends import adapter_named
from gateway.backends.openai import server_root
from translation.capabilities import CapabilityError, capabilities_build
from translation.masking import secrets_redact

# Well-known API hosts and the preset that fits them.
HOST_PRESETS: dict[str, str] = {
    "api.openai.com": "openai",
    "api.deepseek.com": "deepseek",
    "api.moonshot.ai": "kimi",
    "api.moonshot.cn": "kimi",
    "openrouter.ai": "openrouter",
    "api.anthropic.com": "anthropic",
}


@dataclass(frozen=True)
class Suggestion:
    """One capability value the server's answers call for, and what the server said."""

    name: str
    value: Any
    reason: str


@dataclass
class ProbeResult:
    reachable: bool = False
    # HTTP status of GET {base_url}/models (None when nothing answered).
    status: int | None = None
    latency_ms: float | None = None
    models: list[str] = field(default_factory=list)
    # e.g. "vLLM 0.11.0", "Ollama 0.12.3", "llama.cpp b6000"; "" when unknown.
    server: str = ""
    suggested_preset: str | None = None
    # What was asked and what answered, one line each, in order.
    evidence: list[str] = field(default_factory=list)
    # Capability values to set on top of suggested_preset (never one the preset already holds).
    suggested_capabilities: list[Suggestion] = field(default_factory=list)
    # What the gateway cannot work around: the server has to be started differently.
    warnings: list[str] = field(default_factory=list)
    # Why the probe could not do its job (connect error, timeout, rejected key, ...); "" if none.
    error: str = ""


@dataclass
class _Answer:
    status: int | None = None
    json: Any = None
    text: str = ""
    error: str = ""
    latency_ms: float | None = None


def preset_for_host(host: str) -> str | None:
    host = host.lower().rstrip(".")
    for known, preset in HOST_PRESETS.items():
        if host == known or host.endswith("." + known):
            return preset
    return None


def _snippet(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_message(body: Any, text: str) -> str:
    """The human part of an error body (OpenAI, Anthropic or FastAPI shapes), else a snippet."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _snippet(error["message"])
        for key in ("message", "detail", "error"):
            if isinstance(body.get(key), str):
                return _snippet(body[key])
    return _snippet(text)


def _connect_failure(error: httpx.HTTPError, url: str, timeout: float) -> str:
    where = urlsplit(url).netloc
    if isinstance(error, httpx.TimeoutException):
        return f"no answer from {where} within {timeout:g} s ({type(error).__name__})"
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect to {where}: {str(error) or 'connection refused'}"
    return f"request to {where} failed: {type(error).__name__}: {error}"


async def _get(client: httpx.AsyncClient, url: str, headers: dict[str, str], timeout_s: float) -> _Answer:
    started = time.perf_counter()
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as error:
        return _Answer(error=_connect_failure(error, url, timeout_s))
    answer = _Answer(status=response.status_code, text=response.text,
                     latency_ms=round((time.perf_counter() - started) * 1000, 1))
    try:
        answer.json = json.loads(response.content) if response.content else None
    except ValueError:
        answer.json = None
    return answer


def _models_from(body: Any) -> tuple[list[str], list[str]] | None:
    """Model ids and distinct owned_by values from an OpenAI or Anthropic model list."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return None
    ids: list[str] = []
    owners: list[str] = []
    for entry in body["data"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        ids.append(entry["id"])
        owner = entry.get("owned_by")
        if isinstance(owner, str) and owner not in owners:
            owners.append(owner)
    return ids, owners


async def backend_probe(
    *, base_url: str, kind: str, api_key: str = "",
    timeout: float = 5.0,  # noqa: ASYNC109 - httpx's per-operation timeout, not one deadline
    transport: httpx.AsyncBaseTransport | None = None,
) -> ProbeResult:
    """Probe one backend; never raises for network or protocol trouble (it lands in ``error``).

    ``timeout`` bounds each connect and each read; the root fingerprints are asked concurrently,
    so a probe takes at most about twice that. ``transport`` is for tests that cannot reach a
    real host (the cloud host rules)."""
    result = ProbeResult()
    models_url = base_url.rstrip("/") + "/models"
    host = urlsplit(base_url).hostname or ""
    adapter = adapter_named(kind)
    headers = adapter.probe_headers(api_key)
    implied = adapter.probe_preset()

    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport,
                                 follow_redirects=False) as client:
        answer = await _get(client, models_url, headers, timeout)
        if answer.status is None:
            result.error = answer.error
            result.evidence.append(f"GET {models_url}: {answer.error}")
            return _redacted(result, api_key)
        result.reachable = True
        result.status = answer.status
        result.latency_ms = answer.latency_ms
        owners = _read_models(result, answer, models_url)
        listing = answer.json if answer.status == 200 else None

        fingerprints: dict[str, _Answer] = {}
        cloud = preset_for_host(host)
        if implied is None and cloud is None:
            # Local servers: ask each server kind's own endpoint at the root, all at once. None
            # of them needs the key, but a proxy in front may, so send it anyway.
            root = server_root(base_url)
            paths = ("/version", "/get_model_info", "/props", "/api/version")
            answers = await asyncio.gather(*(_get(client, root + p, headers, timeout) for p in paths))
            fingerprints = dict(zip(paths, answers, strict=True))

    _identify(result, implied=implied, cloud=cloud, owners=owners, fingerprints=fingerprints)
    _suggest(result, listing=listing, props=_json_object(fingerprints.get("/props")))
    return _redacted(result, api_key)


def _read_models(result: ProbeResult, answer: _Answer, url: str) -> list[str]:
    if answer.status in (401, 403):
        result.error = (f"the backend rejected the API key (HTTP {answer.status}): "
                        f"{_error_message(answer.json, answer.text)}")
        result.evidence.append(f"GET {url}: HTTP {answer.status}")
        return []
    if answer.status != 200:
        result.error = f"GET {url} answered HTTP {answer.status}: {_error_message(answer.json, answer.text)}"
        result.evidence.append(f"GET {url}: HTTP {answer.status}")
        return []
    listed = _models_from(answer.json)
    if listed is None:
        what = "not JSON" if answer.json is None else "JSON without a model list"
        result.error = f"GET {url} answered 200 but {what}: {_snippet(answer.text, 80)!r}"
        result.evidence.append(f"GET {url}: HTTP 200, {what}")
        return []
    result.models, owners = listed
    owned = f", owned_by {', '.join(owners)}" if owners else ""
    result.evidence.append(f"GET {url}: HTTP 200, {len(result.models)} models{owned}")
    return owners


def _json_object(answer: _Answer | None) -> dict[str, Any] | None:
    if answer is None or answer.status != 200 or not isinstance(answer.json, dict):
        return None
    return answer.json


def _identify(result: ProbeResult, *, implied: tuple[str, str] | None, cloud: str | None, owners: list[str],
              fingerprints: dict[str, _Answer]) -> None:
    """Fill server and suggested_preset from the evidence, strongest rule first: a preset the
    backend's kind implies, a known cloud host, the server's own fingerprint."""
    if implied is not None:
        result.suggested_preset, evidence = implied
        result.evidence.append(evidence)
        return
    if cloud is not None:
        result.suggested_preset = cloud
        result.evidence.append(f"host is a known {cloud} API endpoint")
        return

    version = _json_object(fingerprints.get("/version"))
    model_info = _json_object(fingerprints.get("/get_model_info"))
    props = _json_object(fingerprints.get("/props"))
    ollama = _json_object(fingerprints.get("/api/version"))

    silent: list[str] = []
    for path, answer in fingerprints.items():
        body = _json_object(answer)
        if body is not None:
            result.evidence.append(f"GET {path}: {_snippet(json.dumps(_shown(path, body)), 100)}")
        else:
            why = answer.error or (f"HTTP {answer.status}" if answer.status != 200 else "not a JSON object")
            silent.append(f"{path} ({why})")
    if silent:
        result.evidence.append("no fingerprint from " + ", ".join(silent))

    if version is not None and isinstance(version.get("version"), str) and "vllm" in owners:
        result.server = f"vLLM {version['version']}"
        result.suggested_preset = "vllm"
    elif model_info is not None and "model_path" in model_info:
        result.server = "SGLang"
        result.suggested_preset = "sglang"
    elif props is not None and "default_generation_settings" in props:
        build = props.get("build_info")
        result.server = f"llama.cpp {build}" if isinstance(build, str) and build else "llama.cpp"
        result.suggested_preset = "llamacpp"
    elif ollama is not None and isinstance(ollama.get("version"), str):
        result.server = f"Ollama {ollama['version']}"
        result.suggested_preset = "ollama"
    elif version is not None and isinstance(version.get("version"), str):
        result.server = f"version {version['version']} (unknown server)"
    if result.suggested_preset is None and result.reachable:
        result.evidence.append("no server fingerprint matched: keep the preset you chose (generic if unsure)")


def _suggest(result: ProbeResult, *, listing: Any, props: dict[str, Any] | None) -> None:
    """Fill suggested_capabilities and warnings; keep only values the suggested preset lacks."""
    if result.suggested_preset == "llamacpp" and props is not None:
        wanted = _llamacpp_suggestions(props)
        result.warnings.extend(_llamacpp_warnings(props))
    else:
        wanted = _listing_suggestions(result, listing)
    try:
        preset = capabilities_build(preset=result.suggested_preset or "generic")
    except CapabilityError:
        preset = capabilities_build()
    result.suggested_capabilities = [s for s in wanted if getattr(preset, s.name) != s.value]


def _whole_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# llama.cpp's /props, as llama-server builds it in tools/server/server-context.cpp
# (get_res_props; llama.cpp as vendored by llama-cpp-python 0.3.36):
#   default_generation_settings.n_ctx   the context of one slot (what one request gets)
#   modalities.vision                   a vision projector is loaded (--mmproj)
#   chat_template_caps.supports_tools / supports_tool_calls
#                                       the template renders tool definitions / tool calls
#   build_info                          e.g. "b7000-1a2b3c4d"
# /props has no field for --jinja (on by default in this build; --no-jinja turns it off and
# then every request with tools answers "tools param requires --jinja flag"), so the probe
# cannot warn about it; the template caps are computed either way.
def _llamacpp_suggestions(props: dict[str, Any]) -> list[Suggestion]:
    found: list[Suggestion] = []
    settings = props.get("default_generation_settings")
    n_ctx = _whole_number(settings.get("n_ctx")) if isinstance(settings, dict) else None
    if n_ctx is not None:
        found.append(Suggestion("context_window", n_ctx,
                                f"GET /props: default_generation_settings.n_ctx is {n_ctx} "
                                "(the context of one slot, which is what one request gets)"))
    modalities = props.get("modalities")
    if isinstance(modalities, dict) and modalities.get("vision") is False:
        found.append(Suggestion("images", "placeholder",
                                "GET /props: modalities.vision is false (no vision projector loaded: "
                                "images become a text note instead of a failed request)"))
    # tools/server/server-common.cpp reads reasoning_budget_tokens, falling back to
    # thinking_budget_tokens, on every chat request (it applies to reasoning templates).
    found.append(Suggestion("thinking_budget_field", "thinking_budget_tokens",
                            "llama.cpp reads a per-request thinking_budget_tokens (alias "
                            "reasoning_budget_tokens)"))
    return found


def _llamacpp_warnings(props: dict[str, Any]) -> list[str]:
    caps = props.get("chat_template_caps")
    if not isinstance(caps, dict):
        return []
    unable = [name for name in ("supports_tools", "supports_tool_calls") if caps.get(name) is False]
    if not unable:
        return []
    said = ", ".join(f"{name} is false" for name in unable)
    return [f"tools will not work: GET /props: chat_template_caps.{said}, so the chat template cannot "
            "show the model its tools or its own tool calls. Start llama-server with --jinja and a "
            "tool-capable template, e.g. --chat-template-file with a template from llama.cpp's "
            "models/templates."]


def _listing_suggestions(result: ProbeResult, listing: Any) -> list[Suggestion]:
    """context_window from a model list's max_model_len.

    vLLM's ModelCard carries it for every served model and LoRA adapter
    (vllm/entrypoints/openai/protocol.py, ``ModelCard.max_model_len: Optional[int]``,
    vllm-project/vllm commit 0052bed36509); a backend whose models differ gets none.
    """
    if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
        return []
    lengths: dict[str, int] = {}
    for entry in listing["data"]:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            length = _whole_number(entry.get("max_model_len"))
            if length is not None:
                lengths[entry["id"]] = length
    if not lengths:
        return []
    if len(set(lengths.values())) > 1:
        result.evidence.append("models differ in max_model_len ("
                               + ", ".join(f"{m} {n}" for m, n in lengths.items())
                               + "): set context_window on each route instead")
        return []
    [length] = set(lengths.values())
    return [Suggestion("context_window", length,
                       f"GET /v1/models: max_model_len is {length} for {', '.join(lengths)}")]


def _shown(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The identifying keys of a fingerprint answer (a /props answer carries a whole chat template)."""
    keep = {"/version": ("version",), "/api/version": ("version",),
            "/get_model_info": ("model_path", "is_generation"),
            "/props": ("build_info", "total_slots", "model_path")}[path]
    return {k: body[k] for k in keep if k in body}


def _redacted(result: ProbeResult, secret: str) -> ProbeResult:
    """Backends sometimes echo the key they rejected: never let it reach a message."""
    if not secret:
        return result
    secrets = [secret]
    result.error = secrets_redact(result.error, secrets)
    result.server = secrets_redact(result.server, secrets)
    result.evidence = secrets_redact(result.evidence, secrets)
    result.warnings = secrets_redact(result.warnings, secrets)
    result.suggested_capabilities = [
        Suggestion(s.name, s.value, secrets_redact(s.reason, secrets)) for s in result.suggested_capabilities
    ]
    result.models = secrets_redact(result.models, secrets)
    return result
