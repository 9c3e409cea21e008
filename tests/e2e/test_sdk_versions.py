"""The Anthropic Python SDK's last 0.x and newest 2.x releases, each in its own venv, drive Dragoman
under daphne (the mock backend behind it, real sockets) through ``tests/e2e/sdk_client.py``: create,
stream, count_tokens, models, x-api-key and Bearer (``ANTHROPIC_AUTH_TOKEN``), a native Anthropic
route that receives the release's own ``anthropic-version``, and the sampling range check.

The venvs come from ``make anthropic-sdks`` (a prerequisite of ``make pytest``). Without them the
tests skip with a message, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.e2e

# Equal to ANTHROPIC_SDK_VERSIONS in the Makefile (test_the_makefile_builds_these_sdk_versions).
SDK_VERSIONS = {"0.125.0": "2023-06-01", "2.16.0": "2026-10-21"}  # release -> anthropic-version it sends
CLIENT = Path(__file__).with_name("sdk_client.py")


def sdk_python(version: str) -> Path:
    python = REPO / ".cache" / f"anthropic-sdk-{version}" / "bin" / "python"
    if not python.exists():
        message = f"the anthropic {version} venv is missing: run `make anthropic-sdks`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return python


def sdk_run(version: str, gateway: Gateway) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", ""), "DRAGOMAN_URL": gateway.url, "DRAGOMAN_KEY": gateway.key}
    done = subprocess.run([str(sdk_python(version)), str(CLIENT)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=CLIENT.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def received(gateway: Gateway, marker: str) -> list[dict[str, Any]]:
    return [r for r in gateway.mock.requests if marker in json.dumps(r.get("body"))]


@pytest.fixture(scope="module", params=list(SDK_VERSIONS))
def run(request: pytest.FixtureRequest, gateway: Gateway) -> tuple[str, dict[str, Any]]:
    """One client run per release (several tests read it)."""
    version: str = request.param
    return version, sdk_run(version, gateway)


def test_the_makefile_builds_these_sdk_versions() -> None:
    found = re.search(r"^ANTHROPIC_SDK_VERSIONS \?= (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert found is not None and found.group(1).split() == list(SDK_VERSIONS)


def test_each_release_is_the_one_asked_for_and_sends_its_api_version(run: tuple[str, dict[str, Any]]) -> None:
    version, out = run
    assert out["version"] == version
    assert out["api_version"] == SDK_VERSIONS[version]


def test_create_and_stream_give_the_same_reply(run: tuple[str, dict[str, Any]]) -> None:
    _, out = run
    assert out["create"]["stop_reason"] == out["stream"]["stop_reason"] == "end_turn"
    assert out["create"]["text"] and out["stream"]["text"]


def test_a_bearer_token_works_like_an_api_key(run: tuple[str, dict[str, Any]]) -> None:
    version, out = run
    assert f"bearer-marker-{version}" in " ".join(out["bearer"])


def test_a_native_backend_receives_the_releases_anthropic_version_unchanged(run: tuple[str, dict[str, Any]],
                                                                            gateway: Gateway) -> None:
    version, out = run
    assert out["native"]["stop_reason"] == "end_turn"
    native = [r for r in received(gateway, f"sdk-native-marker-{version}") if r["path"] == "/v1/messages"]
    assert native and {r["headers"]["anthropic-version"] for r in native} == {SDK_VERSIONS[version]}


def test_count_tokens_and_models_answer(run: tuple[str, dict[str, Any]]) -> None:
    _, out = run
    assert out["count_tokens"] > 0
    assert "claude-opus-4-6" not in out["models"]  # globs are not listed
    assert isinstance(out["models"], list)


def test_sampling_in_range_reaches_the_backend_and_out_of_range_is_a_400(run: tuple[str, dict[str, Any]],
                                                                         gateway: Gateway) -> None:
    version, out = run
    assert out["sampled"]
    [sampled] = received(gateway, f"sampled-marker-{version}")[-1:]
    assert sampled["body"]["temperature"] == 0.5
    assert out["out_of_range"]["status"] == 400
    assert out["out_of_range"]["body"]["error"] == {
        "type": "invalid_request_error", "message": "temperature: Input should be less than or equal to 1"}
    assert not received(gateway, f"too-hot-{version}")


def test_the_2x_releases_2026_fields_reach_a_native_backend(run: tuple[str, dict[str, Any]],
                                                            gateway: Gateway) -> None:
    version, out = run
    if not version.startswith("2."):
        pytest.skip("0.x has no output_config or thinking.display parameters")
    assert out["modern"]["stop_reason"] == "end_turn"
    [modern] = [r for r in received(gateway, f"modern-marker-{version}") if r["path"] == "/v1/messages"][-1:]
    assert modern["body"]["thinking"] == {"type": "adaptive", "display": "omitted"}
    assert modern["body"]["output_config"] == {"effort": "low"}
