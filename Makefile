# Lastline: `make run` runs the whole platform, `make test` runs the whole suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := uv run --frozen

include infra/infra.mk

.PHONY: help run test test-unit test-integration lint typecheck docs bench stop

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: infra-up ## Set up, start Kafka, PostgreSQL, the services, a mail catcher and a demo (DEMO=0: none), print the URLs
	$(PY) python -m lastline_infra.platform run --mail-catcher $(if $(filter 0,$(DEMO)),,--demo)

stop: ## Stop the services started by `make run` and the infrastructure
	-$(PY) python -m lastline_infra.platform stop
	$(MAKE) infra-down

test: infra-up ## The whole suite: lint, types, unit, integration and e2e tests against real Kafka and PostgreSQL
	$(PY) ruff check .
	$(PY) ruff format --check .
	$(PY) mypy
	$(PY) pytest

test-unit: deps ## Unit tests only (no I/O)
	$(PY) pytest tests/unit

lint: deps ## ruff and mypy
	$(PY) ruff check .
	$(PY) ruff format --check .
	$(PY) mypy

docs: deps ## Regenerate JSON Schemas, AsyncAPI and OpenAPI documents under docs/
	$(PY) python -m lastline_shared.contracts.export docs/schemas
	$(PY) python -m lastline_infra.asyncapi docs/asyncapi
	$(PY) python -m lastline_infra.openapi docs/openapi

bench: infra-up ## Benchmarks; prints a table and writes bench/results.json
	$(PY) python -m bench

.PHONY: chaos
chaos: deps ## Faults under load on its own Kafka and PostgreSQL (var/chaos); writes var/chaos/report.json
	$(PY) python -m chaos
