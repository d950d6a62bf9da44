# Parcours: the two commands are `make run` and `make test`; the rest is for developers.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INFRA := $(BIN)/python -m deploy.local.infra

.PHONY: help install fetch browser postgres up down status run test test-unit test-fast bench hostile lint typecheck contracts clean

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

# The local database is FerretDB storing into a PostgreSQL server of its own (docs/adr/0012):
# Debian's postgresql package, installed on first use when missing (without the package's own
# default cluster: ours is started by deploy/local, on a Unix socket, and stopped with the rest).
postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || [ -n "$$PARCOURS_LOCAL_PG_BINDIR" ] \
	  || [ "$$PARCOURS_LOCAL_DB_BACKEND" = sqlite ] || { \
	  echo "installing postgresql (Debian package, first run only)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO mkdir -p /etc/postgresql-common; \
	  [ -f /etc/postgresql-common/createcluster.conf ] || \
	    echo "create_main_cluster = false" | $$SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    -o Dpkg::Options::=--force-confold postgresql >/dev/null; }

fetch: $(STAMP) postgres
	$(INFRA) fetch

up: $(STAMP) postgres
	$(INFRA) up

status: $(STAMP)
	@$(INFRA) status

down: $(STAMP)
	$(INFRA) down

run: $(STAMP) postgres
	$(BIN)/python -m deploy.local.demo $(ARGS)

# The dashboard test drives a real headless Chromium: Debian's chromium and chromedriver,
# installed on first use when missing (the machine reaches Debian's package mirrors).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing chromium and chromium-driver (Debian packages, first run only)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: $(STAMP) browser postgres
	$(BIN)/python -m pytest tests

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

bench: $(STAMP) postgres
	$(BIN)/python -m bench

HOSTILE_EXAMPLES ?= 500
hostile: $(STAMP) postgres
	PARCOURS_HOSTILE_EXAMPLES=$(HOSTILE_EXAMPLES) $(BIN)/python -m pytest tests/integration/hostile -o timeout=3600

lint: $(STAMP)
	$(BIN)/ruff check shared services deploy tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/python -m shared.schemas docs/contracts

clean: $(STAMP)
	$(INFRA) purge
	rm -rf .local/run
