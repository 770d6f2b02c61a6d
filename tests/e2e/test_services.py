"""The running system: each service as its own process against the real Kafka and PostgreSQL,
and ``python -m lastline_infra.platform run`` (``make run``) itself.

The tests that use the module's ``services`` run in file order: the SIGTERM test stops them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import signal
import sys
import time
import uuid
import zlib
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families

from lastline_infra import SERVICES, InfraEndpoints
from lastline_infra.platform import ServiceProcess, wait_all_ready
from lastline_infra.processes import pid_exists
from lastline_shared.contracts.topics import shared_topic_names
from tests.e2e.conftest import READY_WITHIN_S, free_port, service_process, stop_all
from tests.support.output import read_until

pytestmark = pytest.mark.e2e

READINESS_CHECKS = {"database", "kafka", "outbox_relay"}
SHARED_METRICS = {
    "lastline_events_consumed",
    "lastline_events_published",
    "lastline_handler_duration_seconds",
    "lastline_outbox_backlog",
    "lastline_dlq_events",
    "lastline_consumer_lag",
    "lastline_relay_publish_duration_seconds",
}
# Alembic's line for every revision it applies: "Running <function> <from> -> <to>, <message>".
MIGRATION_LOG_LINE = re.compile(r'"event": "Running \w+ [^"]*-> ')

# Sessions waiting for a one-key (bigint) advisory lock; a key below 2**32 shows as objid.
WAITING_FOR_ADVISORY_LOCK = """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objid::bigint = $1 AND objsubid = 1
"""


def migrations(service: str) -> ScriptDirectory:
    """The service's Alembic scripts, found without importing (and so configuring) the service."""
    spec = importlib.util.find_spec(f"lastline_{service}")
    assert spec is not None
    assert spec.origin is not None
    return ScriptDirectory(str(Path(spec.origin).parent / "migrations"))


# --- the four services, each its own process ----------------------------------------------------


async def test_each_service_is_alive_and_ready(services: dict[str, ServiceProcess]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for name, service in services.items():
            health = await client.get(f"{service.address.url}/health")
            assert (health.status_code, health.json()) == (200, {"status": "ok"}), name
            ready = await client.get(f"{service.address.url}/ready")
            assert ready.status_code == 200, (name, ready.text)
            body = ready.json()
            assert (body["status"], body["failed"]) == ("ready", []), name
            assert body["checks"].keys() >= READINESS_CHECKS, (name, body)
            assert set(body["checks"].values()) == {"ok"}, (name, body)


async def test_each_service_exposes_the_shared_metrics(services: dict[str, ServiceProcess]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for name, service in services.items():
            # The outbox backlog gauge is read by a task that starts with the service: give it a moment.
            deadline = time.monotonic() + 10
            while True:
                response = await client.get(f"{service.address.url}/metrics")
                assert response.status_code == 200, name
                families = {f.name: f for f in text_string_to_metric_families(response.text)}
                backlog = [
                    s for s in families["lastline_outbox_backlog"].samples if s.labels == {"service": name}
                ]
                if backlog or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert families.keys() >= SHARED_METRICS, (name, SHARED_METRICS - families.keys())
            assert backlog, f"{name}: no lastline_outbox_backlog sample for it"
            assert backlog[0].value >= 0


async def test_each_schema_is_migrated_and_owned_by_its_role(
    services: dict[str, ServiceProcess], infra: InfraEndpoints
) -> None:
    conn = await asyncpg.connect(infra.asyncpg_dsn)
    try:
        for name in services:
            schema_owner = await conn.fetchval(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", name
            )
            assert schema_owner == name
            tables = dict(
                await conn.fetch("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = $1", name)
            )
            assert {"alembic_version", "outbox", "inbox"} <= tables.keys(), (name, tables)
            assert set(tables.values()) == {name}, (name, tables)
            versions = await conn.fetch(f'SELECT version_num FROM "{name}".alembic_version')
            assert [row["version_num"] for row in versions] == migrations(name).get_heads()
    finally:
        await conn.close()


async def test_every_registry_topic_exists(
    services: dict[str, ServiceProcess], infra: InfraEndpoints
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert set(shared_topic_names()) - existing == set()


async def test_sigterm_stops_each_service_cleanly(services: dict[str, ServiceProcess]) -> None:
    started = time.monotonic()
    for service in services.values():
        assert service.proc is not None
        assert service.exit_code() is None, service.name
        service.proc.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(
        *(asyncio.to_thread(service.proc.wait, 30) for service in services.values() if service.proc)
    )
    assert time.monotonic() - started < 30
    assert dict(zip(services, codes, strict=True)) == dict.fromkeys(services, 0)
    for service in services.values():
        assert '"service stopped"' in service.log_path.read_text(), service.log_tail()


# --- two instances of one service ----------------------------------------------------------------


async def test_two_instances_started_together_both_serve_and_migrate_once(
    infra: InfraEndpoints, tmp_path: Path
) -> None:
    # A fresh schema, so that the instances race for the first migration.
    schema = f"matching_e2e_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(infra.asyncpg_dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION matching')
    instances = [
        service_process("matching", infra, tmp_path / label, MATCHING_DB_SCHEMA=schema) for label in "ab"
    ]
    # Hold the lock the migrations take (shared/migrations.py) until both instances wait for it,
    # so that they really migrate at the same time.
    migration_lock = zlib.crc32(schema.encode())
    await admin.execute("SELECT pg_advisory_lock($1)", migration_lock)
    try:
        for instance in instances:
            instance.start()
        deadline = time.monotonic() + READY_WITHIN_S
        while await admin.fetchval(WAITING_FOR_ADVISORY_LOCK, migration_lock) < 2:
            assert time.monotonic() < deadline, "the instances never waited for the migration lock"
            await asyncio.sleep(0.1)
        await admin.execute("SELECT pg_advisory_unlock($1)", migration_lock)
        await wait_all_ready(instances, within_s=READY_WITHIN_S)

        upgrades = [len(MIGRATION_LOG_LINE.findall(i.log_path.read_text())) for i in instances]
        assert sorted(upgrades) == [0, len(list(migrations("matching").walk_revisions()))], upgrades
        versions = await admin.fetch(f'SELECT version_num FROM "{schema}".alembic_version')
        assert [row["version_num"] for row in versions] == migrations("matching").get_heads()
    finally:
        await stop_all(instances)
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


# --- make run: python -m lastline_infra.platform run ------------------------------------------------


async def platform(command: str, *args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lastline_infra.platform",
        command,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


def platform_env(var_dir: Path, services: tuple[str, ...]) -> tuple[dict[str, str], dict[str, int]]:
    """The test environment with its own var/ (logs and pid files) and free service ports."""
    ports = {name: free_port() for name in services}
    env = dict(os.environ) | {"LASTLINE_VAR_DIR": str(var_dir)}
    env |= {f"{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()}
    return env, ports


async def until_ready(url: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(f"{url}/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} not ready within {within_s:.0f}s"
            await asyncio.sleep(0.25)


def pids(var_dir: Path) -> dict[str, int]:
    return {path.stem: int(path.read_text()) for path in (var_dir / "run").glob("*.pid")}


@pytest.mark.usefixtures("infra")
async def test_platform_run_serves_restarts_and_stops(tmp_path: Path) -> None:
    env, ports = platform_env(tmp_path, SERVICES)
    supervisor = await platform("run", env=env)
    assert supervisor.stdout is not None
    try:
        output = await read_until(supervisor.stdout, "Demo data", READY_WITHIN_S + 30)
        started = pids(tmp_path)
        assert started.keys() == {*SERVICES, "platform"}
        assert started["platform"] == supervisor.pid
        async with httpx.AsyncClient(timeout=5) as client:
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}"
                assert f"{url}/docs" in output, name
                assert f"{url}/metrics" in output, name
                assert (await client.get(f"{url}/ready")).status_code == 200, name
                assert (await client.get(f"{url}/docs")).status_code == 200, name

        # A service that dies is restarted.
        os.kill(started["matching"], signal.SIGKILL)
        await read_until(supervisor.stdout, "matching restarted", 30)
        restarted = pids(tmp_path)["matching"]
        assert restarted != started["matching"]
        await until_ready(f"http://127.0.0.1:{ports['matching']}", READY_WITHIN_S)

        # `make stop` from another terminal: the supervisor stops its services and exits 0.
        stopper = await platform("stop", env=env)
        stop_output, _ = await asyncio.wait_for(stopper.communicate(), 60)
        assert stopper.returncode == 0, stop_output.decode()
        assert await asyncio.wait_for(supervisor.wait(), 10) == 0
        rest = (await supervisor.stdout.read()).decode()
        for name in SERVICES:
            assert f"{name} stopped" in rest, rest
        for name, pid in (started | {"matching": restarted}).items():
            assert not pid_exists(pid), f"{name} (pid {pid}) still runs"
        assert pids(tmp_path) == {}
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()


@pytest.mark.usefixtures("infra")
async def test_platform_run_stops_on_ctrl_c(tmp_path: Path) -> None:
    env, ports = platform_env(tmp_path, ("reporting",))
    supervisor = await platform("run", "reporting", env=env)
    assert supervisor.stdout is not None
    try:
        output = await read_until(supervisor.stdout, "Demo data", READY_WITHIN_S + 30)
        assert f"http://127.0.0.1:{ports['reporting']}/docs" in output
        assert "intake" not in output  # only the service asked for
        service_pid = pids(tmp_path)["reporting"]

        supervisor.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(supervisor.wait(), 40) == 0
        assert "reporting stopped" in (await supervisor.stdout.read()).decode()
        assert not pid_exists(service_pid)
        assert pids(tmp_path) == {}
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()

    # Nothing is left for `make stop`.
    stopper = await platform("stop", env=env)
    stop_output, _ = await stopper.communicate()
    assert (stopper.returncode, stop_output.decode().strip()) == (0, "nothing was running")
