"""Two matching processes in one consumer group never overbook a volunteer, and a redelivered
event never makes a second proposal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from lastline_infra import InfraEndpoints
from lastline_shared.contracts.envelope import KafkaRecord, encode
from lastline_shared.db import asyncpg_dsn
from lastline_shared.kafka_admin import start_group_at_end
from lastline_shared.proposal_links import proposal_url, sign_proposal_link
from lastline_shared.settings import MatchingSettings
from tests.e2e.conftest import service_process, stop_all
from tests.integration.test_matching_flow import case, volunteer

pytestmark = pytest.mark.e2e

VOLUNTEERS, CASES = 5, 20


async def _publish(bootstrap: str, records: list[KafkaRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.gather(
            *(producer.send(r.topic, r.value, key=r.key, headers=list(r.headers)) for r in records)
        )
        await producer.flush()
    finally:
        await producer.stop()


async def _settled(
    conn: asyncpg.Connection, schema: str, volunteer_ids: list[uuid.UUID], want: int
) -> list[asyncpg.Record]:
    """The proposals made to these volunteers once ``want`` exist (or a minute passed), and a little
    after: anything more would be a double booking, given time to show. The topics are shared with
    other tests, so a volunteer may be offered another test's case: only the volunteers are ours."""
    query = f'SELECT case_id, volunteer_id, status FROM "{schema}".proposals WHERE volunteer_id = ANY($1)'
    for _ in range(120):
        if len(await conn.fetch(query, volunteer_ids)) >= want:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    return list(await conn.fetch(query, volunteer_ids))


async def _caught_up(bootstrap: str, group: str, topic: str, within_s: float = 60) -> None:
    """Wait until ``group`` has committed everything on ``topic`` (so it has seen every record)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        for _ in range(int(within_s * 2)):
            committed = await admin.list_consumer_group_offsets(group)
            if all(committed.get(tp) is not None and committed[tp].offset >= end for tp, end in ends.items()):
                return
            await asyncio.sleep(0.5)
        pytest.fail(f"{group} did not catch up on {topic}")
    finally:
        await admin.close()
        await consumer.stop()


@pytest.mark.asyncio(loop_scope="session")
async def test_two_instances_share_the_work_without_overbooking(
    infra: InfraEndpoints, tmp_path: Path
) -> None:
    # A service name of its own: its own consumer group, started at the topics' end, so the history
    # other tests left on the shared topics is not replayed first.
    name = f"matching-{uuid.uuid4().hex[:6]}"
    schema = f"e2e_matching_{uuid.uuid4().hex[:8]}"
    group = f"lastline-{name}.main"
    await start_group_at_end(infra.kafka_bootstrap, group, ["volunteers", "cases", "facilities"])
    env = {
        "MATCHING_SERVICE_NAME": name,
        "MATCHING_DB_SCHEMA": schema,
        "MATCHING_DATABASE_URL": infra.database_url,
    }
    instances = [service_process("matching", infra, tmp_path / f"m{i}", **env) for i in range(2)]
    for instance in instances:
        instance.start()
    conn = await asyncpg.connect(asyncpg_dsn(infra.database_url))
    try:
        for _ in range(180):
            if all([await i.ready() for i in instances]):
                break
            assert all(i.exit_code() is None for i in instances), [i.log_tail() for i in instances]
            await asyncio.sleep(0.5)
        today = datetime.now(UTC).date()
        people = [volunteer(max_active_cases=1) for _ in range(VOLUNTEERS)]
        cases = [case(next_hearing_date=today + timedelta(days=40)) for _ in range(CASES)]
        case_records = [encode(c, source="/services/intake") for c in cases]
        await _publish(infra.kafka_bootstrap, [encode(v, source="/services/intake") for v in people])
        await _publish(infra.kafka_bootstrap, case_records)
        volunteer_ids = [v.volunteer_id for v in people]

        rows = await _settled(conn, schema, volunteer_ids, VOLUNTEERS)
        assert len(rows) == VOLUNTEERS  # every volunteer has one case on offer, nobody two
        assert len({r["volunteer_id"] for r in rows}) == VOLUNTEERS
        assert len({r["case_id"] for r in rows}) == VOLUNTEERS
        loads = await conn.fetch(
            f'SELECT active_cases + reserved AS load, max_active_cases FROM "{schema}".volunteers '
            "WHERE volunteer_id = ANY($1)",
            volunteer_ids,
        )
        assert all(r["load"] <= r["max_active_cases"] for r in loads)

        await _publish(infra.kafka_bootstrap, case_records)  # redelivered: same ce_id
        await _caught_up(infra.kafka_bootstrap, group, "cases")
        assert (
            len(
                await conn.fetch(
                    f'SELECT 1 FROM "{schema}".proposals WHERE volunteer_id = ANY($1)', volunteer_ids
                )
            )
            == VOLUNTEERS
        )

        offered = rows[0]
        token = sign_proposal_link(
            secret=MatchingSettings().auth_jwt_secret,
            proposal_id=(
                await conn.fetchval(
                    f'SELECT proposal_id FROM "{schema}".proposals WHERE case_id = $1', offered["case_id"]
                )
            ),
            volunteer_id=offered["volunteer_id"],
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(
                proposal_url(instances[1].address.url, token, "accept"), json={"conflict_attested": True}
            )
        assert answer.json()["outcome"] == "accepted"
        assert (
            await conn.fetchval(
                f'SELECT active_cases FROM "{schema}".volunteers WHERE volunteer_id = $1',
                offered["volunteer_id"],
            )
            == 1
        )
    finally:
        await conn.close()
        await stop_all(instances)
