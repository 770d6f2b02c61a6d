"""Reporting: projection throughput live and in a rebuild, and the delay from an event published to the
dashboard's live stream announcing it.

Each part runs on topics and a schema of its own, filled with a generated history
(``lastline_reporting.history``: cases, proposals, matches, volunteers, notifications, rejections);
both are deleted afterwards. ``make bench`` rebuilds 200,000 events (the history alone takes minutes
to generate and publish at a million); ``python -m bench.reporting --events 1000000`` runs the full
rebuild.
"""

from __future__ import annotations

import argparse
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
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text

from bench.results import Figure, machine
from lastline_infra import InfraEndpoints, create_topics
from lastline_reporting.app import build
from lastline_reporting.consumers import Topics
from lastline_reporting.history import PARTNERS, START, generate, publish, rejections_topic
from lastline_reporting.rebuild import CHUNK, rebuild
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.enums import CaseType
from lastline_shared.contracts.envelope import encode
from lastline_shared.contracts.profiles import PartnerRef
from lastline_shared.db import make_engine
from lastline_shared.relay import make_producer
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import ReportingSettings

REBUILD_EVENTS = int(os.environ.get("BENCH_REPORTING_REBUILD_EVENTS", "200000"))
LIVE_EVENTS = int(os.environ.get("BENCH_REPORTING_LIVE_EVENTS", "100000"))
LATENCY_SAMPLES = 200
PARTITIONS = 12
EVENTS_PER_CASE = 6.2  # what the generator makes, volunteers and notifications included


def _topics(prefix: str) -> Topics:
    names = ("volunteers", "cases", "facilities", "matches", "notifications")
    pattern = rf"^{re.escape(prefix)}partner\.[a-z0-9-]{{2,40}}\.rejections$"
    return Topics(facts=tuple(prefix + n for n in names), rejections_pattern=pattern)


def _names(topics: Topics) -> list[str]:
    return [*topics.facts, *(rejections_topic(topics, p) for p in PARTNERS)]


@asynccontextmanager
async def _history_on_topics(
    infra: InfraEndpoints, events: int, tag: str
) -> AsyncIterator[tuple[Topics, int]]:
    """Topics of their own holding a generated history of about ``events`` events; deleted after."""
    topics = _topics(f"bench-{tag}-{uuid.uuid4().hex[:6]}-")
    await create_topics(infra.kafka_bootstrap, dict.fromkeys(_names(topics), PARTITIONS))
    try:
        cases = max(10, int(events / EVENTS_PER_CASE))
        history = generate(cases, max(50, cases // 4), seed=1, weeks=26)
        count = await publish(infra.kafka_bootstrap, history.records(topics), chunk=20_000)
        del history
        yield topics, count
    finally:
        await _delete_topics(infra, _names(topics))


async def _delete_topics(infra: InfraEndpoints, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.delete_topics([n for n in names if n in existing])
    finally:
        await admin.close()


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


async def live_throughput(infra: InfraEndpoints, events: int = LIVE_EVENTS) -> Figure:
    """The service's consumers projecting a backlog: decode, inbox, fold, upserts, commit."""
    async with _history_on_topics(infra, events, "live") as (topics, count):
        schema = f"bench_reporting_{uuid.uuid4().hex[:6]}"
        runtime = build(_settings(infra, schema), topics=topics)
        try:
            busy = os.getloadavg()[0]
            async with runtime.running():
                started = time.perf_counter()
                while await _applied(runtime) < count:  # noqa: ASYNC110  (polling the database)
                    await asyncio.sleep(0.2)
                rate = count / (time.perf_counter() - started)
        finally:
            await runtime.engine.dispose()
            await _drop(infra, schema)
    load = (
        f"{count:,} events of a generated history, {PARTITIONS} partitions, batches of 500, one instance; "
        f"load average {busy:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    return Figure("reporting projection, live", rate, "events/s", None, None, machine(), load)


async def rebuild_throughput(
    infra: InfraEndpoints, events: int = REBUILD_EVENTS, live: Figure | None = None
) -> Figure:
    """``lastline-reporting rebuild`` without its progress bar: replay, COPY, index, swap.

    The baseline is the live projection measured in the same run (``live``)."""
    async with _history_on_topics(infra, events, "rebuild") as (topics, _count):
        schema = f"bench_reporting_{uuid.uuid4().hex[:6]}"
        busy, cpu = os.getloadavg()[0], time.process_time()
        try:
            result = await rebuild(_settings(infra, schema), topics, show_progress=False)
        finally:
            await _drop(infra, schema)
        cpu = time.process_time() - cpu
    # The machine is shared: the load average and this process's CPU time tell a slow run from a
    # busy machine (events per CPU second is what the replay itself costs).
    load = (
        f"{result.events:,} events replayed from {PARTITIONS}-partition topics into new tables "
        f"(chunks of {CHUNK:,}), indexed, swapped in; {result.seconds:.1f} s; replay process "
        f"{cpu:.1f} CPU s ({result.events / cpu:,.0f} events per CPU s); "
        f"load average {busy:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    return Figure(
        "reporting rebuild",
        result.rate,
        "events/s",
        live.name if live else None,
        live.value if live else None,
        machine(),
        load,
    )


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
        await _delete_topics(infra, topics.facts)
    cuts = statistics.quantiles(delays, n=100)
    load = f"{LATENCY_SAMPLES} cases published one at a time; Kafka -> consumer -> commit -> NOTIFY -> SSE"
    return [
        Figure("reporting publish -> dashboard stream, p50", cuts[49], "ms", None, None, machine(), load),
        Figure("reporting publish -> dashboard stream, p99", cuts[98], "ms", None, None, machine(), load),
    ]


async def run(infra: InfraEndpoints, *, events: int = REBUILD_EVENTS) -> list[Figure]:
    live = await live_throughput(infra)
    figures = [live, await rebuild_throughput(infra, events, live)]
    figures += await stream_latency(infra)
    return figures


if __name__ == "__main__":  # this part alone: prints the figures, leaves bench/results.json as it is
    from lastline_infra import ensure_up

    parser = argparse.ArgumentParser(prog="python -m bench.reporting", description=__doc__)
    parser.add_argument("--events", type=int, default=REBUILD_EVENTS, help="events in the rebuilt history")
    parser.add_argument("--rebuild-only", action="store_true", help="skip the live and latency parts")
    args = parser.parse_args()

    async def main() -> None:
        infra = await ensure_up()
        if args.rebuild_only:
            figures = [await rebuild_throughput(infra, args.events)]
        else:
            figures = await run(infra, events=args.events)
        for figure in figures:
            print(f"{figure.name}: {figure.value:,.1f} {figure.unit} ({figure.load})")

    asyncio.run(main())
