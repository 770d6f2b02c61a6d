"""Kafka administration: topics created explicitly (the broker does not auto-create them), end
offsets, and consumer groups started at the end of topics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


async def ensure_topics(bootstrap_servers: str, topics: Mapping[str, int]) -> list[str]:
    """Create the missing ones of ``topics`` (name -> partitions). Returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="lastline-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if not missing:
            return []
        with contextlib.suppress(TopicAlreadyExistsError):  # another instance was first
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, without the cancellation aiokafka can leak: its ``NoGroupCoordinator.close``
    cancels a task and then awaits it, which re-raises that CancelledError (seen in CI). Only a
    cancellation of the calling task itself is passed on."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


async def end_offsets(bootstrap_servers: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """The current end offset of every partition of ``topics``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions))
    finally:
        await stop_consumer(consumer)


async def start_group_at_end(bootstrap_servers: str, group: str, topics: Iterable[str]) -> None:
    """Commit the current end of ``topics`` for ``group``: a consumer starting in that group sees only
    what is published from now on (tests and benchmarks on a broker that other runs left history on)."""
    ends = await end_offsets(bootstrap_servers, topics)
    if not ends:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit(ends)
    finally:
        await stop_consumer(consumer)
