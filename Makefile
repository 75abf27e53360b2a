# calcinosis-book: `make book` builds the book from data/, `make test` runs every test.
# Both set up what they need first (a virtual environment from requirements.lock, and the
# Debian packages listed in .ci/install-system-deps).
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eo pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## setup: virtual environment from requirements.lock, and the Debian packages
setup: $(INSTALLED) system

$(INSTALLED): requirements.lock pyproject.toml
	@echo "creating $(VENV) from requirements.lock (a few minutes on a new machine)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock \
	  > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -c "import calcinosis, statsmodels, myst_nb"
	touch $@

system:
	.ci/install-system-deps

## book: build the HTML site and the PDF from the bundled data into _build/
book: setup
	$(BIN)/calcinosis build --pdf

## lint: ruff (lint and format) over src/ and tests/, mypy over src/
lint: $(INSTALLED)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

## check: lint, types and the unit tests (no whole datasets, R or books): the loop while working
check: $(INSTALLED) lint
	$(BIN)/python -m pytest -q -m "not integration and not system and not book"

## test: lint, then every test (unit, integration, system: tiny books and the real book), on two workers
# (pytest-xdist: a test module, a generated trial or the real book is made on one worker, groups
# that build a book handed out first; tests/conftest.py)
test: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder

## bench: time clean, no-change and one-value-changed builds against serial papermill, clean builds on the data copied 20 and 100 times and the results stage at 1, 5, 20 and 100 times with its largest parts and the largest process's memory; members per second of the ensemble on 1 and 2 local workers and a separate scheduler; trials per second of the power simulation on 1 and 2 workers
bench: setup
	$(BIN)/python benchmarks/bench_build.py --scale 20 100
	$(BIN)/python benchmarks/bench_ensemble.py
	$(BIN)/python benchmarks/bench_power.py

## lock: re-resolve requirements.lock from pyproject.toml and mirror it into environment.yml
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock
	$(BIN)/python .ci/sync-environment

## clean: remove built output (keeps the execution cache)
clean:
	rm -rf _build

.PHONY: help setup system book lint check test bench lock clean
