"""Intake throughput: partners' submissions consumed, decided and their canonical events published,
against a raw aiokafka consume-and-produce loop over the same records in the same run.

Intake runs in this process as the service runs it, minus HTTP: the FastStream batch subscriber, the
EventProcessor (inbox, one transaction per batch, offsets committed after it) around intake's
SubmissionProcessor, and the OutboxRelay publishing from the outbox, all on one event loop, with the
service's default batch sizes. Only its canonical topics are renamed for the run (a benchmark must not
feed real consumers of ``volunteers`` and ``cases``). ``python -m bench.intake --profile out.prof``
runs this benchmark alone under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

import lastline_intake
from bench.results import Figure, machine
from lastline_infra import InfraEndpoints, create_topics, ensure_up
from lastline_intake.decisions import Received
from lastline_intake.partners import PartnerRepository
from lastline_intake.pii import Keyring, generate_key
from lastline_intake.processing import SubmissionProcessor
from lastline_intake.simulate import simulate
from lastline_intake.tables import IntakeTables
from lastline_shared import migrations
from lastline_shared.clock import network_today
from lastline_shared.consumer import BatchOutcome, EventProcessor, Record
from lastline_shared.contracts.envelope import DecodeError, Envelope, KafkaRecord
from lastline_shared.contracts.topics import partner_topic_partitions, submissions_topic
from lastline_shared.db import make_engine, make_session_factory, new_metadata
from lastline_shared.inbox import Inbox, inbox_table
from lastline_shared.outbox import Outbox, outbox_table
from lastline_shared.relay import OutboxRelay, make_producer
from lastline_shared.settings import IntakeSettings
from lastline_shared.subscriber import subscribe

SUBMISSIONS = 50_000
PARTNERS = 3
PARTITIONS = 12
MIGRATIONS = Path(lastline_intake.__file__).parent / "migrations"


async def produce(bootstrap: str, records: Sequence[KafkaRecord]) -> None:
    producer = make_producer(bootstrap, "bench-intake-fill")
    await producer.start()
    try:
        for start in range(0, len(records), 2000):
            futures = [
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                for r in records[start : start + 2000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_loop(bootstrap: str, topics: list[str], sink: str, count: int) -> float:
    """Baseline: consume, produce each record's value to ``sink`` (the relay's producer settings),
    wait for the acknowledgements, commit; timed from the first record consumed."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    producer = make_producer(bootstrap, "bench-raw-relay")
    await consumer.start()
    await producer.start()
    try:
        started: float | None = None
        seen = 0
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000)
            records = [r for part in batch.values() for r in part]
            if not records:
                continue
            started = started or time.perf_counter()
            sent = [await producer.send(sink, r.value, key=r.key, headers=list(r.headers)) for r in records]
            await asyncio.gather(*sent)
            await consumer.commit()
            seen += len(records)
        assert started is not None
        return seen / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


class _Renamed:
    """The relay's producer, publishing to this run's own copies of the canonical topics."""

    def __init__(self, producer: Any, renames: dict[str, str]) -> None:
        self._producer = producer
        self._renames = renames

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, topic: str, **kwargs: Any) -> Any:
        return await self._producer.send(self._renames.get(topic, topic), **kwargs)


class _Timed(EventProcessor):
    """Notes when the first batch arrives, so that the consumer group's join is not timed."""

    first_batch: float | None = None

    async def process(self, records: Sequence[Record]) -> BatchOutcome:
        self.first_batch = self.first_batch or time.perf_counter()
        return await super().process(records)


async def intake_loop(
    infra: InfraEndpoints, partners: list[str], renames: dict[str, str], count: int
) -> tuple[float, dict[str, int]]:
    """Submissions/s from the first batch consumed until every submission is decided and every
    canonical event published (acknowledged by Kafka, deleted from the outbox)."""
    settings = IntakeSettings()  # the service's defaults: batch sizes, time zone
    schema = f"bench_intake_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, infra.database_url, schema)
    engine = make_engine(infra.database_url, schema)
    sessions = make_session_factory(engine)
    metadata = new_metadata()
    tables, repository = IntakeTables(metadata), PartnerRepository(metadata)
    outbox = Outbox(outbox_table(metadata), schema)
    processor = SubmissionProcessor(
        tables,
        repository,
        outbox,
        Keyring.from_settings({"bench": generate_key()}, "bench"),
        os.urandom(32),
        today=network_today(settings.network_timezone),
    )
    async with sessions.begin() as session:
        for partner in partners:
            await repository.create_partner(
                session, partner, name=partner, kind="clinic", contact_email="ops@example.org"
            )

    async def handle_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        now = datetime.now(UTC)  # as lastline_intake.consumers does
        await processor.process(session, [Received(e, "kafka", now) for e in envelopes])

    async def on_invalid(session: AsyncSession, error: DecodeError) -> None:
        await processor.process(session, [Received(error, "kafka", datetime.now(UTC))])

    events = _Timed(
        consumer="intake.submissions",
        service="intake",
        session_factory=sessions,
        inbox=Inbox(inbox_table(metadata), "intake.submissions"),
        outbox=outbox,
        handle_batch=handle_batch,
        on_invalid=on_invalid,
    )
    relay = OutboxRelay(
        engine,
        outbox,
        lambda: _Renamed(make_producer(infra.kafka_bootstrap, "bench-intake-relay"), renames),
        database_url=infra.database_url,
        service="intake",
        batch_size=settings.relay_batch_size,
        poll_interval_s=settings.relay_poll_interval_s,
    )
    broker = KafkaBroker(infra.kafka_bootstrap, logger=None)
    subscribe(
        broker,
        events,
        *(submissions_topic(p) for p in partners),
        group_id=f"bench-intake-{uuid.uuid4().hex[:6]}",
        max_records=settings.consumer_max_records,
    )
    relay_task = asyncio.create_task(relay.run())
    try:
        await broker.start()
        while True:
            async with engine.connect() as conn:
                decided = await conn.scalar(select(func.count()).select_from(tables.submissions))
                pending = await conn.scalar(select(func.count()).select_from(outbox.table))
            if decided == count and pending == 0:
                break
            await asyncio.sleep(0.1)
        assert events.first_batch is not None
        rate = count / (time.perf_counter() - events.first_batch)
        async with engine.connect() as conn:
            s = tables.submissions
            rows = await conn.execute(select(s.c.status, func.count()).group_by(s.c.status))
            statuses = {status: int(n) for status, n in rows.all()}
        return rate, statuses
    finally:
        await broker.stop()
        relay.stop()
        await relay_task
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def run(infra: InfraEndpoints, count: int = SUBMISSIONS) -> list[Figure]:
    run_id = uuid.uuid4().hex[:6]
    partners = [f"bench-{run_id}-{n}" for n in range(PARTNERS)]
    renames = {name: f"bench-{run_id}-{name}" for name in ("volunteers", "cases")}
    sink = f"bench-{run_id}-raw-sink"
    topics = {name: PARTITIONS for p in partners for name in partner_topic_partitions(p)}
    topics |= dict.fromkeys([*renames.values(), sink], PARTITIONS)
    await create_topics(infra.kafka_bootstrap, topics)
    try:
        today = network_today(IntakeSettings().network_timezone)()
        traffic = await asyncio.to_thread(simulate, partners, total=count, today=today, malformed_ratio=0.0)
        await produce(infra.kafka_bootstrap, traffic.records())
        events = sum(traffic.expected_events().values())
        size = sum(len(r.value) for r in traffic.records()) // count
        # The service holds no such heap of objects: keeping it would slow every garbage collection.
        del traffic
        gc.collect()
        sources = [submissions_topic(p) for p in partners]
        baseline = await raw_loop(infra.kafka_bootstrap, sources, sink, count)
        rate, statuses = await intake_loop(infra, partners, renames, count)
        assert statuses == {"accepted": count}, statuses
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(list(topics))
        finally:
            await admin.close()
    load = (
        f"{count:,} valid submissions (avg {size} B; registrations, updates, holds, merges) from "
        f"{PARTNERS} partners, {PARTITIONS} partitions each, {events:,} canonical events published"
    )
    return [
        Figure(
            "intake accept + publish",
            rate,
            "submissions/s",
            "raw aiokafka consume + produce + commit",
            baseline,
            machine(),
            load,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=SUBMISSIONS)
    parser.add_argument("--profile", type=Path, help="write cProfile statistics of the run here")
    args = parser.parse_args()

    async def bench() -> list[Figure]:
        return await run(await ensure_up(), args.submissions)

    if args.profile is None:
        figures = asyncio.run(bench())
    else:
        with cProfile.Profile() as profile:
            figures = asyncio.run(bench())
        profile.dump_stats(args.profile)
    for figure in figures:
        baseline = figure.baseline_value or 0.0
        ratio = figure.value / baseline if baseline else 0.0
        print(f"{figure.name}: {figure.value:,.0f} {figure.unit}, {ratio:.1%} of {baseline:,.0f} (raw)")


if __name__ == "__main__":
    main()
