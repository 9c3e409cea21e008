"""LiteLLM's proxy as a peer: its own virtual environment (``make bench-peers`` makes it), a
config routing ``claude-*`` through its OpenAI provider to the same mock backend, everything
external off (no database, no telemetry, no model-price download), served on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.bench.harness import MODEL, REPO, Target, _clean_env, _messages_body, anthropic_end
from tests.bench.procs import free_port, serving

MASTER_KEY = "sk-bench-0123456789abcdef"


@contextmanager
def litellm_serving(tmp: Path, mock_port: int, *, venv: Path | None) -> Iterator[Target]:
    venv = venv or REPO / ".cache" / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        sys.exit(f"{exe} is missing: `make bench-peers` installs LiteLLM there")
    config = tmp / "litellm.yaml"
    config.write_text(f"""
model_list:
  - model_name: "{MODEL}"
    litellm_params:
      model: openai/mock
      api_base: http://127.0.0.1:{mock_port}/v1
      api_key: sk-mock
litellm_settings:
  telemetry: false
  drop_params: true
general_settings:
  master_key: {MASTER_KEY}
""")
    port = free_port()
    # LiteLLM 1.109 sends an ``openai/`` model's /v1/messages to the Responses API unless told
    # to use Chat Completions, the API Dragoman speaks to this backend (and the issue measured).
    # Even so, a request with ``thinking`` (every Claude Code turn: the cc-session scenarios) goes
    # to the Responses API; the mock answers it with the same " tok" reply (its responses
    # scenario ``bench``), so each gateway takes its own way to the same backend.
    # Its loop guard ends a stream with an error after 100 identical chunks; the mock's bench
    # scenario sends nothing but " tok", so the guard is set out of reach.
    env = _clean_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False", LITELLM_LOG="ERROR",
                     LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES="True",
                     REPEATED_STREAMING_CHUNK_LIMIT="1000000", DISABLE_SCHEMA_UPDATE="true", NO_DOCS="true")
    cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with serving(cmd, env=env, cwd=tmp, log_path=tmp / "litellm.log",
                 ready_url=f"http://127.0.0.1:{port}/health/liveliness", timeout=120) as proc:
        yield Target("litellm", port, "/v1/messages",
                     {"authorization": f"Bearer {MASTER_KEY}", "anthropic-version": "2023-06-01"},
                     _messages_body, anthropic_end, pid=proc.pid)
