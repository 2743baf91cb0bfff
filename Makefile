# The README's quickstart lives here. Every target installs what it needs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: help test test-unit lint lock lock-upgrade demo up clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements-dev.txt
	touch $@

## test: lint, type-check and run the whole test suite (unit, integration, e2e)
# Four workers on two cores: most e2e time is spent waiting on the local peers (lock
# expiries, scheduled deliveries, SDK polling), not on the CPU. The long flows are collected
# first (tests/conftest.py) and idle workers steal queued tests, so none runs alone at the end.
test: lint
	$(BIN)/python -m pytest -n 4 --dist worksteal

## test-unit: the pure core only (no sockets), for the inner loop
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

## lint: the locks match their inputs, ruff (lint + format check), mypy --strict on ops_status/
lint: $(STAMP)
	$(BIN)/python tools/locks.py check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## lock: regenerate requirements.txt and requirements-dev.txt (uv), keeping pins that still fit
lock: $(STAMP)
	$(BIN)/python tools/locks.py compile --uv $(BIN)/uv

## lock-upgrade: the same, moving every pin to the newest version the inputs allow
lock-upgrade: $(STAMP)
	$(BIN)/python tools/locks.py compile --uv $(BIN)/uv --upgrade

## demo: run the product's main job on a local stack (no Azure, no Docker)
demo: $(STAMP)
	$(BIN)/python -m emulators demo

## up: the whole local system in the foreground until Ctrl-C (README: Try it by hand)
up: $(STAMP)
	$(BIN)/python -m emulators up

## clean: remove the venv and the tools' caches
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
