# Local Kafka and PostgreSQL without Docker (included by the top-level Makefile).
# Data and logs live under var/ (ignored); `rm -rf var` resets both servers.
# KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL in the environment: those servers are used instead.
INFRA := uv run --frozen python -m lastline_infra

.PHONY: deps infra-up infra-down infra-status

deps: ## Python environment (uv sync) and the Kafka jars (Maven, cached in ~/.m2)
	@if [ -f uv.lock ]; then uv sync --frozen; else uv sync; fi
	$(INFRA) deps

infra-up: deps ## Start Kafka and PostgreSQL (idempotent) and create the service roles and schemas
	$(INFRA) up

infra-down: ## Stop the local Kafka and PostgreSQL
	$(INFRA) down

infra-status: ## Show what runs
	$(INFRA) status
