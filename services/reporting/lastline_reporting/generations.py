"""Sets of read-model tables ("generations"): the current one, building the next, swapping it in."""

from __future__ import annotations

import zlib

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from lastline_reporting import readmodel as rm
from lastline_reporting.tables import ReportingTables

Db = AsyncSession | AsyncConnection


class ModelOutdatedError(ConnectionError):
    """The current generation was built for other read-model tables: run ``rebuild``.

    A ConnectionError so that the consumer treats it as "try again later" (the batch is redone,
    nothing is dead-lettered) until the rebuild has swapped in a generation of this model.
    """


class Generations:
    def __init__(self, tables: ReportingTables, schema: str) -> None:
        self.tables = tables
        self.schema = schema
        self._lock_key = zlib.crc32(f"{schema}.generations".encode())

    async def current(self, db: Db) -> int | None:
        """The generation figures read from (None before anything was projected)."""
        generation: int | None = await db.scalar(select(self.tables.current.c.generation))
        return generation

    async def for_write(self, db: Db) -> int:
        """The current generation, locked against a swap until the caller's transaction ends.

        The first batch ever creates generation 1.
        """
        current = self.tables.current
        generations = self.tables.generations
        query = (
            select(current.c.generation, generations.c.model_version)
            .join(generations, generations.c.generation == current.c.generation)
            .with_for_update(read=True, of=current)
        )
        row = (await db.execute(query)).first()
        if row is None:
            return await self._create_first(db)
        if row.model_version != rm.MODEL_VERSION:
            raise ModelOutdatedError(
                f"generation {row.generation} has read-model version {row.model_version}, this code "
                f"{rm.MODEL_VERSION}: run `lastline-reporting rebuild`"
            )
        return int(row.generation)

    async def _create_first(self, db: Db) -> int:
        await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._lock_key})
        existing = await self.current(db)
        if existing is not None:  # another consumer created it while we waited
            return existing
        generation = await self.create(db, status="current")
        await db.execute(self.tables.current.insert().values(generation=generation))
        return generation

    async def create(self, db: Db, *, status: str = "building", bulk: bool = False) -> int:
        """A new, empty generation of tables.

        ``bulk`` (a rebuild): ``UNLOGGED`` and without secondary indexes, so that loading it writes
        no WAL and maintains no index; :meth:`finish_bulk` makes it an ordinary generation.
        """
        await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._lock_key})
        latest = await db.scalar(select(func.max(self.tables.generations.c.generation)))
        generation = (latest or 0) + 1
        await db.execute(
            self.tables.generations.insert().values(
                generation=generation, model_version=rm.MODEL_VERSION, status=status
            )
        )
        for spec in rm.TABLES:
            statements = spec.ddl(self.schema, generation, unlogged=bulk)
            for statement in statements[:1] if bulk else statements:
                await db.execute(text(statement))
        return generation

    async def finish_bulk(self, db: Db, generation: int) -> None:
        """Index a bulk-loaded generation and make it crash-safe (``SET LOGGED``) before it goes live."""
        await db.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))  # index sorts in memory
        for spec in rm.TABLES:
            for statement in spec.index_ddl(self.schema, generation):
                await db.execute(text(statement))
            await db.execute(text(f"ALTER TABLE {spec.qualified(self.schema, generation)} SET LOGGED"))

    async def lock_current(self, db: Db) -> int | None:
        """Take the pointer exclusively: live batches wait until the caller's transaction ends."""
        query = select(self.tables.current.c.generation).with_for_update()
        generation: int | None = await db.scalar(query)
        return generation

    async def swap(self, db: Db, generation: int, events: int) -> int | None:
        """Make ``generation`` current (call with the pointer locked); returns the one it replaced."""
        generations = self.tables.generations
        previous = await self.current(db)
        await db.execute(
            update(generations).where(generations.c.status == "current").values(status="retired")
        )
        await db.execute(
            update(generations)
            .where(generations.c.generation == generation)
            .values(status="current", swapped_at=func.now(), events=events)
        )
        if previous is None:
            await db.execute(self.tables.current.insert().values(generation=generation))
        else:
            await db.execute(update(self.tables.current).values(generation=generation))
        return previous

    async def drop(self, db: Db, *, keep_retired: int = 1) -> list[int]:
        """Drop the tables of failed generations and of retired ones beyond the newest ``keep_retired``."""
        generations = self.tables.generations
        rows = (
            await db.execute(
                select(generations.c.generation, generations.c.status)
                .where(generations.c.status.in_(("retired", "failed")))
                .order_by(generations.c.generation.desc())
            )
        ).all()
        retired = [r.generation for r in rows if r.status == "retired"]
        doomed = retired[keep_retired:] + [r.generation for r in rows if r.status == "failed"]
        for generation in doomed:
            for name in rm.table_names(generation):
                await db.execute(text(f'DROP TABLE IF EXISTS "{self.schema}"."{name}"'))
            await db.execute(
                update(generations).where(generations.c.generation == generation).values(status="dropped")
            )
        return sorted(doomed)

    async def fail_building(self, db: Db) -> None:
        """Mark generations left half-built (by an interrupted rebuild) as failed."""
        generations = self.tables.generations
        await db.execute(
            update(generations).where(generations.c.status == "building").values(status="failed")
        )
