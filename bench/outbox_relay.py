"""Outbox relay throughput against a raw aiokafka producer publishing the same records in the same run."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import text

from bench.results import Figure, machine
from lastline_infra import InfraEndpoints, create_topics
from lastline_shared.contracts.envelope import KafkaRecord, encode
from lastline_shared.contracts.examples import example_events
from lastline_shared.db import make_engine, make_session_factory, new_metadata
from lastline_shared.outbox import Outbox, outbox_table
from lastline_shared.relay import OutboxRelay, make_producer

EVENTS = 50_000
PARTITIONS = 12


def sample_records(topic: str, count: int) -> list[KafkaRecord]:
    """Realistic case events, spread over many aggregates."""
    templates = [e for e in example_events() if e.topic == "cases"]
    out = []
    for i in range(count):
        event = templates[i % len(templates)]
        event = event.model_copy(update={"case_id": uuid.uuid4()})
        out.append(encode(event, source="/services/bench", topic=topic))
    return out


async def raw_producer(bootstrap: str, records: list[KafkaRecord]) -> float:
    """Baseline: the same records through one idempotent aiokafka producer, no database."""
    producer = make_producer(bootstrap, "bench-raw")
    await producer.start()
    try:
        started = time.perf_counter()
        for start in range(0, len(records), 1000):
            futures = [
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                for r in records[start : start + 1000]
            ]
            await asyncio.gather(*futures)
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def outbox_then_relay(infra: InfraEndpoints, records: list[KafkaRecord]) -> tuple[float, float]:
    """Returns (outbox writes/s in 500-event transactions, relay publishes/s draining the backlog)."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = make_engine(infra.database_url, schema)
    outbox = Outbox(outbox_table(new_metadata()), schema)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(outbox.table.metadata.create_all)
    sessions = make_session_factory(engine)
    try:
        started = time.perf_counter()
        for start in range(0, len(records), 500):
            async with sessions() as session, session.begin():
                await outbox.add(session, records[start : start + 500])
        write_rate = len(records) / (time.perf_counter() - started)

        relay = OutboxRelay(
            engine,
            outbox,
            lambda: make_producer(infra.kafka_bootstrap, "bench-relay"),
            database_url=infra.database_url,
            service="bench",
            batch_size=1000,
        )
        started = time.perf_counter()
        published = 0
        while published < len(records):
            published += await relay.publish_pending()
        relay_rate = published / (time.perf_counter() - started)
        await relay.close()
        return write_rate, relay_rate
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def run(infra: InfraEndpoints) -> list[Figure]:
    topic = f"bench-relay-{uuid.uuid4().hex[:8]}"
    await create_topics(infra.kafka_bootstrap, {topic: PARTITIONS})
    records = sample_records(topic, EVENTS)
    baseline = await raw_producer(infra.kafka_bootstrap, records)
    write_rate, relay_rate = await outbox_then_relay(infra, records)
    load = f"{EVENTS:,} case events ({len(records[0].value)} B), topic of {PARTITIONS} partitions"
    where = machine()
    return [
        Figure(
            "outbox relay publish", relay_rate, "events/s", "raw aiokafka producer", baseline, where, load
        ),
        Figure("outbox write (500 events/tx)", write_rate, "events/s", None, None, where, load),
    ]
