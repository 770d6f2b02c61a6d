"""Both servers together: bring them up (or check the ones given by env vars), stop, report.

Every public coroutine takes an optional Layout (default: the repository's var/ folder and the
default ports) and holds an inter-process lock while it changes anything, since several people
and test sessions share one var/ folder.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lastline_infra import kafka, postgres
from lastline_infra.endpoints import InfraEndpoints
from lastline_infra.errors import InfraError
from lastline_infra.layout import Layout
from lastline_infra.processes import file_lock, wait_until
from lastline_infra.provisioning import provision, redact_password, with_database

KAFKA_ENV = "KAFKA_BOOTSTRAP_SERVERS"
DATABASE_ENV = "DATABASE_URL"
EXTERNAL_TIMEOUT_S = 20.0


def _layout(layout: Layout | None) -> Layout:
    return layout or Layout.default()


def external_kafka() -> str | None:
    return os.environ.get(KAFKA_ENV) or None


def external_database() -> str | None:
    return os.environ.get(DATABASE_ENV) or None


def configured_endpoints(layout: Layout | None = None) -> InfraEndpoints:
    """What ``up`` would give, without starting or checking anything (the ``env`` command)."""
    lay = _layout(layout)
    kafka_url, database_url = external_kafka(), external_database()
    return InfraEndpoints(
        kafka_bootstrap=kafka_url or lay.kafka_bootstrap,
        database_url=database_url or lay.database_url,
        kafka_managed=kafka_url is None,
        postgres_managed=database_url is None,
    )


async def _first_error(*coros: Coroutine[Any, Any, object]) -> None:
    """Run concurrently; on failure re-raise the first error itself, not an ExceptionGroup."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except* InfraError as errors:
        raise errors.exceptions[0] from None


async def _check_external(what: str, answers: Callable[[], Awaitable[bool]], fix: str) -> None:
    try:
        await wait_until(answers, within_s=EXTERNAL_TIMEOUT_S, what=what)
    except InfraError:
        raise InfraError(f"{what} does not answer: {fix}") from None


async def ensure_up(layout: Layout | None = None) -> InfraEndpoints:
    """Start (or reuse) Kafka and PostgreSQL, wait until both answer, provision the database.

    A server named by KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL is not started, only checked (and
    the database is still provisioned with the service roles and schemas).
    """
    lay = _layout(layout)
    endpoints = configured_endpoints(lay)
    async with file_lock(lay.lock_file):
        await _first_error(_kafka_up(lay, endpoints), _postgres_up(lay, endpoints))
        await provision(endpoints.database_url)
    return endpoints


async def _kafka_up(layout: Layout, endpoints: InfraEndpoints) -> None:
    if endpoints.kafka_managed:
        await kafka.start_kafka(layout)
        return
    await _check_external(
        f"{KAFKA_ENV}={endpoints.kafka_bootstrap}",
        lambda: kafka.kafka_answers(endpoints.kafka_bootstrap),
        f"start that broker, or unset {KAFKA_ENV} to run a local one",
    )


async def _postgres_up(layout: Layout, endpoints: InfraEndpoints) -> None:
    if endpoints.postgres_managed:
        await postgres.start_postgres(layout)
        return
    url = endpoints.database_url

    async def answers() -> bool:
        # Its database may not exist yet (provisioning creates it): the server answering is enough.
        return await postgres.postgres_answers(url) or await postgres.postgres_answers(
            with_database(postgres.asyncpg_dsn(url), "postgres")
        )

    await _check_external(
        f"{DATABASE_ENV}={redact_password(url)}",
        answers,
        f"start that server, or unset {DATABASE_ENV} to run a local one",
    )


async def down(layout: Layout | None = None) -> dict[str, bool]:
    """Stop both local servers; returns which ones were running. External ones are left alone."""
    lay = _layout(layout)
    async with file_lock(lay.lock_file):
        was_kafka, was_postgres = await asyncio.gather(kafka.stop_kafka(lay), postgres.stop_postgres(lay))
    return {"kafka": was_kafka, "postgres": was_postgres}


async def fetch_kafka_jars(layout: Layout | None = None) -> None:
    """Check Java and fetch the broker's jars (``make deps``), without starting anything."""
    lay = _layout(layout)
    await kafka.check_java()
    async with file_lock(lay.lock_file):
        await kafka.ensure_kafka_libs(lay)


async def start_kafka(layout: Layout | None = None) -> int:
    """Start the local broker (fault tests restart it); returns its pid once it answers."""
    lay = _layout(layout)
    async with file_lock(lay.lock_file):
        return await kafka.start_kafka(lay)


async def stop_kafka(layout: Layout | None = None) -> bool:
    lay = _layout(layout)
    async with file_lock(lay.lock_file):
        return await kafka.stop_kafka(lay)


async def start_postgres(layout: Layout | None = None) -> int:
    """Start the local PostgreSQL; returns the postmaster's pid once ``SELECT 1`` succeeds."""
    lay = _layout(layout)
    async with file_lock(lay.lock_file):
        return await postgres.start_postgres(lay)


async def stop_postgres(layout: Layout | None = None) -> bool:
    lay = _layout(layout)
    async with file_lock(lay.lock_file):
        return await postgres.stop_postgres(lay)


async def create_topics(bootstrap: str, topics: dict[str, int], *, replication_factor: int = 1) -> list[str]:
    """Create missing topics ({name: partitions}); returns the names actually created."""
    return await kafka.create_topics(bootstrap, topics, replication_factor=replication_factor)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    detail: str

    def line(self) -> str:
        return f"{self.name:<9}{'running' if self.running else 'stopped':<9}{self.detail}"


async def status(layout: Layout | None = None) -> list[ComponentStatus]:
    """What runs now (no lock: read-only)."""
    lay = _layout(layout)
    endpoints = configured_endpoints(lay)
    db_address = urlsplit(endpoints.database_url)
    kafka_answers, postgres_answers = await asyncio.gather(
        kafka.kafka_answers(endpoints.kafka_bootstrap),
        postgres.postgres_answers(
            endpoints.database_url if not endpoints.postgres_managed else postgres.maintenance_dsn(lay)
        ),
    )
    result = []
    for name, managed, address, pid, answers, logs in (
        ("kafka", endpoints.kafka_managed, endpoints.kafka_bootstrap, kafka.kafka_pid(lay),
         kafka_answers, lay.kafka_logs),
        ("postgres", endpoints.postgres_managed, f"{db_address.hostname}:{db_address.port or 5432}",
         postgres.postgres_pid(lay), postgres_answers, lay.postgres_log),
    ):  # fmt: skip
        if not managed:
            state = "answers" if answers else "does not answer"
            result.append(ComponentStatus(name, answers, f"external ({address} from env), {state}"))
        elif pid is None:
            result.append(ComponentStatus(name, False, f"(logs: {logs})"))
        else:
            state = "ready" if answers else "not answering yet"
            detail = f"{address} pid {pid}, {state} (logs: {logs})"
            result.append(ComponentStatus(name, True, detail))
    return result
