# Complaint-processing platform. `make run` for the demo, `make test` for the whole suite.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CACHE_DIR ?= $(HOME)/.cache/complaints
UV_VERSION := 0.13.9
UV_HOME := $(CACHE_DIR)/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
LOCAL := deploy/local

export COMPLAINTS_CACHE_DIR := $(CACHE_DIR)

.PHONY: help venv infra-fetch infra-up infra-down up down run test test-unit test-integration \
        lint format schemas dlq-replay bench bench-service clean prometheus-install check-rules audit \
        chaos

help:
	@echo "make run        set up everything, start the system, feed the samples (Ctrl-C stops)"
	@echo "make test       install, start what the tests need, run the whole suite"
	@echo "make test-unit  fast tests only (no servers)"
	@echo "make up / down  background start (writes .run/endpoints.json) / stop"
	@echo "make infra-up / infra-down   local Kafka + the local store only"
	@echo "make lint       ruff + mypy --strict;  make schemas  re-export JSON Schema + AsyncAPI"
	@echo "make dlq-replay ARGS='--topic T --apply'   re-feed dead-lettered records after a fix"
	@echo "make audit ARGS='case CS20261123-0001' | ARGS='month 2026-11'   compensation audit"
	@echo "make check-rules  promtool check + unit tests of the Prometheus alert rules"
	@echo "make chaos ARGS='--rounds 5 --seed N' | ARGS='--fuzz --records 100000'   fault injection"

# --- Python environment (uv, pinned by uv.lock) ------------------------------------
$(UV):
	python3 -m venv "$(UV_HOME)"
	"$(UV_HOME)/bin/pip" install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	"$(UV)" sync --frozen --python python3 --quiet
	touch $@

venv: $(VENV)/.synced

# --- local infrastructure (no Docker) -----------------------------------------------
infra-fetch: venv
	$(LOCAL)/kafka.sh fetch
	$(LOCAL)/store.sh fetch

infra-up: infra-fetch
	@if [ -z "$${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then $(LOCAL)/kafka.sh start; \
	 else echo "using Kafka at $$KAFKA_BOOTSTRAP_SERVERS"; fi
	@if [ -z "$${MONGODB_URI:-}" ]; then $(LOCAL)/store.sh start; \
	 else echo "using MongoDB at $$MONGODB_URI"; fi

infra-down:
	$(LOCAL)/store.sh stop
	$(LOCAL)/kafka.sh stop

# Prometheus and promtool from Debian's package (make run scrapes the services with it;
# make test checks the alert rules with promtool).
prometheus-install:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
	  echo "installing Debian's prometheus package (prometheus, promtool)"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi

check-rules: prometheus-install
	promtool check rules deploy/prometheus/rules/complaints.rules.yml
	cd deploy/prometheus/rules && promtool test rules complaints.rules.test.yml

# --- the system -------------------------------------------------------------------------
up: infra-up prometheus-install
	$(LOCAL)/services.sh start
	$(LOCAL)/prometheus.sh start || echo "Prometheus did not start; the services run without it"

down:
	$(LOCAL)/prometheus.sh stop
	$(LOCAL)/services.sh stop
	$(LOCAL)/store.sh stop
	$(LOCAL)/kafka.sh stop

run: infra-fetch prometheus-install
	$(LOCAL)/run.sh

audit: venv
	$(PY) -m services.compensation.audit $(ARGS)

# Re-feed dead-lettered records after a fix, e.g. ARGS="--topic complaints.inbound.app --apply"
dlq-replay: venv
	$(PY) -m services.runtime.dlq_replay $(ARGS)

# --- tests and checks ---------------------------------------------------------------
# The test session starts its own Kafka and the local store on separate ports (unless
# KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI are set or a Docker daemon answers).
test: infra-fetch lint check-rules
	$(PY) -m schemas.export --check
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: venv prometheus-install
	$(PY) -m pytest -p no:cacheprovider -m "not integration" $(PYTEST_ARGS)

test-integration: infra-fetch prometheus-install
	$(PY) -m pytest -p no:cacheprovider -m integration $(PYTEST_ARGS)

# End to end, as make up runs the system: raw Kafka baseline, burst rates, latency at a
# fixed load, and again with 10k / 100k stored cases (tests/bench/system.py for options).
bench: infra-fetch
	$(PY) -m tests.bench.system $(ARGS)

# One service against a consume-and-ack baseline, e.g. ARGS="--service triage --records 3000"
bench-service: infra-fetch
	$(PY) -m tests.bench.throughput $(ARGS)

# Fault injection against the real system on private ports under .run/chaos (tests/chaos):
# kill -9 of services and the store, broker restarts, SIGSTOP zombies, then a verdict from
# the outside; each round prints its seed. ARGS="--help" lists the options (rate, faults…).
chaos: infra-fetch
	$(PY) -m tests.chaos $(ARGS)

lint: venv
	$(VENV)/bin/ruff check services schemas tests deploy
	$(VENV)/bin/ruff format --check services schemas tests deploy
	$(VENV)/bin/mypy services schemas

format: venv
	$(VENV)/bin/ruff format services schemas tests deploy
	$(VENV)/bin/ruff check --fix services schemas tests deploy

schemas: venv
	$(PY) -m schemas.export

clean: down
	rm -rf .run
