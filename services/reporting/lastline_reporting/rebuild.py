"""Rebuild the read models from the topics alone, beside the live ones, and swap them in.

1. A new generation of empty tables is created next to the current one (live consumers keep
   writing to the current one, so the dashboard stays up).
2. Every partition of every topic reporting reads is replayed from its beginning, in large chunks
   folded in memory and written with COPY (``bulkload``); the next chunk is read while the previous
   one is written. The new tables are ``UNLOGGED`` and without secondary indexes while they load.
3. Near the ends, the indexes are built and the tables ``SET LOGGED``; the replay catches up again.
4. Once the replay is within ``lag_threshold`` events of the ends, the pointer to the current
   generation is locked (live batches wait), the last events up to the ends as of that moment are
   applied in the same transaction, and the pointer moves to the new generation. Live batches
   then continue in the new generation; any event both sides applied merges to the same row
   (the read models are idempotent), and none is missed: the ends are read after the lock, so every
   event a live batch applied before the swap is below them.

The replay reads only the attributes and fields the projections use (``replay``) and falls back to
the live consumers' decoding for anything else; a record that does not decode is skipped, as the live
path dead-letters it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lastline_reporting.bulkload import BulkLoader
from lastline_reporting.consumers import Topics, notify_channel
from lastline_reporting.generations import Generations
from lastline_reporting.projections import Batch
from lastline_reporting.replay import fold
from lastline_reporting.tables import ReportingTables
from lastline_shared import migrations
from lastline_shared.db import make_engine, new_metadata
from lastline_shared.settings import ReportingSettings

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
CHUNK = 200_000
"""Events folded in memory per write: larger chunks merge more in Python and write fewer statements."""


@dataclass
class RebuildResult:
    generation: int
    previous: int | None
    events: int
    skipped: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class TopicReader:
    """Every partition of reporting's topics, read from the beginning without a consumer group."""

    def __init__(self, bootstrap: str, topics: Topics, *, max_records: int) -> None:
        self._topics = topics
        self._pattern = re.compile(topics.rejections_pattern)
        self._max_records = max_records
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.positions: dict[TopicPartition, int] = {}
        """The next offset to read, per partition."""
        self.ends: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def refresh(self) -> int:
        """Pick up new topics and partitions, take the ends as of now; the events left to read."""
        names = await self.admin.list_topics()
        wanted = [t for t in names if t in self._topics.facts or self._pattern.match(t)]
        partitions = set(self.positions)
        for topic in await self.admin.describe_topics(wanted) if wanted else []:
            if topic["error_code"] == 0:
                partitions.update(TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"])
        new = sorted(partitions - self.positions.keys())
        if new:
            beginnings = await self.consumer.beginning_offsets(new)
            self.positions.update(beginnings)
            self.consumer.assign(sorted(partitions))
            for tp, position in self.positions.items():  # assign() forgets where we were
                self.consumer.seek(tp, position)
        self.ends = await self.consumer.end_offsets(sorted(partitions)) if partitions else {}
        return self.remaining()

    def remaining(self) -> int:
        return sum(max(0, end - self.positions[tp]) for tp, end in self.ends.items())

    async def chunks(self, size: int) -> AsyncIterator[tuple[Batch, int]]:
        """Folded batches of about ``size`` records until every partition reached its end, each
        with how many of its records did not decode."""
        batch, skipped, read = Batch(), 0, 0
        while self.remaining() > 0:
            fetched = await self.consumer.getmany(timeout_ms=500, max_records=self._max_records)
            if not fetched:  # nothing came: offsets without records (markers) are skipped over
                for tp in [tp for tp, end in self.ends.items() if self.positions[tp] < end]:
                    self.positions[tp] = max(self.positions[tp], await self.consumer.position(tp))
            for tp, records in fetched.items():
                for r in records:
                    if not fold(batch, r):
                        skipped += 1
                read += len(records)
                if records:
                    self.positions[tp] = records[-1].offset + 1
            if read >= size:
                yield batch, skipped
                batch, skipped, read = Batch(), 0, 0
        if read:
            yield batch, skipped


class Rebuild:
    def __init__(
        self,
        engine: AsyncEngine,
        generations: Generations,
        bootstrap: str,
        topics: Topics,
        *,
        chunk: int = CHUNK,
        lag_threshold: int = 2_000,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.generations = generations
        self.reader = TopicReader(bootstrap, topics, max_records=min(chunk, 50_000))
        self.chunk = chunk
        self.lag_threshold = lag_threshold
        self.progress = progress or (lambda _done, _total: None)
        self.events = 0
        self.skipped = 0

    async def run(self) -> RebuildResult:
        started = time.perf_counter()
        async with self.engine.begin() as conn:
            await self.generations.fail_building(conn)
            await self.generations.drop(conn)
            generation = await self.generations.create(conn, bulk=True)
        log.info("rebuild started", generation=generation)
        loader = BulkLoader(self.generations.schema, generation)
        await self.reader.start()
        # A chunk holds millions of objects, none in a cycle: the cyclic collector would scan them
        # over and over (it took most of the time); it runs again once the replay is over.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.progress(0, await self.reader.refresh())
            await self._catch_up(loader)
            replayed = time.perf_counter()
            async with self.engine.begin() as conn:
                await self.generations.finish_bulk(conn, generation)
            log.info(
                "rebuild indexed",
                generation=generation,
                events=self.events,
                replay_seconds=round(replayed - started, 1),
                index_seconds=round(time.perf_counter() - replayed, 1),
            )
            await self._catch_up(loader)  # what arrived while indexing
            previous = await self._swap(loader)
        except BaseException:
            with contextlib.suppress(Exception):
                async with self.engine.begin() as conn:
                    await self.generations.fail_building(conn)
                    await self.generations.drop(conn)
            raise
        finally:
            if collecting:
                gc.enable()
            await self.reader.stop()
        async with self.engine.begin() as conn:
            await self.generations.drop(conn)
        seconds = time.perf_counter() - started
        log.info("rebuild swapped in", generation=generation, events=self.events, seconds=round(seconds, 1))
        return RebuildResult(generation, previous, self.events, self.skipped, seconds)

    async def _catch_up(self, loader: BulkLoader) -> None:
        """Replay until within ``lag_threshold`` events of the ends."""
        while True:
            await self._replay(loader)
            left = await self.reader.refresh()
            self.progress(self.events + self.skipped, self.events + self.skipped + left)
            if left <= self.lag_threshold:
                return

    async def _replay(self, loader: BulkLoader, conn: AsyncConnection | None = None) -> None:
        """Read to the ends, writing each chunk while the next one is read."""
        pending: asyncio.Task[None] | None = None
        try:
            async for batch, skipped in self.reader.chunks(self.chunk):
                if pending is not None:
                    await pending
                self.skipped += skipped
                pending = asyncio.create_task(self._write(loader, batch, conn))
            if pending is not None:
                await pending
        finally:
            if pending is not None and not pending.done():
                pending.cancel()

    async def _write(self, loader: BulkLoader, batch: Batch, conn: AsyncConnection | None) -> None:
        if conn is not None:
            await loader.write(conn, batch)
        else:
            async with self.engine.begin() as own:
                # Nothing reads these rows before the swap, which commits durably.
                await own.execute(text("SET LOCAL synchronous_commit = off"))
                await loader.write(own, batch)
        self.events += batch.events
        total = self.events + self.skipped + self.reader.remaining()
        self.progress(self.events + self.skipped, total)

    async def _swap(self, loader: BulkLoader) -> int | None:
        generation = loader.generation
        async with self.engine.begin() as conn:
            await self.generations.lock_current(conn)
            await self.reader.refresh()
            await self._replay(loader, conn)
            previous = await self.generations.swap(conn, generation, self.events)
            await conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {
                    "channel": notify_channel(self.generations.schema),
                    "payload": f'{{"generation": {generation}, "events": 0}}',
                },
            )
        return previous


async def rebuild(
    settings: ReportingSettings,
    topics: Topics | None = None,
    *,
    chunk: int = CHUNK,
    lag_threshold: int = 2_000,
    show_progress: bool = True,
) -> RebuildResult:
    """Migrate, rebuild, swap; with a progress bar on stderr when ``show_progress``."""
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, settings.database_url, settings.db_schema)
    engine = make_engine(settings.database_url, settings.db_schema)
    generations = Generations(ReportingTables(new_metadata()), settings.db_schema)
    columns: list[Any] = [
        TextColumn("[bold]replaying topics"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    ]
    progress = Progress(*columns, console=Console(stderr=True), disable=not show_progress)
    task = progress.add_task("replay", total=None, rate="-")
    started = time.perf_counter()

    def advance(done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        rate = f"{done / elapsed:,.0f}" if elapsed > 0 else "-"
        progress.update(task, completed=done, total=total, rate=rate)

    try:
        with progress:
            job = Rebuild(
                engine,
                generations,
                settings.kafka_bootstrap_servers,
                topics or Topics(),
                chunk=chunk,
                lag_threshold=lag_threshold,
                progress=advance,
            )
            return await job.run()
    finally:
        await engine.dispose()
