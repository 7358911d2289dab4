# kneeload — the two set-up commands are `make demo` and `make test` (README).
# Every target installs what it needs and is safe to repeat.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PY_VERSION ?= 3.11
PYTHON ?= $(shell command -v python$(PY_VERSION) || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
KNEELOAD := $(BIN)/kneeload
KAFKA_LIBS := var/kafka/libs
DEBS := postgresql-15 mosquitto
PYTEST_ARGS ?=

.PHONY: bench chaos demo compose-check help install debs kafka-jars timescaledb up down status topics migrate test test-timescale demo bench lint lock clean-var

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	@$(BIN)/uv pip sync -q requirements.lock --python $(BIN)/python
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

install: $(BIN)/.installed debs kafka-jars  ## Python venv (pinned), Debian packages, Kafka jars

debs:  ## Debian packages for PostgreSQL 15, Mosquitto and headless Chromium (apt-get, only when missing)
	@missing=""; \
	test -x /usr/lib/postgresql/15/bin/initdb || missing="$$missing postgresql-15"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  systemctl disable --now mosquitto >/dev/null 2>&1 || service mosquitto stop >/dev/null 2>&1 || true; \
	fi

$(KAFKA_LIBS)/.fetched: infra/kafka/pom.xml
	@echo "fetching Apache Kafka jars from Maven Central (infra/kafka/pom.xml)"
	@rm -rf $(KAFKA_LIBS) && mkdir -p $(KAFKA_LIBS)
	@mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS)
	@touch $@

kafka-jars: $(KAFKA_LIBS)/.fetched

TIMESCALEDB_VERSION ?= 2.28.3
TIMESCALEDB_TARBALL ?= ../shared/vendor/timescaledb-$(TIMESCALEDB_VERSION).tar.gz
timescaledb:  ## build TimescaleDB from its source archive into PostgreSQL 15 (once; skipped when installed)
	@TIMESCALEDB_VERSION=$(TIMESCALEDB_VERSION) TIMESCALEDB_TARBALL=$(TIMESCALEDB_TARBALL) infra/timescaledb/install.sh

up: install  ## start Kafka, PostgreSQL and Mosquitto (health-checked), reconcile topics, migrate
	@$(KNEELOAD) stack up
	@$(KNEELOAD) init

down:  ## stop the local stack (data in var/ is kept)
	@if [ -x $(KNEELOAD) ]; then $(KNEELOAD) stack down; fi

status:  ## report each component of the stack
	@$(KNEELOAD) stack status

#: the database tests run a second time on TimescaleDB when it is installed (make timescaledb)
TIMESCALE_TESTS ?= tests/storage tests/dashboards tests/worker/test_rebuild_state.py tests/demo/test_demo_e2e.py
HAS_TIMESCALEDB = $(BIN)/python -c "from kneeload.stack.postgres import timescaledb_version as v; raise SystemExit(v() is None)"

test: install  ## start the stack, run the whole suite (plain PostgreSQL), then the database tests on TimescaleDB when installed
	@rm -f var/.test-started; mkdir -p var
	@$(KNEELOAD) stack up --record var/.test-started
	@status=0; start=$$(date +%s); $(BIN)/pytest --flavour=plain $(PYTEST_ARGS) || status=$$?; \
	  echo "make test: the suite on plain PostgreSQL took $$(( $$(date +%s) - start )) s"; \
	  if $(HAS_TIMESCALEDB); then \
	    start=$$(date +%s); $(BIN)/pytest --flavour=timescale $(PYTEST_ARGS) $(TIMESCALE_TESTS) || status=$$?; \
	    echo "make test: the database tests on TimescaleDB took $$(( $$(date +%s) - start )) s"; \
	  else echo "make test: TimescaleDB is not installed (make timescaledb): its pass skipped"; fi; \
	  $(KNEELOAD) stack down --only-recorded var/.test-started; exit $$status

test-timescale: install  ## only the database tests, on a throwaway TimescaleDB cluster (needs make timescaledb)
	@$(KNEELOAD) stack up
	@$(BIN)/pytest --flavour=timescale $(PYTEST_ARGS) $(TIMESCALE_TESTS)

demo: install  ## start the stack and every service, drive a simulated team + clinic through them, summarise in out/
	@$(KNEELOAD) stack up
	@$(KNEELOAD) demo $(DEMO_ARGS)

BENCH_ARGS ?=
bench: install  ## all benchmarks, each on its own database and topic prefix -> loadtests/results/latest.{json,md}
	@$(KNEELOAD) stack up
	@$(KNEELOAD) init
	@$(BIN)/python loadtests/run_all.py $(BENCH_ARGS)

CHAOS_ARGS ?=
chaos: install  ## >= 20 faults vs an undisturbed run, on a private stack (var/chaos/) -> loadtests/results/chaos.{json,md}
	@$(BIN)/python -m loadtests.chaos $(CHAOS_ARGS)

compose-check:  ## validate infra/compose.yaml with compose-go (the library behind `docker compose config`)
	@set -a && . infra/compose-check.env && set +a && cd infra/composecheck && go run . ../compose.yaml >/dev/null && echo "infra/compose.yaml: valid"

lint:  ## ruff and mypy
	@$(BIN)/ruff check services tests loadtests
	@$(BIN)/mypy

lock:  ## re-resolve pinned dependencies: requirements.lock (with dev tools) and requirements-prod.lock (the image's, same pins)
	@$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version $(PY_VERSION) -o requirements.lock
	@$(BIN)/uv pip compile -q pyproject.toml --python-version $(PY_VERSION) -c requirements.lock -o requirements-prod.lock

clean-var: down  ## delete all local stack data
	rm -rf var
