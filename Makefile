# Dragoman: `make run` serves a working gateway, `make test` runs everything CI runs per database.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: install run test lint typecheck pytest clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Local use: DEBUG on (no secret key needed), SQLite under var/, demo backend when none exists.
run: install
	DEBUG=1 $(PY) manage.py quickstart

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy gateway translation inspector

pytest: install
	$(VENV)/bin/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
