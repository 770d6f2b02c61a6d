"""Intake's processor on a throwaway, migrated schema, and helpers to feed it real records."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import lastline_intake
from lastline_intake.decisions import Channel, Decision, Received
from lastline_intake.partners import PartnerRepository
from lastline_intake.pii import Keyring, generate_key
from lastline_intake.processing import SubmissionProcessor
from lastline_intake.tables import IntakeTables
from lastline_shared import migrations
from lastline_shared.contracts.base import Contract, Submission
from lastline_shared.contracts.envelope import DecodeError, Envelope, KafkaRecord, decode, encode
from lastline_shared.db import make_engine, make_session_factory, new_metadata
from lastline_shared.outbox import Outbox, outbox_table
from tests.support.db import outbox_envelopes, outbox_records

MIGRATIONS = Path(lastline_intake.__file__).parent / "migrations"


@dataclass
class IntakeDb:
    schema: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tables: IntakeTables
    partners: PartnerRepository
    outbox: Outbox
    keyring: Keyring
    index_key: bytes
    processor: SubmissionProcessor

    async def add_partner(self, partner_id: str) -> None:
        async with self.sessions.begin() as session:
            await self.partners.create_partner(
                session,
                partner_id,
                name=f"Partner {partner_id}",
                kind="clinic",
                contact_email="ops@example.org",
            )

    async def issue_key(self, partner_id: str) -> str:
        """A new API key for the partner (the plaintext, as the partner would hold it)."""
        async with self.sessions.begin() as session:
            return await self.partners.issue_key(session, partner_id)

    async def submit(self, *received: Received) -> list[Decision]:
        async with self.sessions.begin() as session:
            return await self.processor.process(session, received)

    async def published(self) -> list[KafkaRecord]:
        """Every record the processor put in the outbox, in order."""
        return await outbox_records(self.sessions, self.outbox)

    async def events(self, topic: str | None = None) -> list[Envelope]:
        return [e for e in await outbox_envelopes(self.sessions, self.outbox) if topic in (None, e.topic)]


@asynccontextmanager
async def intake_db(database_url: str, today: date) -> AsyncIterator[IntakeDb]:
    schema = f"t_intake_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, database_url, schema)
    engine = make_engine(database_url, schema)
    metadata = new_metadata()
    tables = IntakeTables(metadata)
    partners = PartnerRepository(metadata)
    outbox = Outbox(outbox_table(metadata), schema)
    keyring = Keyring.from_settings({"k1": generate_key()}, "k1")
    index_key = uuid.uuid4().bytes * 2
    processor = SubmissionProcessor(tables, partners, outbox, keyring, index_key, today=lambda: today)
    try:
        yield IntakeDb(
            schema,
            engine,
            make_session_factory(engine),
            tables,
            partners,
            outbox,
            keyring,
            index_key,
            processor,
        )
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


def record_of(submission: Submission, partner_id: str, *, event_id: uuid.UUID | None = None) -> KafkaRecord:
    """The record a partner publishes for ``submission``."""
    return encode(submission, source=f"/partners/{partner_id}", event_id=event_id)


def received(
    item: KafkaRecord | Submission, partner_id: str = "", channel: Channel = "kafka", **kw: object
) -> Received:
    """A record (or a submission, encoded as its partner would) as intake receives it."""
    record = record_of(item, partner_id, **kw) if isinstance(item, Contract) else item  # type: ignore[arg-type]
    decoded: Envelope | DecodeError = decode(record.topic, record.key, list(record.headers), record.value)
    return Received(decoded, channel, datetime.now(UTC))


def decoded_all(records: Sequence[KafkaRecord], channel: Channel = "kafka") -> list[Received]:
    return [received(r, channel=channel) for r in records]
