"""The reporting service on real Kafka: live consumers project the topics, and a rebuild replays them
into a new generation while events keep arriving, swaps it in, and the figures are still exact."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import text

from lastline_reporting.app import build
from lastline_reporting.consumers import Projector, Topics
from lastline_reporting.generations import Generations
from lastline_reporting.history import PARTNERS, publish, rejections_topic
from lastline_reporting.rebuild import rebuild
from lastline_reporting.registry import Reporting
from lastline_reporting.tables import ReportingTables
from lastline_shared.consumer import EventProcessor
from lastline_shared.contracts.envelope import KafkaRecord
from lastline_shared.contracts.topics import CASES, FACILITIES, MATCHES, NOTIFICATIONS, VOLUNTEERS
from lastline_shared.db import new_metadata
from lastline_shared.settings import ReportingSettings
from tests.integration.test_reporting_figures import HISTORY, Db, _figures_match_the_oracle
from tests.support.kafka import create_topics

pytestmark = pytest.mark.integration


def test_topics(prefix: str) -> Topics:
    names = (VOLUNTEERS.name, CASES.name, FACILITIES.name, MATCHES.name, NOTIFICATIONS.name)
    pattern = rf"^{re.escape(prefix)}partner\.[a-z0-9-]{{2,40}}\.rejections$"
    return Topics(facts=tuple(prefix + name for name in names), rejections_pattern=pattern)


test_topics.__test__ = False  # type: ignore[attr-defined]


async def _wait_for_inbox(db: Db, count: int, timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    seen = 0
    while asyncio.get_running_loop().time() < deadline:
        async with db.engine.connect() as conn:
            seen = await conn.scalar(text(f'SELECT count(*) FROM "{db.schema}".inbox')) or 0
        if seen >= count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"live consumers applied {seen} of {count} events")


async def test_live_projection_and_a_rebuild_during_traffic_give_the_same_exact_figures(infra) -> None:  # type: ignore[no-untyped-def]
    prefix = f"t-rep-{uuid.uuid4().hex[:8]}-"
    topics = test_topics(prefix)
    await create_topics(
        infra.kafka_bootstrap, [*topics.facts, *(rejections_topic(topics, p) for p in PARTNERS)]
    )
    schema = f"t_reporting_{uuid.uuid4().hex[:8]}"
    settings = ReportingSettings(
        service_name=f"reporting-{uuid.uuid4().hex[:6]}",
        db_schema=schema,
        database_url=infra.database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        kafka_metadata_max_age_ms=1000,
    )
    runtime = build(settings, topics=topics)
    generations = Generations(ReportingTables(new_metadata()), schema)
    db = Db(
        schema,
        runtime.engine,
        generations,
        Projector(generations),
        Reporting(runtime.engine, generations),
        runtime.processors[0],
    )
    records: Sequence[KafkaRecord] = list(HISTORY.records(topics))
    before, during = records[: len(records) * 7 // 10], records[len(records) * 7 // 10 :]
    try:
        async with runtime.running():
            await publish(infra.kafka_bootstrap, before)
            await _wait_for_inbox(db, len(before))

            traffic = asyncio.create_task(publish(infra.kafka_bootstrap, during, chunk=50))
            result = await rebuild(settings, topics, chunk=300, lag_threshold=100, show_progress=False)
            await traffic
            assert result.generation == 2
            assert result.previous == 1
            assert result.events >= len(before)
            assert result.skipped == 0

            await _wait_for_inbox(db, len(records))
            async with runtime.engine.connect() as conn:
                assert await generations.current(conn) == 2
            await _figures_match_the_oracle(db)
            assert isinstance(db.processor, EventProcessor)
    finally:
        async with runtime.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await runtime.engine.dispose()
