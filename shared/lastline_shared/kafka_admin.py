"""Creating topics explicitly (the broker does not auto-create them), idempotently."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

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
