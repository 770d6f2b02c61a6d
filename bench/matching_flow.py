"""Matching as it runs: the real service process, fed real events through Kafka.

- latency from a ``case-opened`` record published to its ``match-proposed`` record on ``matches``
  (both Kafka timestamps, one clock), with cases arriving at a steady rate;
- decisions per second: a burst of cases, from the first published to the last proposal made.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.results import Figure, machine
from lastline_infra import InfraEndpoints
from lastline_infra.platform import ServiceProcess, wait_all_ready
from lastline_shared import reference
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.enums import CaseType, ExperienceLevel, PracticeArea, VolunteerRole
from lastline_shared.contracts.envelope import encode
from lastline_shared.contracts.profiles import PartnerRef
from lastline_shared.contracts.volunteers import VolunteerRegistered
from lastline_shared.kafka_admin import start_group_at_end

VOLUNTEERS = 2_000
STEADY_RATE = 10  # cases/s for the latency run: below the decision rate, so no queueing
STEADY_CASES = 300
BURST_CASES = 1_000
LANGUAGES = ["es"] * 6 + ["en", "pt", "fr", "ht", "mam", "quc", "ar", "ru", "zh"]
FACILITIES = [f.code for f in reference.all_facilities()[:12]]


def _volunteers(rng: random.Random) -> list[VolunteerRegistered]:
    return [
        VolunteerRegistered(
            volunteer_id=uuid.uuid4(),
            name=f"Volunteer {i}",
            email=f"bench-{i}-{uuid.uuid4().hex[:6]}@example.org",
            roles=(VolunteerRole.ATTORNEY,),
            languages=("en", "es") if rng.random() < 0.7 else tuple({"en", rng.choice(LANGUAGES)}),
            experience_level=rng.choice(list(ExperienceLevel)),
            practice_areas=(PracticeArea.ASYLUM, PracticeArea.BOND, PracticeArea.REMOVAL_DEFENSE),
            max_active_cases=5,
            remote=rng.random() < 0.5,
            facilities_reachable=tuple(rng.sample(FACILITIES, 2)),
        )
        for i in range(VOLUNTEERS)
    ]


def _cases(rng: random.Random, n: int) -> list[CaseOpened]:
    today = datetime.now(UTC).date()
    return [
        CaseOpened(
            case_id=uuid.uuid4(),
            referrals=(PartnerRef(partner_id="bench", external_id=f"c{i}"),),
            facility_code=rng.choice(FACILITIES),
            court_code="LUM",
            case_type=rng.choice([CaseType.ASYLUM, CaseType.BOND, CaseType.REMOVAL_DEFENSE]),
            languages=(rng.choice(LANGUAGES),),
            next_hearing_date=today + timedelta(days=rng.randint(10, 90)),
        )
        for i in range(n)
    ]


async def _proposals(
    consumer: AIOKafkaConsumer, wanted: set[bytes], seen: dict[bytes, int], quiet_s: float = 30.0
) -> None:
    """Collect the first match-proposed timestamp (ms) per case key, until every wanted case has one
    or nothing new came for ``quiet_s`` (a case nobody can take gets no proposal: it escalates)."""
    last = time.monotonic()
    while not wanted <= seen.keys() and time.monotonic() - last < quiet_s:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            for r in records:
                if r.key in wanted and r.key not in seen and ("ce_type", b"match-proposed") in r.headers:
                    seen[r.key] = r.timestamp
                    last = time.monotonic()


async def run(infra: InfraEndpoints) -> list[Figure]:
    rng = random.Random(7)
    # A service name of its own, its consumer group started at the end of the topics: the bench
    # measures its own events, not a replay of whatever history the broker holds.
    name = f"matching-bench-{uuid.uuid4().hex[:6]}"
    schema = f"bench_matching_{uuid.uuid4().hex[:6]}"
    await start_group_at_end(
        infra.kafka_bootstrap, f"lastline-{name}.main", ["volunteers", "cases", "facilities"]
    )
    log_dir = Path(tempfile.mkdtemp(prefix="bench-matching-"))
    env = dict(os.environ) | {
        "MATCHING_SERVICE_NAME": name,
        "MATCHING_DB_SCHEMA": schema,
        "MATCHING_DATABASE_URL": infra.database_url,
        "MATCHING_HTTP_PORT": "18902",
        # Online decisions only: the global pass (measured by bench.matching_quality) would place
        # the few cases the online path cannot, a minute later, and stretch the burst's end.
        "MATCHING_REOPTIMISE_EVERY_S": "0",
        "MATCHING_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }
    service = ServiceProcess.configure("matching", infra, log_dir, env)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all", linger_ms=5)
    consumer = AIOKafkaConsumer("matches", bootstrap_servers=infra.kafka_bootstrap, group_id=None)
    service.start()
    await producer.start()
    await consumer.start()
    try:
        await wait_all_ready([service], within_s=120)
        await consumer.seek_to_end()
        volunteers = _volunteers(rng)
        for v in volunteers:
            r = encode(v, source="/services/intake")
            await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
        await producer.flush()
        await asyncio.sleep(5)  # projected before the cases come

        # Latency at a steady rate.
        steady = [encode(c, source="/services/intake") for c in _cases(rng, STEADY_CASES)]
        sent: dict[bytes, int] = {}
        seen: dict[bytes, int] = {}
        collector = asyncio.create_task(_proposals(consumer, {r.key for r in steady if r.key}, seen))
        started = time.monotonic()
        for i, r in enumerate(steady):
            metadata = await (await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers)))
            assert r.key is not None
            sent[r.key] = metadata.timestamp
            delay = started + (i + 1) / STEADY_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.wait_for(collector, 300)
        latencies = sorted(seen[k] - sent[k] for k in seen)
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]

        # Throughput: a burst.
        burst = [encode(c, source="/services/intake") for c in _cases(rng, BURST_CASES)]
        seen_burst: dict[bytes, int] = {}
        collector = asyncio.create_task(_proposals(consumer, {r.key for r in burst if r.key}, seen_burst))
        started_wall = time.time()
        for r in burst:
            await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
        await producer.flush()
        await asyncio.wait_for(collector, 600)
        rate = len(seen_burst) / (max(seen_burst.values()) / 1000 - started_wall)
    finally:
        await consumer.stop()
        await producer.stop()
        await service.stop(grace_s=10)
    where = machine()
    network = (
        f"{VOLUNTEERS:,} attorneys (capacity 5), real service process, 2 decision loops, "
        "batches of up to 16 cases"
    )
    return [
        Figure(
            "matching: case-opened to match-proposed, p50",
            p50,
            "ms",
            None,
            None,
            where,
            f"{STEADY_CASES:,} cases at {STEADY_RATE}/s ({len(seen):,} proposable); {network}",
        ),
        Figure(
            "matching: case-opened to match-proposed, p99",
            p99,
            "ms",
            None,
            None,
            where,
            f"{STEADY_CASES:,} cases at {STEADY_RATE}/s; {network}",
        ),
        Figure(
            "matching: decisions",
            rate,
            "cases/s",
            None,
            None,
            where,
            f"burst of {BURST_CASES:,} cases ({len(seen_burst):,} proposable); {network}",
        ),
    ]


if __name__ == "__main__":
    from bench.results import report
    from lastline_infra import ensure_up

    async def _main() -> None:
        report(await run(await ensure_up()))

    asyncio.run(_main())
