"""`lastline-intake partners ...` as a user runs it, against the real database and broker.

The CLI runs in a subprocess with the environment the ``infra`` fixture exports (intake reads its
settings at import time); the test then looks at intake's schema and the broker directly.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, inspect, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lastline_intake.partners import PartnerRepository, generate_key, hash_key, parse_key
from lastline_shared.contracts.topics import partner_topic_partitions
from lastline_shared.db import make_engine, make_session_factory, new_metadata
from lastline_shared.settings import IntakeSettings

pytestmark = pytest.mark.integration

PARTITIONS = 2  # INTAKE_TOPIC_PARTITIONS for the CLI: small topics, and proof the setting is used


@dataclass
class Cli:
    returncode: int
    stdout: str
    stderr: str

    @property
    def fields(self) -> dict[str, str]:
        """``name: value`` lines of stdout."""
        return dict(line.split(": ", 1) for line in self.stdout.splitlines() if ": " in line)


async def cli(*args: str) -> Cli:
    env = os.environ | {"INTAKE_TOPIC_PARTITIONS": str(PARTITIONS)}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "lastline_intake", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return Cli(done.returncode, done.stdout, done.stderr)


async def create(partner_id: str, name: str = "South Texas Clinic") -> Cli:
    return await cli(
        "partners", "create", partner_id, "--name", name, "--kind", "clinic", "--email", "Intake@Example.ORG"
    )


@dataclass
class Intake:
    settings: IntakeSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    repo: PartnerRepository

    async def verify(self, presented: str) -> str | None:
        async with self.sessions() as session, session.begin():
            return await self.repo.verify_key(session, presented)

    async def topics(self) -> dict[str, int]:
        """Every topic on the broker -> its partition count."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            described = await admin.describe_topics(await admin.list_topics())
        finally:
            await admin.close()
        return {t["topic"]: len(t["partitions"]) for t in described}


@pytest_asyncio.fixture
async def intake(infra: Any) -> AsyncIterator[Intake]:
    settings = IntakeSettings()  # after ``infra`` exported the environment
    engine = make_engine(settings.database_url, settings.db_schema, pool_size=2)
    try:
        yield Intake(settings, engine, make_session_factory(engine), PartnerRepository(new_metadata()))
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def partner_id(intake: Intake) -> AsyncIterator[str]:
    """A fresh partner id; its rows and topics are removed afterwards."""
    pid = f"t-{uuid.uuid4().hex[:12]}"
    yield pid
    async with intake.sessions() as session, session.begin():
        await session.execute(delete(intake.repo.partners).where(intake.repo.partners.c.partner_id == pid))
    admin = AIOKafkaAdminClient(bootstrap_servers=intake.settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        leftover = set(partner_topic_partitions(pid)) & set(await admin.list_topics())
        if leftover:
            await admin.delete_topics(list(leftover))
    finally:
        await admin.close()


async def test_create_prints_the_key_once_makes_the_topics_and_the_key_verifies(
    intake: Intake, partner_id: str
) -> None:
    done = await create(partner_id)
    assert done.returncode == 0, done.stderr
    out = done.fields
    assert out["partner_id"] == partner_id
    assert out["submissions_topic"] == f"partner.{partner_id}.submissions"
    assert out["rejections_topic"] == f"partner.{partner_id}.rejections"
    key = out["api_key"]
    assert parse_key(key) is not None
    assert out["key_id"] == parse_key(key).key_id  # type: ignore[union-attr]
    assert done.stdout.count(key) == 1
    assert key not in done.stderr
    assert "shown only once" in done.stderr

    async with intake.sessions() as session:
        partner = await intake.repo.get_partner(session, partner_id)
    assert partner is not None
    assert (partner.name, partner.kind, partner.contact_email, partner.active) == (
        "South Texas Clinic",
        "clinic",
        "Intake@example.org",
        True,
    )

    topics = await intake.topics()
    for name in partner_topic_partitions(partner_id):  # both topics and their DLQs
        assert topics.get(name) == PARTITIONS, name

    assert await intake.verify(key) == partner_id
    wrong_secret = f"ll_{out['key_id']}_{generate_key().secret}"
    assert await intake.verify(wrong_secret) is None
    assert await intake.verify(generate_key().plaintext) is None
    assert await intake.verify(key + "x") is None
    async with intake.sessions() as session:
        (info,) = await intake.repo.list_keys(session, partner_id)
    assert info.last_used_at is not None


async def test_plaintext_key_is_stored_nowhere_in_the_database(intake: Intake, partner_id: str) -> None:
    done = await create(partner_id)
    assert done.returncode == 0, done.stderr
    key = parse_key(done.fields["api_key"])
    assert key is not None

    schema = intake.settings.db_schema
    async with intake.engine.connect() as conn:
        tables = (
            await conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"), {"schema": schema}
            )
        ).all()
        dump = "\n".join(
            [
                row
                for table in tables
                for row in (await conn.scalars(text(f'SELECT t::text FROM "{schema}"."{table}" t'))).all()
            ]
        )
    assert {"partners", "partner_api_keys", "outbox"} <= set(tables)
    assert hash_key(key.plaintext).hex() in dump  # the dump does cover the key's row
    assert key.secret not in dump
    assert key.plaintext not in dump


async def test_revoked_key_stops_verifying_while_another_key_keeps_working(
    intake: Intake, partner_id: str
) -> None:
    first = await create(partner_id)
    assert first.returncode == 0, first.stderr
    second = await cli("partners", "issue-key", partner_id)
    assert second.returncode == 0, second.stderr
    first_key, second_key = first.fields["api_key"], second.fields["api_key"]
    assert first_key != second_key
    assert await intake.verify(first_key) == partner_id
    assert await intake.verify(second_key) == partner_id

    revoked = await cli("partners", "revoke-key", first.fields["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert await intake.verify(first_key) is None
    assert await intake.verify(second_key) == partner_id

    listing = await cli("partners", "list")
    assert listing.returncode == 0, listing.stderr
    assert f"key {first.fields['key_id']}\trevoked" in listing.stdout
    assert f"key {second.fields['key_id']}\tvalid" in listing.stdout
    assert first_key not in listing.stdout
    assert second_key not in listing.stdout

    unknown = await cli("partners", "revoke-key", "0000000000000000")
    assert unknown.returncode == 1
    assert "no API key" in unknown.stderr

    # A deactivated partner's keys stop working too.
    async with intake.sessions() as session, session.begin():
        partners = intake.repo.partners
        await session.execute(
            update(partners).where(partners.c.partner_id == partner_id).values(active=False)
        )
    assert await intake.verify(second_key) is None


async def test_duplicate_partner_id_is_refused_clearly(intake: Intake, partner_id: str) -> None:
    assert (await create(partner_id)).returncode == 0
    again = await create(partner_id, name="Someone Else")
    assert again.returncode == 1
    assert f"partner {partner_id!r} already exists" in again.stderr
    assert "api_key" not in again.stdout
    async with intake.sessions() as session:
        partner = await intake.repo.get_partner(session, partner_id)
        keys = await intake.repo.list_keys(session, partner_id)
    assert partner is not None
    assert partner.name == "South Texas Clinic"
    assert len(keys) == 1


async def test_bad_input_exits_non_zero_and_creates_nothing(intake: Intake, partner_id: str) -> None:
    bad_email = await cli(
        "partners", "create", partner_id, "--name", "X", "--kind", "law-firm", "--email", "nope"
    )
    assert bad_email.returncode == 1
    assert "contact_email" in bad_email.stderr
    bad_id = await cli(
        "partners", "create", "Bad_Id", "--name", "X", "--kind", "law-firm", "--email", "a@example.org"
    )
    assert bad_id.returncode == 1
    assert "invalid partner id 'Bad_Id'" in bad_id.stderr
    unknown = await cli("partners", "issue-key", partner_id)
    assert unknown.returncode == 1
    assert f"no partner {partner_id!r}" in unknown.stderr

    async with intake.sessions() as session:
        assert await intake.repo.get_partner(session, partner_id) is None
    assert not set(partner_topic_partitions(partner_id)) & set(await intake.topics())


def _table_of(diff: Any) -> str | None:
    """The table an alembic autogenerate diff is about."""
    if isinstance(diff, list):  # column modifications: (op, schema, table, column, ...)
        return str(diff[0][2])
    kind, obj = diff[0], diff[1]
    if kind.endswith("_table"):
        return str(obj.name)
    if kind.endswith("_column"):
        return str(diff[2])
    if kind.endswith("_fk"):
        return str(obj.parent.name)
    table = getattr(obj, "table", None)
    return str(table.name) if table is not None else None


async def test_migration_matches_the_table_definitions(intake: Intake) -> None:
    """The migrations build exactly the tables the service defines: every table of the app's metadata
    (partners, submissions, cases, facility status, placements, audit logs, outbox, inbox)."""
    from lastline_intake.app import metadata  # the service's, with every module's tables

    migrated = await cli("migrate")
    assert migrated.returncode == 0, migrated.stderr

    def diffs(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    def tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    async with intake.engine.connect() as conn:
        all_diffs = await conn.run_sync(diffs)
        existing = await conn.run_sync(tables)
    assert [(d, _table_of(d)) for d in all_diffs] == []
    # The comparison did see intake's schema.
    assert {"partners", "cases", "facility_status", "packet_access_log", "outbox"} <= existing
