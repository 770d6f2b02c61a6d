"""Intake at volume, as its own process: 10,000 mixed partner submissions (10% malformed) give exactly
the expected canonical events and rejections, none lost or doubled; redelivered copies change nothing;
no client name, A-number or date of birth reaches an internal topic or the service's log.

The traffic comes from ``lastline_intake.simulate``, which says what each record must become.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from lastline_infra import InfraEndpoints
from lastline_infra.platform import ServiceProcess
from lastline_intake.simulate import INJECTIONS, Item, Traffic, simulate
from lastline_shared.clock import network_today
from lastline_shared.contracts.envelope import KafkaRecord
from lastline_shared.contracts.submissions import VolunteerSubmission
from lastline_shared.contracts.topics import partner_topic_partitions, rejections_topic, submissions_topic
from lastline_shared.kafka_admin import end_offsets
from tests.e2e.conftest import service_process, stop_all

pytestmark = pytest.mark.e2e

TOTAL = 10_000
MALFORMED = 0.1
PARTITIONS = 4
DEADLINE_S = 150.0
CANONICAL = ("volunteers", "cases")

Offsets = dict[TopicPartition, int]


# -- Kafka and the database, read directly ----------------------------------------------------------


async def read_between(bootstrap: str, start: Offsets, end: Offsets) -> list[ConsumerRecord[bytes, bytes]]:
    """Exactly the records from ``start`` (default 0) up to ``end``, every partition."""
    wanted = {tp: (start.get(tp, 0), stop) for tp, stop in end.items() if stop > start.get(tp, 0)}
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign(list(wanted))
        for tp, (first, _) in wanted.items():
            consumer.seek(tp, first)
        pending = set(wanted)
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                records += [r for r in batch if r.offset < wanted[tp][1]]
            pending = {tp for tp in pending if await consumer.position(tp) < wanted[tp][1]}
        assert not pending, f"could not read up to the end of {pending}"
    finally:
        await consumer.stop()
    return records


async def committed(bootstrap: str, group: str) -> Offsets:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in found.items()}
    finally:
        await admin.close()


async def publish(bootstrap: str, records: Iterable[KafkaRecord]) -> None:
    """As a partner's plain aiokafka client would; idempotent, so a retry never reorders a key."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers)) for r in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def until(check: Callable[[], Awaitable[bool]], what: str, service: ServiceProcess) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        assert service.exit_code() is None, service.log_tail()
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S:.0f}s; {service.log_tail()}"
        await asyncio.sleep(0.5)


async def cli(*args: str, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lastline_intake",
        *args,
        env=os.environ | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()


class Intake:
    """The service's schema, read as staff would (the superuser's connection)."""

    def __init__(self, conn: Any, schema: str, partners: list[str]) -> None:
        self.conn, self.schema, self.partners = conn, schema, partners

    async def value(self, query: str) -> Any:
        """``query`` with ``{s}`` for the schema and ``$1`` for the test's partner ids."""
        return await self.conn.fetchval(query.format(s=f'"{self.schema}"'), self.partners)

    async def ids(self, query: str) -> set[str]:
        """The first column of ``query`` (``{s}``: the schema), as text."""
        return {str(row[0]) for row in await self.conn.fetch(query.format(s=f'"{self.schema}"'))}

    async def statuses(self) -> Counter[str]:
        rows = await self.conn.fetch(
            f'SELECT status, count(*) FROM "{self.schema}".submissions '
            "WHERE partner_id = ANY($1) GROUP BY status",
            self.partners,
        )
        return Counter({row[0]: row[1] for row in rows})

    async def outbox(self) -> int:
        return int(await self.conn.fetchval(f'SELECT count(*) FROM "{self.schema}".outbox'))


def text_of(records: Iterable[ConsumerRecord[bytes, bytes]]) -> str:
    parts = []
    for r in records:
        parts += [bytes(r.key or b""), bytes(r.value or b""), *(bytes(v) for _, v in r.headers)]
    return "\n".join(p.decode("utf-8", "replace") for p in parts)


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str:
    return next(bytes(v).decode() for k, v in record.headers if k == name)


# -- the test ---------------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_ten_thousand_mixed_submissions(infra: InfraEndpoints, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    partners = [f"stream-{run}-{name}" for name in ("clinic", "firm", "project")]
    service_name = f"intake-stream-{run}"
    env = {
        "INTAKE_DB_SCHEMA": f"e2e_stream_{run}",
        # The superuser's URL: the intake role may not create schemas.
        "INTAKE_DATABASE_URL": infra.database_url,
        "INTAKE_TOPIC_PARTITIONS": str(PARTITIONS),
        # Its own consumer group (and inbox), so that no other intake on this broker shares the work.
        "INTAKE_SERVICE_NAME": service_name,
    }
    bootstrap = infra.kafka_bootstrap
    today = network_today("America/New_York")()
    create = [
        cli("partners", "create", p, "--name", p, "--kind", "clinic", "--email", "ops@example.org", env=env)
        for p in partners
    ]
    traffic, *_ = await asyncio.gather(
        asyncio.to_thread(simulate, partners, total=TOTAL, today=today, malformed_ratio=MALFORMED, seed=42),
        *create,
    )
    assert isinstance(traffic, Traffic)
    intake = service_process("intake", infra, tmp_path, **env)
    conn = await asyncpg.connect(infra.asyncpg_dsn)
    db = Intake(conn, env["INTAKE_DB_SCHEMA"], partners)
    my_topics = [t for p in partners for t in partner_topic_partitions(p, PARTITIONS)]
    try:
        intake.start()
        await until(intake.ready, "intake ready", intake)
        canonical_start = await end_offsets(bootstrap, CANONICAL)

        await publish(bootstrap, traffic.records())
        published = await end_offsets(bootstrap, [submissions_topic(p) for p in partners])
        assert sum(published.values()) == TOTAL
        await until(lambda: caught_up(bootstrap, service_name, published), "all consumed", intake)
        await until(lambda: outbox_empty(db), "outbox drained", intake)
        canonical_end = await end_offsets(bootstrap, CANONICAL)
        rejections_end = await end_offsets(bootstrap, [rejections_topic(p) for p in partners])

        await check_decisions(db, traffic)
        canonical = await read_between(bootstrap, canonical_start, canonical_end)
        mine = await check_canonical_events(db, traffic, canonical)
        rejections = await read_between(bootstrap, {}, rejections_end)
        await check_rejections(db, traffic, rejections)
        check_injections_kept_as_text(traffic, mine)
        dead = await end_offsets(bootstrap, [f"{submissions_topic(p)}.dlq" for p in partners])
        assert sum(dead.values()) == 0, "nothing may be dead-lettered"

        leaked = traffic.pii_in(text_of(canonical) + text_of(rejections) + intake.log_path.read_text())
        assert leaked == set(), f"client PII outside intake: {sorted(leaked)[:10]}"

        # Redelivery: the same records again (same ce_id), accepted and rejected alike.
        again = traffic.redeliverable()[::10]
        await publish(bootstrap, (item.record for item in again))
        republished = await end_offsets(bootstrap, [submissions_topic(p) for p in partners])
        assert sum(republished.values()) == TOTAL + len(again)
        await until(lambda: caught_up(bootstrap, service_name, republished), "copies consumed", intake)
        await until(lambda: outbox_empty(db), "outbox drained", intake)
        assert await db.value("SELECT count(*) FROM {s}.submissions WHERE partner_id = ANY($1)") == TOTAL
        after = await read_between(bootstrap, canonical_end, await end_offsets(bootstrap, CANONICAL))
        assert [r for r in after if mine_record(r, mine.ids)] == []
        new_rejections = await end_offsets(bootstrap, [rejections_topic(p) for p in partners])
        assert new_rejections == rejections_end
    finally:
        await stop_all([intake])
        await conn.execute(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE')
        await conn.close()
        await delete_topics(bootstrap, my_topics)


async def caught_up(bootstrap: str, service_name: str, published: Offsets) -> bool:
    done = await committed(bootstrap, f"lastline-{service_name}.submissions")
    return all(done.get(tp, 0) >= end for tp, end in published.items())


async def outbox_empty(db: Intake) -> bool:
    return await db.outbox() == 0


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.delete_topics([t for t in topics if t in existing])
    finally:
        await admin.close()


# -- the checks -------------------------------------------------------------------------------------


async def check_decisions(db: Intake, traffic: Traffic) -> None:
    statuses = await db.statuses()
    assert statuses == Counter({"accepted": len(traffic.accepted()), "rejected": len(traffic.rejected())})
    held = await db.value(
        "SELECT count(*) FROM {s}.submissions WHERE partner_id = ANY($1) AND result = 'held'"
    )
    assert held == 0, "every update held for its registration was applied"
    assert await db.value("SELECT count(*) FROM {s}.held_submissions WHERE partner_id = ANY($1)") == 0


class Mine:
    def __init__(self, volunteer_ids: set[str], case_ids: set[str]) -> None:
        self.ids = volunteer_ids | case_ids
        self.events: list[tuple[str, dict[str, Any], ConsumerRecord[bytes, bytes]]] = []


def mine_record(record: ConsumerRecord[bytes, bytes], ids: set[str]) -> bool:
    return bytes(record.key or b"").decode() in ids


async def check_canonical_events(
    db: Intake, traffic: Traffic, records: list[ConsumerRecord[bytes, bytes]]
) -> Mine:
    volunteers = await db.ids("SELECT volunteer_id FROM {s}.volunteers")
    cases = await db.ids("SELECT case_id FROM {s}.cases")
    assert (len(volunteers), len(cases)) == (traffic.volunteers, traffic.cases)
    mine = Mine(volunteers, cases)
    for record in records:
        if mine_record(record, mine.ids):
            mine.events.append((header(record, "ce_type"), json.loads(record.value), record))
    assert Counter(kind for kind, _, _ in mine.events) == traffic.expected_events()
    ids = Counter(header(record, "ce_id") for _, _, record in mine.events)
    assert ids.most_common(1)[0][1] == 1, "an event published twice"
    opened = Counter(data["case_id"] for kind, data, _ in mine.events if kind == "case-opened")
    assert set(opened.values()) == {1}, "two case-opened for one case"
    registered = Counter(
        data["volunteer_id"] for kind, data, _ in mine.events if kind == "volunteer-registered"
    )
    assert set(registered.values()) == {1}
    # Each client referred by two partners is one case that both partners' referrals reach.
    shared_cases = sum(1 for i in traffic.accepted() if i.kind == "case-opened" and "shared" in i.tags) // 2
    merges = [data for kind, data, _ in mine.events if "referral_added" in data.get("changes", ())]
    assert len(merges) == shared_cases
    assert all(len({r["partner_id"] for r in data["referrals"]}) == 2 for data in merges)
    return mine


async def check_rejections(db: Intake, traffic: Traffic, records: list[ConsumerRecord[bytes, bytes]]) -> None:
    by_event = {i.event_id: i for i in traffic.rejected() if i.event_id is not None}
    by_key = {
        (i.partner_id, (i.record.key or b"").decode()): i for i in traffic.rejected() if i.event_id is None
    }
    matched: list[Item] = []
    for record in records:
        rejection = json.loads(record.value)
        assert header(record, "ce_type") == "submission-rejected"
        assert record.topic == rejections_topic(rejection["partner_id"])
        reasons = rejection["reasons"]
        assert reasons, rejection
        for reason in reasons:
            assert set(reason) == {"path", "code", "message"}
            assert reason["code"], reason
            assert reason["message"], reason
        item = (
            by_event.get(rejection["event_id"]) or by_key[(rejection["partner_id"], rejection["external_id"])]
        )
        assert item.expected.codes <= {r["code"] for r in reasons}, (item.kind, reasons)
        matched.append(item)
    assert len(matched) == len(traffic.rejected())
    assert {id(i) for i in matched} == {id(i) for i in traffic.rejected()}, "a rejection lost or doubled"
    told = {json.loads(r.value)["submission_id"] for r in records}
    partners = ", ".join(f"'{p}'" for p in traffic.partner_ids)  # slugs: a-z, 0-9 and '-'
    quarantined = await db.ids(f"SELECT submission_id FROM {{s}}.quarantine WHERE partner_id IN ({partners})")
    rejected = await db.ids(
        f"SELECT submission_id FROM {{s}}.submissions WHERE status = 'rejected'"
        f" AND partner_id IN ({partners})"
    )
    assert told == quarantined == rejected


def check_injections_kept_as_text(traffic: Traffic, mine: Mine) -> None:
    sent = {
        item.submission.name
        for item in traffic.accepted()
        if isinstance(item.submission, VolunteerSubmission) and item.submission.name in INJECTIONS
    }
    names = {data.get("name") for kind, data, _ in mine.events if kind.startswith("volunteer-")}
    assert sent
    assert sent <= names
