"""The outbox relay against real PostgreSQL and Kafka: everything committed is published, once, in order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from lastline_shared.contracts.envelope import KafkaRecord
from lastline_shared.relay import OutboxRelay, make_producer
from tests.support.db import Plumbing, plumbing
from tests.support.kafka import create_topics, header, read_all, unique_topic

pytestmark = pytest.mark.integration


def records(topic: str, count: int, keys: int) -> list[KafkaRecord]:
    """``count`` records over ``keys`` aggregates, each carrying its sequence number per key."""
    out = []
    for i in range(count):
        key = f"agg-{i % keys}"
        out.append(
            KafkaRecord(
                topic=topic,
                key=key.encode(),
                headers=(("ce_id", f"ev-{i}".encode()), ("ce_type", b"test-event")),
                value=str(i).encode(),
            )
        )
    return out


async def fill(p: Plumbing, items: list[KafkaRecord], per_tx: int = 250) -> None:
    for start in range(0, len(items), per_tx):
        async with p.sessions() as session, session.begin():
            await p.outbox.add(session, items[start : start + per_tx])


def relay_for(p: Plumbing, infra: Any, batch_size: int = 200) -> OutboxRelay:
    return OutboxRelay(
        p.engine,
        p.outbox,
        lambda: make_producer(infra.kafka_bootstrap, "test-relay"),
        database_url=infra.database_url,
        service="test",
        batch_size=batch_size,
        poll_interval_s=0.05,
    )


async def outbox_rows(p: Plumbing) -> int:
    async with p.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(p.outbox.table)) or 0)


def assert_in_key_order(received: list[Any]) -> None:
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for record in received:
        per_key[record.key].append(int(record.value))
    for key, values in per_key.items():
        assert values == sorted(values), f"events of {key!r} reordered"


async def test_relay_publishes_each_committed_row_once_and_empties_the_outbox(infra: Any) -> None:
    topic = unique_topic()
    await create_topics(infra.kafka_bootstrap, [topic])
    async with plumbing(infra.database_url) as p:
        await fill(p, records(topic, 1000, keys=37))
        relay = relay_for(p, infra)
        task = asyncio.create_task(relay.run())
        try:
            received = await read_all(infra.kafka_bootstrap, topic, expect=1000)
        finally:
            relay.stop()
            await task
        assert sorted(header(r, "ce_id") or "" for r in received) == sorted(f"ev-{i}" for i in range(1000))
        assert_in_key_order(received)
        assert await outbox_rows(p) == 0


async def test_a_missing_topic_waits_aside_without_holding_up_the_others(infra: Any) -> None:
    topic, missing = unique_topic(), unique_topic()
    await create_topics(infra.kafka_bootstrap, [topic])
    async with plumbing(infra.database_url) as p:
        # One key, so both topics' rows share a lane: the missing topic's rows come first.
        await fill(p, [*records(missing, 3, keys=1), *records(topic, 20, keys=1)])
        relay = OutboxRelay(
            p.engine,
            p.outbox,
            # A short metadata wait, so that the missing topic is noticed quickly.
            lambda: AIOKafkaProducer(
                bootstrap_servers=infra.kafka_bootstrap, enable_idempotence=True, request_timeout_ms=1500
            ),
            database_url=infra.database_url,
            service="test",
            poll_interval_s=0.05,
            missing_topic_retry_s=2.0,
        )
        task = asyncio.create_task(relay.run())
        try:
            received = await read_all(infra.kafka_bootstrap, topic, expect=20)
            assert await outbox_rows(p) == 3  # kept, not dropped
            await create_topics(infra.kafka_bootstrap, [missing])
            late = await read_all(infra.kafka_bootstrap, missing, expect=3)
        finally:
            relay.stop()
            await task
        assert_in_key_order(received)
        assert [int(r.value) for r in late] == [0, 1, 2]
        assert await outbox_rows(p) == 0


async def test_rolled_back_transaction_publishes_nothing(infra: Any) -> None:
    topic = unique_topic()
    await create_topics(infra.kafka_bootstrap, [topic])
    async with plumbing(infra.database_url) as p:
        async with p.sessions() as session, session.begin():
            await p.outbox.add(session, records(topic, 5, keys=1))
            await session.rollback()
        assert await outbox_rows(p) == 0
        relay = relay_for(p, infra)
        assert await relay.publish_pending() == 0
        await relay.close()


async def test_two_relays_never_publish_a_row_twice_and_keep_each_key_in_order(infra: Any) -> None:
    topic = unique_topic()
    await create_topics(infra.kafka_bootstrap, [topic], partitions=6)
    async with plumbing(infra.database_url) as p:
        total = 4000
        relays = [relay_for(p, infra, batch_size=100) for _ in range(2)]
        published: list[int] = [0, 0]

        async def drain(i: int) -> None:
            while True:
                n = await relays[i].publish_pending()
                published[i] += n
                if n == 0 and await outbox_rows(p) == 0:
                    return

        # Rows keep arriving while both relays drain, as in a running service.
        filler = asyncio.create_task(fill(p, records(topic, total, keys=50), per_tx=100))
        await asyncio.sleep(0.2)
        await asyncio.gather(filler, drain(0), drain(1))
        for relay in relays:
            await relay.close()
        received = await read_all(infra.kafka_bootstrap, topic, expect=total)
        ids = [header(r, "ce_id") for r in received]
        assert len(ids) == total == len(set(ids)), "a row was published twice or lost"
        assert sum(published) == total
        assert all(n > 0 for n in published), f"one relay did all the work: {published}"
        assert_in_key_order(received)


CRASHING_RELAY = """
import asyncio, os, signal, sys
from tests.support.crash import relay_then_die
asyncio.run(relay_then_die(*sys.argv[1:]))
"""


async def test_relay_killed_between_publish_and_commit_republishes_and_consumer_applies_once(
    infra: Any,
) -> None:
    """SIGKILL after Kafka acknowledged the batch but before the rows were deleted."""
    from lastline_shared.consumer import EventProcessor
    from lastline_shared.contracts.envelope import encode
    from lastline_shared.contracts.examples import example_events
    from lastline_shared.inbox import Inbox

    topic = unique_topic()
    await create_topics(infra.kafka_bootstrap, [topic])
    events = [e for e in example_events() if e.topic == "cases"][:1] * 20
    async with plumbing(infra.database_url) as p:
        async with p.sessions() as session, session.begin():
            await p.outbox.add(session, [encode(e, source="/services/test", topic=topic) for e in events])
        env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                CRASHING_RELAY,
                infra.database_url,
                p.schema,
                infra.kafka_bootstrap,
            ],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
        assert await outbox_rows(p) == 20, "the killed relay must not have deleted its rows"
        assert len(await read_all(infra.kafka_bootstrap, topic, expect=20)) == 20

        relay = relay_for(p, infra)
        assert await relay.publish_pending() == 20  # published again after the restart
        await relay.close()
        received = await read_all(infra.kafka_bootstrap, topic, expect=40)
        assert len(received) == 40

        applied: list[str] = []

        async def handle(session: Any, envelope: Any) -> None:
            await session.execute(p.effects.insert().values(event_id=envelope.id))
            applied.append(envelope.id)

        processor = EventProcessor(
            consumer="test.crash",
            service="test",
            session_factory=p.sessions,
            inbox=Inbox(p.inbox, "test.crash"),
            outbox=p.outbox,
            handle=handle,
        )
        outcome = await processor.process(received)
        assert outcome.processed == 20
        assert outcome.duplicates == 20
        async with p.engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(p.effects)) == 20
