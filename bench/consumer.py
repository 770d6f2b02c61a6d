"""Consumer throughput (decode, inbox, handler, commit) against a raw aiokafka consumer on the same topic."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from sqlalchemy import Column, Integer, Table, Text, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert

from bench.outbox_relay import sample_records
from bench.results import Figure, machine
from lastline_infra import InfraEndpoints, create_topics
from lastline_shared.consumer import EventProcessor
from lastline_shared.contracts.envelope import Envelope
from lastline_shared.db import make_engine, make_session_factory, new_metadata
from lastline_shared.inbox import Inbox, inbox_table
from lastline_shared.outbox import Outbox, outbox_table
from lastline_shared.relay import make_producer
from lastline_shared.subscriber import subscribe

EVENTS = 50_000
PARTITIONS = 12


async def produce(bootstrap: str, topic: str) -> None:
    producer = make_producer(bootstrap, "bench-consumer-fill")
    await producer.start()
    try:
        records = sample_records(topic, EVENTS)
        for start in range(0, EVENTS, 2000):
            futures = [
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                for r in records[start : start + 2000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    await consumer.start()
    try:
        started = time.perf_counter()
        seen = 0
        while seen < EVENTS:
            batch = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(v) for v in batch.values())
            if batch:
                await consumer.commit()
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def lastline_consume(infra: InfraEndpoints, topic: str) -> float:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = make_engine(infra.database_url, schema)
    metadata = new_metadata()
    outbox = Outbox(outbox_table(metadata), schema)
    inbox = inbox_table(metadata)
    state = Table(
        "case_state",
        metadata,
        Column("case_id", Text, primary_key=True),
        Column("version", Integer, nullable=False),
    )
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(metadata.create_all)
    sessions = make_session_factory(engine)

    upsert = insert(state).values(case_id=bindparam("id"), version=bindparam("n"))
    upsert = upsert.on_conflict_do_update(
        index_elements=[state.c.case_id], set_={"version": state.c.version + upsert.excluded.version}
    )

    async def handle_batch(session: Any, envelopes: Sequence[Envelope]) -> None:
        # A typical projection: one bulk upsert per batch (events of one case folded first).
        per_case = Counter(e.subject for e in envelopes)
        await session.execute(upsert, [{"id": case, "n": n} for case, n in per_case.items()])

    processor = EventProcessor(
        consumer="bench.main",
        service="bench",
        session_factory=sessions,
        inbox=Inbox(inbox, "bench.main"),
        outbox=outbox,
        handle_batch=handle_batch,
    )
    broker = KafkaBroker(infra.kafka_bootstrap)
    subscribe(broker, processor, topic, group_id=f"bench-{uuid.uuid4().hex[:6]}", max_records=500)
    try:
        started = time.perf_counter()
        await broker.start()
        while True:
            async with engine.connect() as conn:
                done = await conn.scalar(select(func.count()).select_from(inbox))
            if (done or 0) >= EVENTS:
                break
            await asyncio.sleep(0.1)
        return EVENTS / (time.perf_counter() - started)
    finally:
        await broker.stop()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def run(infra: InfraEndpoints) -> list[Figure]:
    topic = f"bench-consume-{uuid.uuid4().hex[:8]}"
    await create_topics(infra.kafka_bootstrap, {topic: PARTITIONS})
    await produce(infra.kafka_bootstrap, topic)
    baseline = await raw_consume(infra.kafka_bootstrap, topic)
    rate = await lastline_consume(infra, topic)
    load = f"{EVENTS:,} case events, {PARTITIONS} partitions, batches of 500, one bulk upsert per batch"
    return [
        Figure(
            "consumer apply (inbox + handler + commit)",
            rate,
            "events/s",
            "raw aiokafka consume + commit",
            baseline,
            machine(),
            load,
        ),
    ]
