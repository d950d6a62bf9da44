# Parcours: the two commands are `make run` and `make test`; the rest is for developers.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INFRA := $(BIN)/python -m deploy.local.infra

.PHONY: help install fetch browser up down status run test test-unit test-fast bench hostile lint typecheck contracts clean

help:
	@echo "make run      start Kafka, the database and the services, feed a sample (Ctrl-C stops)"
	@echo "make test     the whole suite on the real broker and database"
	@echo "make up|status|down   manage the local infrastructure in the background"
	@echo "make bench    benchmarks (results in docs/performance.md)"
	@echo "make hostile  long property runs of hostile input on every API and consumer (HOSTILE_EXAMPLES=500)"
	@echo "make lint typecheck contracts"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

fetch: $(STAMP)
	$(INFRA) fetch

up: $(STAMP)
	$(INFRA) up

status: $(STAMP)
	@$(INFRA) status

down: $(STAMP)
	$(INFRA) down

run: $(STAMP)
	$(BIN)/python -m deploy.local.demo $(ARGS)

# The dashboard test drives a real headless Chromium: Debian's chromium and chromedriver,
# installed on first use when missing (the machine reaches Debian's package mirrors).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing chromium and chromium-driver (Debian packages, first run only)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: $(STAMP) browser
	$(BIN)/python -m pytest tests

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench

HOSTILE_EXAMPLES ?= 500
hostile: $(STAMP)
	PARCOURS_HOSTILE_EXAMPLES=$(HOSTILE_EXAMPLES) $(BIN)/python -m pytest tests/integration/hostile -o timeout=3600

lint: $(STAMP)
	$(BIN)/ruff check shared services deploy tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/python -m shared.schemas docs/contracts

clean: down
	rm -rf .local/run
