"""Local Kafka and PostgreSQL for development and tests, without Docker.

``python -m lastline_infra up|down|status|env`` from a shell; from Python (all coroutines)::

    endpoints = await ensure_up()          # InfraEndpoints(kafka_bootstrap, database_url, ...)
    await create_topics(endpoints.kafka_bootstrap, {"cases": 12})
    await stop_kafka(); await start_kafka()  # fault tests
"""

from lastline_infra.endpoints import InfraEndpoints
from lastline_infra.errors import InfraError
from lastline_infra.layout import SERVICES, Layout
from lastline_infra.provisioning import provision
from lastline_infra.stack import (
    ComponentStatus,
    configured_endpoints,
    create_topics,
    down,
    ensure_up,
    start_kafka,
    start_postgres,
    status,
    stop_kafka,
    stop_postgres,
)

__all__ = [
    "SERVICES",
    "ComponentStatus",
    "InfraEndpoints",
    "InfraError",
    "Layout",
    "configured_endpoints",
    "create_topics",
    "down",
    "ensure_up",
    "provision",
    "start_kafka",
    "start_postgres",
    "status",
    "stop_kafka",
    "stop_postgres",
]
