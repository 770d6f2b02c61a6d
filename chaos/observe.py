"""Reading the system from outside: consumer lag, backlogs in the services' tables, every record of
every topic. The chaos stack is the run's own, so everything on it belongs to the run.

Everything here is bounded in time: a broker or database that does not answer, or a topic that
cannot be read to its end, costs at most the given budget, never a hang."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from lastline_shared.kafka_admin import end_offsets, stop_consumer

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
T = TypeVar("T")
PROBE_TIMEOUT_S = 30.0  # one look at lag and backlogs; a server still coming back may take that long


_UNDECODED: Any = object()


@dataclass(slots=True)
class Message:
    """What the checks use of one record. Headers stay as the broker gave them (name, bytes) and
    are decoded when asked for; the value is decoded as JSON at most once."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]]
    _data: Any = field(default=_UNDECODED, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return bytes(value).decode(errors="replace")
        return None

    @property
    def event_id(self) -> str | None:
        return self.header("ce_id")

    @property
    def event_type(self) -> str:
        return self.header("ce_type") or "?"

    @property
    def data(self) -> Any:
        """The value as JSON (``None`` when it is not JSON)."""
        if self._data is _UNDECODED:
            self._data = decoded(self.value)
        return self._data


def message(
    topic: str, value: bytes, *, key: bytes = b"", partition: int = 0, offset: int = 0, **headers: str
) -> Message:
    """A message built by hand (the checks' tests)."""
    return Message(topic, partition, offset, key, value, [(k, v.encode()) for k, v in headers.items()])


async def _admin(bootstrap: str, use: Callable[[AIOKafkaAdminClient], Awaitable[T]]) -> T:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20_000)
    await admin.start()
    try:
        return await use(admin)
    finally:
        await admin.close()


async def topic_names(bootstrap: str) -> list[str]:
    async def names(admin: AIOKafkaAdminClient) -> list[str]:
        return sorted(t for t in await admin.list_topics() if not t.startswith("__"))

    return await _admin(bootstrap, names)


async def group_offsets(bootstrap: str) -> dict[str, dict[TopicPartition, int]]:
    """Every consumer group's committed offsets."""

    async def offsets(admin: AIOKafkaAdminClient) -> dict[str, dict[TopicPartition, int]]:
        groups = [g[0] for g in await admin.list_consumer_groups()]
        found = {}
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            found[group] = {tp: meta.offset for tp, meta in committed.items()}
        return found

    return await _admin(bootstrap, offsets)


def lag_per_group(
    committed: dict[str, dict[TopicPartition, int]], ends: dict[TopicPartition, int]
) -> dict[str, int]:
    """Records not yet consumed per group, over every partition of the topics it reads (a partition
    it never committed counts from 0)."""
    found = {}
    for group, offsets in committed.items():
        mine = {tp.topic for tp in offsets}
        found[group] = sum(max(0, end - offsets.get(tp, 0)) for tp, end in ends.items() if tp.topic in mine)
    return found


async def backlog(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn, timeout=10, command_timeout=20)
    try:
        return {name: int(await conn.fetchval(query)) for name, query in BACKLOG_QUERIES.items()}
    finally:
        await conn.close()


@dataclass
class Settled:
    seconds: float
    lag: int  # -1: could not be read
    backlog: dict[str, int]
    lags: dict[str, int] = field(default_factory=dict)  # per consumer group

    @property
    def done(self) -> bool:
        return self.lag == 0 and not any(self.backlog.values())

    def reason(self) -> str:
        """Why the system is not settled, in full: ``not settled after Ns: lag N (N on group G, ...);
        backlog {...}``."""
        if self.lag < 0:
            what = "lag unknown (the broker did not answer)"
        else:
            behind = sorted(((n, g) for g, n in self.lags.items() if n), reverse=True)
            what = f"lag {self.lag:,}"
            if behind:
                what += " (" + ", ".join(f"{n:,} on group {g}" for n, g in behind) + ")"
        busy = {k: v for k, v in self.backlog.items() if v}
        return f"not settled after {self.seconds:.0f}s: {what}" + (f"; backlog {busy}" if busy else "")

    def brief(self) -> str:
        """The same in a few words, for each check it leaves unjudged: ``not settled: lag N, most on
        group G (N)``."""
        if self.lag < 0:
            return "not settled: lag unknown (the broker did not answer)"
        words = [f"lag {self.lag:,}"]
        if self.lag > 0:
            n, group = max((n, g) for g, n in self.lags.items())
            words[0] += f", most on group {group} ({n:,})"
        busy = {k: v for k, v in self.backlog.items() if v}
        if busy:
            words.append("backlog " + ", ".join(f"{k} {v:,}" for k, v in busy.items()))
        return "not settled: " + "; ".join(words)


async def probe(bootstrap: str, dsn: str) -> tuple[Settled, dict[TopicPartition, int]]:
    """One look at the system: lag per group, backlogs, every partition's end."""
    started = time.monotonic()
    names, committed = await asyncio.gather(topic_names(bootstrap), group_offsets(bootstrap))
    ends = await end_offsets(bootstrap, names) if names else {}
    lags = lag_per_group({group: offsets for group, offsets in committed.items() if offsets}, ends)
    rows = await backlog(dsn)
    return Settled(time.monotonic() - started, sum(lags.values()), rows, lags), ends


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
    (timers, retries and the volunteers' answers may still add work), or ``within_s`` passes (then
    the state as last seen, whose ``reason()`` says what was left). ``within_s=0``: one look."""
    started = time.monotonic()
    quiet_since: float | None = None
    last_ends: dict[TopicPartition, int] = {}
    known: set[str] = set()  # groups that have committed: a broker just back may not list them yet
    state = Settled(0.0, -1, {})
    last_said = 0.0
    while True:
        left = within_s - (time.monotonic() - started)
        try:
            state, ends = await asyncio.wait_for(probe(bootstrap, dsn), max(5.0, min(PROBE_TIMEOUT_S, left)))
        except Exception as error:  # a server still coming back, or too slow to answer
            state, ends = Settled(0.0, -1, {"unreadable": 1}), {}
            say(f"  settling: cannot read the state yet ({type(error).__name__}: {error})")
        now = time.monotonic()
        state.seconds = now - started
        if missing := known - state.lags.keys():
            state.backlog["consumer groups not listed"] = len(missing)
        new_groups = not state.lags.keys() <= known  # were they missing from the last look?
        known |= state.lags.keys()
        if state.done and also_idle() and ends == last_ends and not new_groups:
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
            behind = {group: n for group, n in state.lags.items() if n} if state.lag > 0 else {}
            say(f"  settling {now - started:.0f}s: lag {behind or state.lag}, backlog {busy}")
        await asyncio.sleep(min(2.0, max(0.0, within_s - (now - started))))


@dataclass
class Topics:
    """Every topic read once, from its beginning to its end as of the start of the read: how many
    records each holds, and the records of the topics the checks look into (``kept``). When the
    budget ran out first, ``unread`` says how many records of which topics were not read."""

    counts: dict[str, int] = field(default_factory=dict)
    kept: dict[str, list[Message]] = field(default_factory=dict)
    unread: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    unlisted: str = ""  # why the topics could not even be listed

    @property
    def complete(self) -> bool:
        return not self.unread and not self.unlisted

    def reason(self) -> str:
        if self.unlisted:
            return f"the topics could not be listed in {self.seconds:.0f}s ({self.unlisted})"
        missing = ", ".join(f"{n:,} of {t}" for t, n in sorted(self.unread.items()))
        return f"the topics could not be read to their ends in {self.seconds:.0f}s ({missing} unread)"

    def records(self, topic: str) -> list[Message]:
        return self.kept.get(topic, [])

    def total(self) -> int:
        return sum(self.counts.values())


async def read_topics(
    bootstrap: str,
    *,
    within_s: float,
    keep: Callable[[str], bool] = lambda _topic: True,
    say: Callable[[str], None] = print,
) -> Topics:
    """One pass over every record of every topic up to its end as of now, within ``within_s``.
    Records of topics ``keep`` declines are only counted (the partners' submissions, the largest
    topics, only need counting)."""
    started = time.monotonic()
    found = Topics()
    ends: dict[TopicPartition, int] = {}
    read_to: dict[TopicPartition, int] = {}  # per partition, the offset after the last one read
    listed, failure = False, ""
    try:
        async with asyncio.timeout(within_s):
            while True:  # a broker still coming back: again from the start, while the budget lasts
                found, read_to = Topics(), {}
                try:
                    ends = {tp: end for tp, end in (await _all_ends(bootstrap)).items() if end}
                    listed = True
                    for tp in ends:
                        found.counts.setdefault(tp.topic, 0)
                    if ends:
                        await _read(bootstrap, ends, read_to, found, keep, say)
                    break
                except (KafkaError, OSError) as error:
                    failure = f"{type(error).__name__}: {error}"
                    say(f"  reading topics: {failure}; trying again")
                    await asyncio.sleep(1)
    except TimeoutError:
        pass
    found.seconds = time.monotonic() - started
    if not listed:
        found.unlisted = failure or "no answer in time"
    for tp, end in ends.items():
        if read_to.get(tp, 0) < end:
            found.unread[tp.topic] = found.unread.get(tp.topic, 0) + end - read_to.get(tp, 0)
    return found


async def _read(
    bootstrap: str,
    ends: dict[TopicPartition, int],
    read_to: dict[TopicPartition, int],
    found: Topics,
    keep: Callable[[str], bool],
    say: Callable[[str], None],
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=10_000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        request_timeout_ms=20_000,
    )
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        for tp, first in (await consumer.beginning_offsets(list(ends))).items():
            read_to[tp] = first
        pending = {tp for tp, end in ends.items() if read_to[tp] < end}
        last_said = time.monotonic()
        while pending:
            for tp, batch in (await consumer.getmany(*pending, timeout_ms=1000)).items():
                end = ends[tp]
                kept = found.kept.setdefault(tp.topic, []) if keep(tp.topic) else None
                for r in batch:
                    if r.offset >= end:
                        break
                    read_to[tp] = r.offset + 1
                    found.counts[tp.topic] += 1
                    if kept is not None:
                        kept.append(
                            Message(r.topic, r.partition, r.offset, r.key or b"", r.value or b"", r.headers)
                        )
            for tp in list(pending):
                # The position also moves past offsets without records (transaction markers).
                position = await consumer.position(tp)
                if position >= ends[tp]:
                    read_to[tp] = ends[tp]
                    pending.discard(tp)
            if time.monotonic() - last_said >= 15:
                last_said = time.monotonic()
                say(f"  reading topics: {found.total():,} records, {len(pending)} partitions to go")
    finally:
        await stop_consumer(consumer)


async def _all_ends(bootstrap: str) -> dict[TopicPartition, int]:
    names = await topic_names(bootstrap)
    return await end_offsets(bootstrap, names) if names else {}


def decoded(value: bytes | None) -> Any:
    try:
        return json.loads(value or b"null")
    except ValueError:
        return None
