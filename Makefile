# DataFlux: `make demo` and `make test` are all a fresh clone needs (Python 3.11 + make).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dataflux-installed

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-core test-browser screenshots test-slow test-reliability test-all lint format typecheck hooks release up api mcp doctor bench bench-peers bench-slow lock lock-check clean

help: ## List every target with one line each
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-11s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: torch==2.13.0 takes the local CPU wheel here instead of a multi-GB CUDA build
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP) ## Create .venv and install DataFlux from the lock file (idempotent)

demo: setup ## Sample media in, pipeline, catalog and searches printed (embedded default)
	$(BIN)/dataflux demo

test: setup ## Run the default test suite (what CI runs; browser tests whenever /usr/bin/chromium exists)
	$(BIN)/pytest -q

test-core: setup ## The default suite without the browser tests (CI runs those as their own job)
	$(BIN)/pytest -q -m "not slow and not gpu and not model and not browser"

test-browser: setup ## Only the web UI tests in Debian's Chromium (apt-get install chromium)
	$(BIN)/pytest -q tests/browser

screenshots: setup ## Rerun the browser tests and refresh docs/screenshots/ from their browser
	DATAFLUX_SCREENSHOTS=1 $(BIN)/pytest -q tests/browser

test-slow: setup ## Run the slow suites too (long videos, large indexes)
	$(BIN)/pytest -q -m "slow"

test-reliability: setup ## Run the full reliability suite (20 kills, 60 s load, 100 files); table into BENCHMARKS.md
	$(BIN)/python bench/reliability.py --full

test-all: setup ## Run every suite except GPU and real-model ones
	$(BIN)/pytest -q -m "not gpu and not model"

lint: setup ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

hooks: setup ## Install the pre-commit hooks (ruff, mypy, import cycles) into .git/hooks
	$(BIN)/pre-commit install

format: setup ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

up: setup ## Dagster UI + daemon, the REST API and the MCP server on localhost (Ctrl-C stops)
	$(BIN)/dataflux up

doctor: setup ## Check versions, stores, device and models
	$(BIN)/dataflux doctor

bench: setup ## Run the benchmarks (appends tables to BENCHMARKS.md; PEERS=1 adds bench-peers)
	$(BIN)/python bench/shots.py
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/duplicates.py
	$(BIN)/python bench/labels.py --append
	$(BIN)/python bench/relevance.py --append
	$(BIN)/python bench/transcripts.py
	$(BIN)/python bench/ocr.py
	$(BIN)/python bench/text_retrieval.py
	@if [ "$(PEERS)" = "1" ]; then $(MAKE) bench-peers; fi

bench-peers: setup ## DataFlux vs Pixeltable on the same files (Pixeltable in .bench-venvs/, outside the lock)
	$(BIN)/python bench/peers/pixeltable.py

bench-slow: setup ## The slow benchmark sizes: search at 1,000,000 segments (builds a 4 GB dataset once)
	$(BIN)/python bench/search.py --segments 1000000 --data-dir $${TMPDIR:-/tmp}/dataflux-bench-search-1m

lock: ## Re-freeze requirements.lock from the current .venv
	$(BIN)/pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/' | grep -v '^-e ' > requirements.lock

lock-check: setup ## Fail when .venv differs from requirements.lock (what `make lock` would change)
	@diff <($(BIN)/pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/' | grep -v '^-e ' | sort -f) \
	      <(grep -vE '^\s*(#|$$)' requirements.lock | sort -f) \
	  && echo "requirements.lock matches .venv"

release: setup ## Check a release: clean tree, changelog entry, lock file matches, lint and tests pass
	@test -z "$$(git status --porcelain)" || { echo "release: the working tree is not clean"; git status --short; exit 1; }
	@awk '/^## Unreleased/{u=1;next} /^## /{u=0} u && /^- /{n++} END{exit n==0}' CHANGELOG.md \
	  || { echo "release: CHANGELOG.md has nothing under Unreleased"; exit 1; }
	$(MAKE) lock-check
	$(MAKE) lint
	$(MAKE) test
	@echo "release $$($(BIN)/dataflux --version | awk '{print $$NF}') is ready: move Unreleased under a version heading, tag it v<version>"

clean: ## Remove local data (.dataflux) and Dagster run history (keeps .venv)
	rm -rf .dataflux
	find dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
