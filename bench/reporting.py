"""Reporting: projection throughput live and in a rebuild, and the delay from an event published to the
dashboard's live stream announcing it.

Each part runs on topics and a schema of its own, filled with a generated history
(``lastline_reporting.history``: cases, proposals, matches, volunteers, notifications, rejections).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import uvicorn
from sqlalchemy import text

from bench.results import Figure, machine
from lastline_infra import InfraEndpoints, create_topics
from lastline_reporting.app import build
from lastline_reporting.consumers import Topics
from lastline_reporting.history import PARTNERS, START, generate, publish, rejections_topic
from lastline_reporting.rebuild import rebuild
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.enums import CaseType
from lastline_shared.contracts.envelope import KafkaRecord, encode
from lastline_shared.contracts.profiles import PartnerRef
from lastline_shared.db import make_engine
from lastline_shared.relay import make_producer
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import ReportingSettings

REBUILD_EVENTS = int(os.environ.get("BENCH_REPORTING_REBUILD_EVENTS", "1000000"))
LIVE_EVENTS = int(os.environ.get("BENCH_REPORTING_LIVE_EVENTS", "100000"))
LATENCY_SAMPLES = 200
PARTITIONS = 12
EVENTS_PER_CASE = 6.2  # what the generator makes, volunteers and notifications included


def _topics(prefix: str) -> Topics:
    names = ("volunteers", "cases", "facilities", "matches", "notifications")
    pattern = rf"^{re.escape(prefix)}partner\.[a-z0-9-]{{2,40}}\.rejections$"
    return Topics(facts=tuple(prefix + n for n in names), rejections_pattern=pattern)


async def _history_on_topics(infra: InfraEndpoints, events: int, tag: str) -> tuple[Topics, int]:
    prefix = f"bench-{tag}-{uuid.uuid4().hex[:6]}-"
    topics = _topics(prefix)
    names = [*topics.facts, *(rejections_topic(topics, p) for p in PARTNERS)]
    await create_topics(infra.kafka_bootstrap, dict.fromkeys(names, PARTITIONS))
    cases = max(10, int(events / EVENTS_PER_CASE))
    records: Sequence[KafkaRecord] = list(
        generate(cases, max(50, cases // 4), seed=1, weeks=26).records(topics)
    )
    await publish(infra.kafka_bootstrap, records, chunk=20_000)
    return topics, len(records)


def _settings(infra: InfraEndpoints, schema: str) -> ReportingSettings:
    return ReportingSettings(
        service_name=f"reporting-bench-{uuid.uuid4().hex[:6]}",
        db_schema=schema,
        database_url=infra.database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        kafka_metadata_max_age_ms=2000,
    )


async def _drop(infra: InfraEndpoints, schema: str) -> None:
    engine = make_engine(infra.database_url, schema)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


async def _applied(runtime: ServiceRuntime) -> int:
    async with runtime.engine.connect() as conn:
        return int(await conn.scalar(text(f'SELECT count(*) FROM "{runtime.settings.db_schema}".inbox')) or 0)


@asynccontextmanager
async def _served(runtime: ServiceRuntime, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(
            runtime.http_app(), host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=2
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            raise RuntimeError("reporting did not start")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def live_throughput(infra: InfraEndpoints) -> Figure:
    """The service's consumers projecting a backlog: decode, inbox, fold, upserts, commit."""
    topics, count = await _history_on_topics(infra, LIVE_EVENTS, "live")
    schema = f"bench_reporting_{uuid.uuid4().hex[:6]}"
    runtime = build(_settings(infra, schema), topics=topics)
    try:
        async with runtime.running():
            started = time.perf_counter()
            while await _applied(runtime) < count:  # noqa: ASYNC110  (polling the database)
                await asyncio.sleep(0.2)
            rate = count / (time.perf_counter() - started)
    finally:
        await runtime.engine.dispose()
        await _drop(infra, schema)
    load = f"{count:,} events of a generated history, {PARTITIONS} partitions, batches of 500, one instance"
    return Figure("reporting projection, live", rate, "events/s", None, None, machine(), load)


async def rebuild_throughput(infra: InfraEndpoints) -> Figure:
    topics, _count = await _history_on_topics(infra, REBUILD_EVENTS, "rebuild")
    schema = f"bench_reporting_{uuid.uuid4().hex[:6]}"
    try:
        result = await rebuild(_settings(infra, schema), topics, show_progress=True)
    finally:
        await _drop(infra, schema)
    load = f"{result.events:,} events replayed from {PARTITIONS}-partition topics into new tables, swapped in"
    return Figure("reporting rebuild", result.rate, "events/s", None, None, machine(), load)


async def stream_latency(infra: InfraEndpoints) -> list[Figure]:
    """Publish one case at a time; the time until the dashboard's event stream announces it."""
    prefix = f"bench-latency-{uuid.uuid4().hex[:6]}-"
    topics = _topics(prefix)
    await create_topics(infra.kafka_bootstrap, dict.fromkeys(topics.facts, PARTITIONS))
    schema = f"bench_reporting_{uuid.uuid4().hex[:6]}"
    runtime = build(_settings(infra, schema), topics=topics)
    producer = make_producer(infra.kafka_bootstrap, "bench-reporting-latency")
    await producer.start()
    delays: list[float] = []
    try:
        async with (
            _served(runtime, 18_904) as url,
            httpx.AsyncClient(timeout=30) as client,
            client.stream("GET", f"{url}/dashboard/stream") as stream,
        ):
            lines = stream.aiter_lines()

            async def next_event() -> None:
                async for line in lines:
                    if line.startswith("event: projected"):
                        return

            await next_event()  # the state when connected
            await asyncio.sleep(3)  # consumers joined their groups
            for i in range(LATENCY_SAMPLES):
                case = CaseOpened(
                    case_id=uuid.uuid4(),
                    facility_code="STWRTGA",
                    court_code="LUM",
                    case_type=CaseType.ASYLUM,
                    languages=("spa",),
                    referrals=(PartnerRef(partner_id="stewart-project", external_id=f"b-{i}"),),
                )
                record = encode(
                    case,
                    source="/services/intake",
                    time=START + timedelta(minutes=i),
                    topic=topics.facts[1],
                )
                sent = time.perf_counter()
                await (
                    await producer.send(
                        record.topic, record.value, key=record.key, headers=list(record.headers)
                    )
                )
                await asyncio.wait_for(next_event(), 30)
                delays.append((time.perf_counter() - sent) * 1000)
                await asyncio.sleep(0.02)
    finally:
        await producer.stop()
        await runtime.engine.dispose()
        await _drop(infra, schema)
    cuts = statistics.quantiles(delays, n=100)
    load = f"{LATENCY_SAMPLES} cases published one at a time; Kafka -> consumer -> commit -> NOTIFY -> SSE"
    return [
        Figure("reporting publish -> dashboard stream, p50", cuts[49], "ms", None, None, machine(), load),
        Figure("reporting publish -> dashboard stream, p99", cuts[98], "ms", None, None, machine(), load),
    ]


async def run(infra: InfraEndpoints) -> list[Figure]:
    figures = [await live_throughput(infra), await rebuild_throughput(infra)]
    figures += await stream_latency(infra)
    return figures


if __name__ == "__main__":  # this part alone: prints the figures, leaves bench/results.json as it is
    from lastline_infra import ensure_up

    async def main() -> None:
        for figure in await run(await ensure_up()):
            print(f"{figure.name}: {figure.value:,.1f} {figure.unit} ({figure.load})")

    asyncio.run(main())
