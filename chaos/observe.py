"""Reading the system from outside: consumer lag, backlogs in the services' tables, every record of
every topic. The chaos stack is the run's own, so everything on it belongs to the run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from lastline_shared.kafka_admin import end_offsets

Record: TypeAlias = ConsumerRecord[bytes, bytes]

# Work still queued inside the services: outboxes, matching's decision queue, held events, unsent
# messages. Zero everywhere (and no lag) means the system has done everything it was given.
BACKLOG_QUERIES = {
    "intake outbox": "SELECT count(*) FROM intake.outbox",
    "intake held": "SELECT count(*) FROM intake.held_submissions",
    "matching outbox": "SELECT count(*) FROM matching.outbox",
    "matching queue": "SELECT count(*) FROM matching.pending_cases",
    "notifications outbox": "SELECT count(*) FROM notifications.outbox",
    "notifications held": "SELECT count(*) FROM notifications.held_events",
    "notifications unsent": (
        "SELECT count(*) FROM notifications.deliveries WHERE status IN ('pending', 'sending')"
    ),
}


def header(record: Record, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


async def topic_names(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if not t.startswith("__"))
    finally:
        await admin.close()


async def group_offsets(bootstrap: str) -> dict[str, dict[TopicPartition, int]]:
    """Every consumer group's committed offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups()]
        found = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            found[group] = {tp: meta.offset for tp, meta in offsets.items()}
        return found
    finally:
        await admin.close()


async def lag(bootstrap: str) -> dict[str, int]:
    """Records not yet consumed per group, over every partition of the topics it reads (a partition
    it never committed counts from 0)."""
    committed = await group_offsets(bootstrap)
    topics = {tp.topic for offsets in committed.values() for tp in offsets}
    if not topics:
        return {}
    ends = await end_offsets(bootstrap, topics)
    found = {}
    for group, offsets in committed.items():
        mine = {tp.topic for tp in offsets}
        found[group] = sum(max(0, end - offsets.get(tp, 0)) for tp, end in ends.items() if tp.topic in mine)
    return found


async def backlog(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return {name: int(await conn.fetchval(query)) for name, query in BACKLOG_QUERIES.items()}
    finally:
        await conn.close()


@dataclass
class Settled:
    seconds: float
    lag: int
    backlog: dict[str, int]

    @property
    def done(self) -> bool:
        return self.lag == 0 and not any(self.backlog.values())


async def settle(
    bootstrap: str,
    dsn: str,
    *,
    within_s: float,
    quiet_s: float = 8.0,
    also_idle: Callable[[], bool] = lambda: True,
    say: Callable[[str], None] = print,
) -> Settled:
    """Wait until no group lags, every backlog is empty and no topic grew for ``quiet_s`` seconds
    (timers, retries and the volunteers' answers may still add work), or ``within_s`` passes."""
    started = time.monotonic()
    quiet_since: float | None = None
    last_ends: dict[TopicPartition, int] = {}
    state = Settled(0.0, -1, {})
    last_said = 0.0
    while True:
        try:
            ends = await end_offsets(bootstrap, await topic_names(bootstrap))
            lags = await lag(bootstrap)
            state = Settled(time.monotonic() - started, sum(lags.values()), await backlog(dsn))
        except Exception as error:  # a server still coming back
            lags = {}
            state = Settled(time.monotonic() - started, -1, {"unreadable": 1})
            ends = {}
            say(f"  settling: cannot read the state yet ({type(error).__name__}: {error})")
        now = time.monotonic()
        if state.done and also_idle() and ends == last_ends:
            quiet_since = quiet_since or now
            if now - quiet_since >= quiet_s:
                return state
        else:
            quiet_since = None
        last_ends = ends
        if now - started >= within_s:
            return state
        if now - last_said >= 15:
            last_said = now
            busy = {k: v for k, v in state.backlog.items() if v}
            behind = {group: n for group, n in lags.items() if n} if state.lag > 0 else {}
            say(f"  settling {now - started:.0f}s: lag {behind or state.lag}, backlog {busy}")
        await asyncio.sleep(2)


async def read_everything(bootstrap: str) -> dict[str, list[Record]]:
    """Every record of every topic, from the beginning to the end offsets as of now."""
    ends = {
        tp: end for tp, end in (await end_offsets(bootstrap, await topic_names(bootstrap))).items() if end
    }
    records: dict[str, list[Record]] = {}
    if not ends:
        return records
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_poll_records=10_000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        pending = set(ends)
        deadline = time.monotonic() + 300
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read to the end of {sorted(map(str, pending))[:5]}")
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                records.setdefault(tp.topic, []).extend(r for r in batch if r.offset < ends[tp])
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return records


def decoded(value: bytes | None) -> Any:
    try:
        return json.loads(value or b"null")
    except ValueError:
        return None
