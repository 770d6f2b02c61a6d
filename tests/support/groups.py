"""A service started under a name of its own in tests: every consumer group it will join begins at
the current end of its topics, so the history other tests left on the shared broker is skipped."""

from __future__ import annotations

import re

from aiokafka.admin import AIOKafkaAdminClient

from lastline_shared.contracts.topics import (
    CASES,
    FACILITIES,
    MATCHES,
    NOTIFICATIONS,
    REJECTIONS_PATTERN,
    SUBMISSIONS_PATTERN,
    VOLUNTEERS,
)
from lastline_shared.kafka_admin import start_group_at_end

# Each service's consumers (``runtime.consume(name=...)``): topic names, or a pattern.
CONSUMERS: dict[str, dict[str, tuple[str, ...] | str]] = {
    "intake": {"submissions": SUBMISSIONS_PATTERN, "placements": (MATCHES.name,)},
    "matching": {"main": (VOLUNTEERS.name, CASES.name, FACILITIES.name)},
    "notifications": {
        "people": (VOLUNTEERS.name, CASES.name),
        "matches": (MATCHES.name,),
        "rejections": REJECTIONS_PATTERN,
    },
    "reporting": {
        "facts": (VOLUNTEERS.name, CASES.name, FACILITIES.name, MATCHES.name, NOTIFICATIONS.name),
        "rejections": REJECTIONS_PATTERN,
    },
}


async def start_service_at_end(bootstrap: str, service: str, name: str) -> None:
    """Commit the topics' end for every consumer group of ``service`` run as ``name``. A pattern
    group gets the end of the topics that match now; topics created later are read from their start."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = await admin.list_topics()
    finally:
        await admin.close()
    for consumer, topics in CONSUMERS[service].items():
        names = [t for t in existing if re.match(topics, t)] if isinstance(topics, str) else list(topics)
        await start_group_at_end(bootstrap, f"lastline-{name}.{consumer}", names)
