"""Outbox relay: publishes committed outbox rows to Kafka, then deletes them.

One claim is one transaction: lock a few free lanes (advisory locks, so concurrent relays never share a
lane), take their oldest rows ``FOR UPDATE SKIP LOCKED``, publish them with the idempotent producer
(``acks=all``), wait for every acknowledgement, delete the rows, commit. A crash after publishing and
before the commit publishes those rows again: consumers drop the copies through their inbox, so the
effect is exactly once. The relay wakes on the outbox's NOTIFY and polls as a fallback.

A topic the broker does not have (deleted, or never created) must not hold up every other topic:
its rows are left in the outbox, the topic is set aside for ``missing_topic_retry_s`` and claims
skip it meanwhile; the rows are published once the topic exists. Order within a key is kept, as all
rows of that topic wait together.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import zlib
from collections.abc import Callable

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import UnknownTopicOrPartitionError
from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from lastline_shared.db import asyncpg_dsn
from lastline_shared.metrics import ServiceMetrics
from lastline_shared.outbox import LANES, Outbox
from lastline_shared.wakeup import Wakeup

log = structlog.get_logger(__name__)

# Advisory lock namespace for outbox lanes: (namespace, hashtext(schema) * LANES + lane) stays unique
# per schema and lane without a registry.
_LOCK_NAMESPACE = 0x0B0C


def make_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """The one producer configuration for publishing events: idempotent, acks from all replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        producer_factory: Callable[[], AIOKafkaProducer],
        *,
        database_url: str,
        service: str,
        batch_size: int = 1000,
        poll_interval_s: float = 1.0,
        lanes_per_claim: int = LANES,
        missing_topic_retry_s: float = 30.0,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._dsn = asyncpg_dsn(database_url)
        self._metrics = ServiceMetrics(service)
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._lanes_per_claim = lanes_per_claim
        self._missing_topic_retry_s = missing_topic_retry_s
        self._set_aside: dict[str, float] = {}  # topic -> monotonic time of its next try
        # Lock ids are stable per schema, so relays of one service contend and other services don't.
        self._lock_base = (zlib.crc32(outbox.schema.encode()) % 100_000) * LANES
        self._wakeup = Wakeup(self._dsn, outbox.channel, poll_interval_s=poll_interval_s)
        self.running = False
        # Fault-injection seam for the crash tests: runs after Kafka acknowledged, before the commit.
        self.after_publish: Callable[[], None] | None = None

    async def publish_pending(self) -> int:
        """One claim: publish up to ``batch_size`` rows. Returns how many were published."""
        table = self._outbox.table
        async with self._engine.begin() as conn:
            lanes = list(range(LANES))
            random.shuffle(lanes)  # concurrent relays start on different lanes
            mine = (
                (
                    await conn.execute(
                        text(
                            "SELECT lane FROM unnest(CAST(:lanes AS int[])) AS lane"
                            " WHERE pg_try_advisory_xact_lock(:namespace, :base + lane) LIMIT :limit"
                        ),
                        {
                            "lanes": lanes,
                            "namespace": _LOCK_NAMESPACE,
                            "base": self._lock_base,
                            "limit": self._lanes_per_claim,
                        },
                    )
                )
                .scalars()
                .all()
            )
            if not mine:
                return 0
            query = (
                select(
                    table.c.id,
                    table.c.topic,
                    table.c.key,
                    table.c.header_keys,
                    table.c.header_values,
                    table.c.value,
                    table.c.event_type,
                )
                .where(table.c.lane.in_(mine))
                .order_by(table.c.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )
            if waiting := self._topics_set_aside():
                query = query.where(table.c.topic.not_in(waiting))
            rows = (await conn.execute(query)).all()
            if not rows:
                return 0
            started = time.perf_counter()
            producer = await self._connected_producer()
            futures = []
            for row in rows:
                headers = list(zip(row.header_keys, row.header_values, strict=True))
                try:
                    futures.append(
                        await producer.send(row.topic, value=row.value, key=row.key, headers=headers)
                    )
                except UnknownTopicOrPartitionError:
                    self._set_topic_aside(row.topic)
                    raise
            results = await asyncio.gather(*futures, return_exceptions=True)
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, UnknownTopicOrPartitionError):
                    self._set_topic_aside(row.topic)
            if failed := next((r for r in results if isinstance(r, BaseException)), None):
                raise failed
            if self.after_publish is not None:
                self.after_publish()
            await conn.execute(
                delete(table).where(table.c.id.in_(bindparam("ids", expanding=True))),
                {"ids": [row.id for row in rows]},
            )
        self._metrics.observe_relay_publish(time.perf_counter() - started)
        for row in rows:
            self._metrics.event_published(row.topic, row.event_type or "")
        return len(rows)

    def _topics_set_aside(self) -> list[str]:
        now = time.monotonic()
        for topic in [t for t, until in self._set_aside.items() if until <= now]:
            del self._set_aside[topic]
        return list(self._set_aside)

    def _set_topic_aside(self, topic: str) -> None:
        if topic not in self._set_aside:
            log.warning(
                "outbox relay: topic missing, its records wait",
                topic=topic,
                retry_s=self._missing_topic_retry_s,
            )
        self._set_aside[topic] = time.monotonic() + self._missing_topic_retry_s

    async def _connected_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer_factory()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def backlog(self) -> int:
        async with self._engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(self._outbox.table))
        self._metrics.set_outbox_backlog(int(count or 0))
        return int(count or 0)

    async def run(self) -> None:
        """Publish until ``stop()``; retries with backoff while Kafka or the database is away."""
        self.running = True
        listener = asyncio.create_task(self._wakeup.listen())
        backoff = 0.1
        try:
            while not self._wakeup.stopping:
                try:
                    published = await self.publish_pending()
                    backoff = 0.1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Kafka or PostgreSQL away: keep the rows, try again
                    log.warning("outbox relay failed, retrying", error=repr(exc), backoff_s=backoff)
                    with contextlib.suppress(Exception):
                        await self.close()  # a fresh producer after a failure: no stale state
                    await self._wakeup.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if published == 0:
                    await self._wakeup.wait()
        finally:
            self.running = False
            await self.close()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    def stop(self) -> None:
        self._wakeup.stop()
