"""A throwaway schema with the plumbing tables, for tests of the outbox, inbox and consumer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Column, Integer, MetaData, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lastline_shared.contracts.envelope import Envelope, KafkaRecord, decode
from lastline_shared.db import make_engine, make_session_factory, new_metadata
from lastline_shared.inbox import inbox_table
from lastline_shared.outbox import Outbox, outbox_table


@dataclass
class Plumbing:
    schema: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metadata: MetaData
    outbox: Outbox
    inbox: Table
    effects: Table  # a stand-in for a service's state: one row per applied event


@asynccontextmanager
async def plumbing(database_url: str) -> AsyncIterator[Plumbing]:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = make_engine(database_url, schema)
    metadata = new_metadata()
    outbox = Outbox(outbox_table(metadata), schema)
    inbox = inbox_table(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", Text, nullable=False),
        Column("subject", Text),
    )
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(metadata.create_all)
    try:
        yield Plumbing(schema, engine, make_session_factory(engine), metadata, outbox, inbox, effects)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def outbox_records(sessions: async_sessionmaker[AsyncSession], outbox: Outbox) -> list[KafkaRecord]:
    """Every record waiting in ``outbox``, in the order it was written."""
    t = outbox.table
    async with sessions() as session:
        rows = (await session.execute(select(t).order_by(t.c.id))).mappings().all()
    return [
        KafkaRecord(
            topic=row["topic"],
            key=row["key"],
            headers=tuple(zip(row["header_keys"], row["header_values"], strict=True)),
            value=row["value"],
        )
        for row in rows
    ]


async def outbox_envelopes(sessions: async_sessionmaker[AsyncSession], outbox: Outbox) -> list[Envelope]:
    """The outbox's records decoded (every one must decode: services publish only valid events)."""
    out = []
    for record in await outbox_records(sessions, outbox):
        item = decode(record.topic, record.key, list(record.headers), record.value)
        assert isinstance(item, Envelope), item
        out.append(item)
    return out
