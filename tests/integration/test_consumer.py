"""Consuming through FastStream against real Kafka and PostgreSQL: once in effect, poison to the DLQ,
offsets committed only after the database commit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from sqlalchemy import func, select

from lastline_shared.consumer import EventProcessor
from lastline_shared.contracts.envelope import Envelope, encode
from lastline_shared.contracts.examples import example_events
from lastline_shared.contracts.topics import dlq_topic
from lastline_shared.inbox import Inbox
from lastline_shared.relay import OutboxRelay, make_producer
from lastline_shared.subscriber import subscribe
from tests.support.db import Plumbing, plumbing
from tests.support.kafka import create_topics, header, read_all, unique_topic

pytestmark = pytest.mark.integration

POISON = "poison"


async def effects(p: Plumbing) -> list[str]:
    async with p.engine.connect() as conn:
        return list((await conn.execute(select(p.effects.c.event_id))).scalars())


async def wait_for(predicate: Any, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def committed_everything(bootstrap: str, topic: str, group: str) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            await consumer._client.force_metadata_update()  # first lookup of a fresh topic
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            if (await consumer.committed(tp) or 0) != ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()


@pytest.mark.parametrize("style", ["per_event", "batch"])
async def test_consumer_applies_once_dead_letters_poison_and_commits_after_the_db(
    infra: Any, style: str
) -> None:
    topic = unique_topic()
    await create_topics(infra.kafka_bootstrap, [topic, dlq_topic(topic)])
    group = f"group-{topic}"
    template = next(e for e in example_events() if e.topic == "cases")
    good = [encode(template, source="/services/test", topic=topic) for _ in range(30)]
    poison = encode(template, source="/services/test", topic=topic)
    poison_id = dict(poison.headers)["ce_id"].decode()

    async with plumbing(infra.database_url) as p:

        async def handle(session: Any, envelope: Envelope) -> None:
            if envelope.id == poison_id:
                raise ValueError("this event always fails")
            await session.execute(p.effects.insert().values(event_id=envelope.id))

        async def handle_batch(session: Any, envelopes: Sequence[Envelope]) -> None:
            if any(e.id == poison_id for e in envelopes):
                raise ValueError("this event always fails")
            await session.execute(p.effects.insert(), [{"event_id": e.id} for e in envelopes])

        handlers: dict[str, Any] = (
            {"handle": handle} if style == "per_event" else {"handle_batch": handle_batch}
        )

        def build_broker() -> KafkaBroker:
            broker = KafkaBroker(infra.kafka_bootstrap)
            processor = EventProcessor(
                consumer="test.main",
                service="test",
                session_factory=p.sessions,
                inbox=Inbox(p.inbox, "test.main"),
                outbox=p.outbox,
                **handlers,
                max_retries=2,
                retry_backoff_s=0.01,
            )
            subscribe(broker, processor, topic, group_id=group, max_records=7)
            return broker

        producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
        await producer.start()
        try:
            # Five events are delivered twice, as a retrying producer or a rebalance would.
            for record in [*good, *good[:5], poison]:
                await producer.send(topic, record.value, key=record.key, headers=list(record.headers))
            await producer.send(topic, b"{not json", key=b"x", headers=[("ce_type", b"case-opened")])
            await producer.send(topic, b"{}", key=b"y", headers=[("ce_type", b"\xff\xfe")])
            await producer.flush()
        finally:
            await producer.stop()

        relay = OutboxRelay(
            p.engine,
            p.outbox,
            lambda: make_producer(infra.kafka_bootstrap, "test-relay"),
            database_url=infra.database_url,
            service="test",
            poll_interval_s=0.05,
        )
        relay_task = asyncio.create_task(relay.run())
        broker = build_broker()
        await broker.start()
        try:

            async def all_applied() -> bool:
                return len(await effects(p)) >= 30

            await wait_for(all_applied)
            dead = await read_all(infra.kafka_bootstrap, dlq_topic(topic), expect=3)
            await wait_for(lambda: committed_everything(infra.kafka_bootstrap, topic, group))
        finally:
            await broker.stop()

        applied = await effects(p)
        assert sorted(applied) == sorted(dict(r.headers)["ce_id"].decode() for r in good)

        assert len(dead) == 3
        errors = sorted(header(r, "dlq_error") or "" for r in dead)
        assert any("this event always fails" in e for e in errors)
        assert sum(e.startswith("invalid:") for e in errors) == 2
        poisoned = next(r for r in dead if header(r, "ce_id") == poison_id)
        assert poisoned.value == poison.value, "the DLQ keeps the original message"
        assert header(poisoned, "dlq_original_topic") == topic

        # A new consumer in the same group starts after the committed offsets: nothing is redone.
        broker = build_broker()
        await broker.start()
        await asyncio.sleep(3)
        await broker.stop()
        relay.stop()
        await relay_task
        assert len(await effects(p)) == 30
        assert len(await read_all(infra.kafka_bootstrap, dlq_topic(topic), expect=4, timeout_s=2)) == 3
        async with p.engine.connect() as conn:
            rows = await conn.scalar(select(func.count()).select_from(p.inbox))
        assert rows == 30 + 1 + 2  # each distinct event or bad record once
