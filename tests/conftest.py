"""Root conftest: the real Kafka and PostgreSQL that integration and e2e tests run against.

The session fixture ``infra`` finds them, first match wins:

1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` in the environment: those servers (checked, and
   the service roles and schemas provisioned); a component not named there is started locally.
2. A Docker engine that answers (``docker info``), when neither variable is set: testcontainers.
   ``LASTLINE_TEST_INFRA=local`` skips this and uses the next way even where Docker runs.
3. ``lastline_infra.ensure_up()``: a local broker and PostgreSQL without Docker, left running
   afterwards so the next run starts in a second (``make infra-down`` stops them).

It exports ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` and each service's
``<SERVICE>_DATABASE_URL`` (its own role) for the processes that tests start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import pytest_asyncio

from lastline_infra import SERVICES, InfraEndpoints, ensure_up, provision

# testcontainers' KafkaContainer scripts the start of Confluent's image, not apache/kafka.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
POSTGRES_IMAGE = "postgres:18"


def _docker_answers() -> bool:
    if os.environ.get("LASTLINE_TEST_INFRA", "auto") == "local" or shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _start_containers(stack: ExitStack) -> InfraEndpoints:
    """Kafka (KRaft) and PostgreSQL in containers, stopped when ``stack`` closes."""
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    kafka: Any = (
        KafkaContainer(KAFKA_IMAGE)
        .with_kraft()
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .with_env("KAFKA_NUM_PARTITIONS", "12")
    )
    postgres: Any = PostgresContainer(
        POSTGRES_IMAGE,
        username="postgres",
        password="postgres",
        dbname="lastline",
        driver="asyncpg",
    )
    stack.enter_context(kafka)
    stack.enter_context(postgres)
    return InfraEndpoints(
        kafka_bootstrap=kafka.get_bootstrap_server(), database_url=postgres.get_connection_url()
    )


@pytest.fixture(scope="session")
def _infra_containers() -> Iterator[InfraEndpoints | None]:
    """Containers when Docker answers and no server is given by env vars, else None."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("DATABASE_URL")
    if given or not _docker_answers():
        yield None
        return
    with ExitStack() as stack:
        yield _start_containers(stack)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def infra(_infra_containers: InfraEndpoints | None) -> AsyncIterator[InfraEndpoints]:
    """Endpoints of a real Kafka broker and PostgreSQL, exported as env vars for subprocesses."""
    if _infra_containers is not None:
        endpoints = _infra_containers
        await provision(endpoints.database_url)
    else:
        endpoints = await ensure_up()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in endpoints.env().items():
            patch.setenv(key, value)
        for service in SERVICES:
            patch.setenv(f"{service.upper()}_DATABASE_URL", endpoints.service_database_url(service))
        yield endpoints
