"""Matching's service layer on a throwaway, migrated schema, fed with real contract events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import lastline_matching
from lastline_matching.choosing import Chooser
from lastline_matching.placement import Placement, Timing
from lastline_matching.reoptimise import PassLimits, Reoptimiser
from lastline_matching.store import MatchingStore
from lastline_matching.tables import MatchingTables
from lastline_shared import migrations
from lastline_shared.contracts.base import Contract
from lastline_shared.contracts.envelope import Envelope
from lastline_shared.db import make_engine, make_session_factory, new_metadata
from lastline_shared.outbox import Outbox, outbox_table
from tests.support.db import outbox_envelopes

T = TypeVar("T", bound=Contract)
MIGRATIONS = Path(lastline_matching.__file__).parent / "migrations"


@dataclass
class MatchingDb:
    schema: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tables: MatchingTables
    outbox: Outbox
    placement: Placement
    reoptimiser: Reoptimiser
    clock: dict[str, Any] = field(default_factory=dict)

    async def feed(self, *events: Contract, now: datetime | None = None) -> None:
        """Apply events as the consumer would, each in its own transaction, then let the decision
        loop work through the queue."""
        at = now or datetime.now(UTC)
        for event in events:
            async with self.sessions.begin() as session:
                if event.topic == "volunteers":
                    await self.placement.on_volunteer(session, event, at)
                    await self.placement.store.queue_waiting(session)
                elif event.topic == "cases":
                    await self.placement.on_case(session, event, at)
                else:
                    await self.placement.on_facility(session, event, at)  # type: ignore[arg-type]
        await self.decide(at)

    async def decide(self, now: datetime | None = None) -> int:
        """Decide every queued case, as the decision loops would; returns how many."""
        decided = 0
        while True:
            async with self.sessions.begin() as session:
                if await self.placement.decide_next(session, now or datetime.now(UTC)) is None:
                    return decided
            decided += 1

    async def reoptimise(self, now: datetime | None = None) -> int:
        """One global pass, as the timer runs it; returns how many cases changed hands."""
        async with self.sessions.begin() as session:
            return await self.reoptimiser.run(session, now or datetime.now(UTC))

    async def events(self, event_type: str | None = None) -> list[Envelope]:
        return [e for e in await outbox_envelopes(self.sessions, self.outbox) if event_type in (None, e.type)]

    async def of(self, model: type[T]) -> list[T]:
        """The data of every published event of ``model``'s type, in order."""
        return [e.data for e in await self.events(model.event_type) if isinstance(e.data, model)]

    async def volunteer(self, volunteer_id: uuid.UUID) -> dict[str, Any]:
        v = self.tables.volunteers
        async with self.sessions() as session:
            row = (await session.execute(select(v).where(v.c.volunteer_id == volunteer_id))).mappings().one()
        return dict(row)


@asynccontextmanager
async def matching_db(
    database_url: str, today: date, timing: Timing | None = None
) -> AsyncIterator[MatchingDb]:
    schema = f"t_matching_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, database_url, schema)
    engine = make_engine(database_url, schema)
    tables = MatchingTables(new_metadata())
    outbox = Outbox(outbox_table(tables.volunteers.metadata), schema)
    clock: dict[str, Any] = {"today": today}
    placement = Placement(
        MatchingStore(tables, schema=schema),
        outbox,
        Chooser(today=lambda: clock["today"]),
        timing=timing or Timing(),
        today=lambda: clock["today"],
    )
    reoptimiser = Reoptimiser(placement, limits=PassLimits(budget_s=5.0), schema=schema)
    try:
        yield MatchingDb(
            schema, engine, make_session_factory(engine), tables, outbox, placement, reoptimiser, clock
        )
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()
