# The README's quickstart lives here. Every target installs what it needs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: help test test-unit lint demo clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## test: lint, type-check and run the whole test suite (unit, integration, e2e)
# Four workers on two cores: most e2e time is spent waiting on the local peers (lock
# expiries, scheduled deliveries, SDK polling), not on the CPU.
test: lint
	$(BIN)/python -m pytest -n 4

## test-unit: the pure core only (no sockets), for the inner loop
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

## lint: ruff (lint + format check) and mypy --strict on ops_status/
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## demo: run the product's main job on a local stack (no Azure, no Docker)
demo: $(STAMP)
	$(BIN)/python -m emulators demo

## clean: remove the venv and the tools' caches
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
