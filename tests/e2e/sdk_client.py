"""A client run by tests/e2e/test_sdk_versions.py inside one Anthropic SDK release's own venv
(``make anthropic-sdks``): it imports nothing from the repository, drives the gateway at
``DRAGOMAN_URL`` with ``DRAGOMAN_KEY`` the way that release's users do, and prints one JSON
object saying what each call returned. The test asserts on it and on what the backend received.

0.x has ``temperature``/``top_k`` parameters and sends ``anthropic-version: 2023-06-01``; 2.x
dropped the sampling parameters (``extra_body`` still carries them) and sends ``2026-10-21``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anthropic

URL, KEY = os.environ["DRAGOMAN_URL"], os.environ["DRAGOMAN_KEY"]
MAJOR = int(anthropic.__version__.split(".")[0])


def ask(text: str, model: str = "claude-sonnet-4-5", **extra: Any) -> dict[str, Any]:
    # Each marker names the release, so the test tells this run's backend requests from another's.
    content = f"{text}-{anthropic.__version__}"
    return {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": content}], **extra}


def texts(message: Any) -> list[str]:
    return [block.text for block in message.content if block.type == "text"]


def main() -> dict[str, Any]:
    by_key = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0, timeout=30)
    by_token = anthropic.Anthropic(base_url=URL, auth_token=KEY, max_retries=0, timeout=30)
    out: dict[str, Any] = {"version": anthropic.__version__,
                           "api_version": by_key.default_headers.get("anthropic-version")}

    created = by_key.messages.create(**ask("[[mock:text]] sdk-create"))
    out["create"] = {"text": texts(created), "stop_reason": created.stop_reason}
    with by_key.messages.stream(**ask("[[mock:text]] sdk-stream")) as stream:
        streamed = stream.get_final_message()
    out["stream"] = {"text": texts(streamed), "stop_reason": streamed.stop_reason}
    out["bearer"] = texts(by_token.messages.create(**ask("bearer-marker")))
    native = by_token.messages.create(**ask("sdk-native-marker", model="native-claude"))
    out["native"] = {"text": texts(native), "stop_reason": native.stop_reason}
    out["count_tokens"] = by_key.messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "count me"}]).input_tokens
    out["models"] = [m.id for m in by_token.models.list(limit=1000).data]

    if MAJOR == 0:  # the release's own sampling parameters
        sampled = by_key.messages.create(**ask("sampled-marker", temperature=0.5, top_k=5))
        bad: dict[str, Any] = {"temperature": 5}
        out["sampled"] = texts(sampled)
        try:
            by_key.messages.create(**ask("too-hot", **bad))
        except anthropic.BadRequestError as exc:
            out["out_of_range"] = {"status": exc.status_code, "body": exc.body}
    else:  # sampling only through extra_body; 2026 request fields as parameters
        sampled = by_key.messages.create(**ask("sampled-marker"), extra_body={"temperature": 0.5})
        out["sampled"] = texts(sampled)
        try:
            by_key.messages.create(**ask("too-hot"), extra_body={"temperature": 5})
        except anthropic.BadRequestError as exc:
            out["out_of_range"] = {"status": exc.status_code, "body": exc.body}
        modern = by_key.messages.create(**ask(
            "modern-marker", model="native-claude", thinking={"type": "adaptive", "display": "omitted"},
            output_config={"effort": "low"}))
        out["modern"] = {"stop_reason": modern.stop_reason}
    return out


if __name__ == "__main__":
    json.dump(main(), sys.stdout)
