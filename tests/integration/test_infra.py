"""The local infrastructure: a real broker, a real PostgreSQL, provisioning, and the CLI."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError

from lastline_infra import (
    SERVICES,
    InfraEndpoints,
    InfraError,
    Layout,
    create_topics,
    start_kafka,
    start_postgres,
    stop_postgres,
)
from lastline_infra.kafka import new_cluster_id, write_kafka_config
from lastline_infra.postgres import postgres_answers

integration = pytest.mark.integration


# --- Kafka ------------------------------------------------------------------------------------


@integration
async def test_message_round_trip_through_a_fresh_topic(infra: InfraEndpoints) -> None:
    topic = f"test-infra-{uuid.uuid4().hex[:12]}"
    assert await create_topics(infra.kafka_bootstrap, {topic: 3}) == [topic]
    # Creating it again is a no-op, not an error.
    assert await create_topics(infra.kafka_bootstrap, {topic: 3}) == []

    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all", enable_idempotence=True)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        [described] = await admin.describe_topics([topic])
        assert len(described["partitions"]) == 3

        await producer.start()
        sent = await producer.send_and_wait(
            topic, b'{"hello": "kafka"}', key=b"case-1", headers=[("ce_type", b"test")]
        )
        await consumer.start()
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        assert (record.key, record.value) == (b"case-1", b'{"hello": "kafka"}')
        assert (record.partition, record.offset) == (sent.partition, sent.offset)
        assert dict(record.headers) == {"ce_type": b"test"}
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()


@integration
async def test_topics_are_not_created_implicitly(infra: InfraEndpoints) -> None:
    topic = f"test-infra-absent-{uuid.uuid4().hex[:12]}"
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, request_timeout_ms=3000)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    await admin.start()
    try:
        # With auto.create.topics.enable the producer's metadata request would create it.
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(topic, b"lost")
        assert topic not in await admin.list_topics()
    finally:
        await producer.stop()
        await admin.close()


# --- PostgreSQL --------------------------------------------------------------------------------


@integration
async def test_sql_round_trip(infra: InfraEndpoints) -> None:
    conn = await asyncpg.connect(infra.asyncpg_dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "lastline"
        await conn.execute("CREATE TEMP TABLE round_trip (id int PRIMARY KEY, note text)")
        await conn.execute("INSERT INTO round_trip VALUES ($1, $2)", 1, "placed")
        assert await conn.fetchrow("SELECT id, note FROM round_trip") == (1, "placed")
        assert int(await conn.fetchval("SHOW max_connections")) >= 100
        assert await conn.fetchval("SHOW fsync") == "on"
    finally:
        await conn.close()


@integration
@pytest.mark.parametrize("service", SERVICES)
async def test_service_role_logs_in_and_owns_its_schema(infra: InfraEndpoints, service: str) -> None:
    url = infra.service_database_url(service)
    assert os.environ[f"{service.upper()}_DATABASE_URL"] == url
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        assert await conn.fetchval("SELECT current_user") == service
        owner = await conn.fetchval(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", service
        )
        assert owner == service
        # The default search_path ("$user", public) lands unqualified tables in its own schema.
        table = f"probe_{uuid.uuid4().hex[:8]}"
        await conn.execute(f"CREATE TABLE {table} (id int)")
        assert await conn.fetchval("SELECT to_regclass($1)::text", f"{service}.{table}") is not None
        await conn.execute(f"DROP TABLE {table}")
        # ... and it cannot write into another service's schema.
        other = next(name for name in SERVICES if name != service)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"CREATE TABLE {other}.{table} (id int)")
    finally:
        await conn.close()


# --- the CLI and the lifecycle ------------------------------------------------------------------


def _local_env() -> dict[str, str]:
    """The environment without the exported endpoints, so the CLI manages the local servers."""
    env = dict(os.environ)
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
        env.pop(key, None)
    return env


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lastline_infra", *args],
        capture_output=True,
        text=True,
        env=_local_env(),
        timeout=180,
        check=False,
    )


def _pids(status_output: str) -> dict[str, str]:
    return dict(re.findall(r"^(kafka|postgres)\s+running\s+\S+ pid (\d+)", status_output, re.M))


@pytest.fixture
def managed(infra: InfraEndpoints) -> InfraEndpoints:
    if not (infra.kafka_managed and infra.postgres_managed):
        pytest.skip("the servers are not run by lastline_infra (env vars or containers)")
    return infra


@integration
def test_up_twice_is_idempotent(managed: InfraEndpoints) -> None:
    before = _cli("status")
    assert before.returncode == 0, before.stdout + before.stderr
    for _ in range(2):
        up = _cli("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"KAFKA_BOOTSTRAP_SERVERS={managed.kafka_bootstrap}" in up.stdout
        # Already running: the same processes answer, nothing was restarted.
        assert _pids(up.stdout) == _pids(before.stdout)
        assert set(_pids(up.stdout)) == {"kafka", "postgres"}


@integration
def test_env_prints_the_endpoints(managed: InfraEndpoints) -> None:
    result = _cli("env")
    assert result.returncode == 0
    layout = Layout.default()
    assert result.stdout.splitlines() == [
        f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{layout.kafka_port}",
        f"DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:{layout.postgres_port}/lastline",
    ]


@integration
async def test_postgres_restart_keeps_data(managed: InfraEndpoints) -> None:
    conn = await asyncpg.connect(managed.asyncpg_dsn)
    table = f"restart_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE TABLE public.{table} (id int); INSERT INTO public.{table} VALUES (7)")
    await conn.close()
    try:
        assert await stop_postgres() is True
        assert await postgres_answers(managed.asyncpg_dsn) is False
        await start_postgres()
        conn = await asyncpg.connect(managed.asyncpg_dsn)
        assert await conn.fetchval(f"SELECT id FROM public.{table}") == 7
        await conn.execute(f"DROP TABLE public.{table}")
        await conn.close()
    finally:
        await start_postgres()  # idempotent: leaves the server up whatever happened above


# --- failure messages (real sockets, no servers needed) -------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something other than lastline_infra listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@integration
async def test_taken_kafka_port_is_reported_with_the_fix(tmp_path: Path, busy_port: int) -> None:
    layout = Layout(var_dir=tmp_path, kafka_port=busy_port, kafka_controller_port=busy_port)
    with pytest.raises(InfraError, match=f"port {busy_port} is taken.*KAFKA_BOOTSTRAP_SERVERS"):
        await start_kafka(layout)
    assert not (tmp_path / "kafka" / "kafka.pid").exists()


@integration
async def test_taken_postgres_port_is_reported_with_the_fix(tmp_path: Path, busy_port: int) -> None:
    layout = Layout(var_dir=tmp_path, postgres_port=busy_port)
    with pytest.raises(InfraError, match=f"port {busy_port} is taken.*DATABASE_URL"):
        await start_postgres(layout)


# --- pure helpers ------------------------------------------------------------------------------


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cluster_id) for cluster_id in ids)


def test_server_properties_describe_a_single_node_kraft_cluster(tmp_path: Path) -> None:
    layout = Layout(var_dir=tmp_path)
    layout.kafka_dir.mkdir()
    write_kafka_config(layout)
    lines = layout.kafka_properties.read_text().splitlines()
    props = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "12"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert f'fileName="{tmp_path}/kafka/logs/server.log"' in layout.kafka_log4j_config.read_text()


def test_service_urls_swap_only_the_credentials() -> None:
    endpoints = InfraEndpoints("k:9092", "postgresql+asyncpg://postgres@db.example:6543/lastline")
    assert endpoints.service_database_url("intake") == (
        "postgresql+asyncpg://intake:intake@db.example:6543/lastline"
    )
    assert endpoints.asyncpg_dsn == "postgresql://postgres@db.example:6543/lastline"
