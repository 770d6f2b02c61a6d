"""The partners' side: their accounts, the simulated stream published at a set pace, and a few records
that are meant to fail (undecodable bytes on an internal topic), whose dead letters the run expects."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from lastline_intake.simulate import Traffic, simulate
from lastline_shared.clock import network_today
from lastline_shared.contracts.envelope import KafkaRecord
from lastline_shared.contracts.topics import VOLUNTEERS

PARTNERS = ("chaos-clinic", "chaos-firm", "chaos-project")
CHUNK = 250
POISON_TOPIC = VOLUNTEERS.name


async def create_partners(env: Mapping[str, str]) -> None:
    """``lastline-intake partners create`` for each partner (migrates intake, creates its topics)."""
    for partner in PARTNERS:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lastline_intake", "partners", "create", partner,
            "--name", partner, "--kind", "clinic", "--email", f"ops@{partner}.example.org",
            env=dict(env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"creating partner {partner} failed: {out.decode(errors='replace')[-2000:]}")


def make_traffic(total: int, seed: int, malformed_ratio: float) -> Traffic:
    today = network_today("America/New_York")()
    return simulate(PARTNERS, total=total, today=today, malformed_ratio=malformed_ratio, seed=seed)


@dataclass
class Publisher:
    """Publishes as a partner's plain client would, ``rate`` records/s in chunks. The gate is held
    while a chunk is in flight: the broker is stopped only between chunks, so the partner side stays
    exactly once (a partner's retries are the partner's business, not what this run measures)."""

    bootstrap: str
    gate: asyncio.Lock
    rate: float
    published: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, records: Sequence[KafkaRecord]) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        await producer.start()
        self.started_at = time.monotonic()
        try:
            for start in range(0, len(records), CHUNK):
                chunk = records[start : start + CHUNK]
                async with self.gate:
                    sent = [
                        await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                        for r in chunk
                    ]
                    await asyncio.gather(*sent)
                self.published += len(chunk)
                due = self.started_at + self.published / self.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        finally:
            self.finished_at = time.monotonic()
            self.done.set()
            await producer.stop()


@dataclass(frozen=True)
class Poison:
    topic: str
    partition: int
    offset: int


async def inject_poison(bootstrap: str, gate: asyncio.Lock, count: int) -> list[Poison]:
    """``count`` records that no consumer can decode, on an internal topic: each consumer group that
    reads it must dead-letter each exactly once, and nothing else may reach a DLQ."""
    async with gate:  # the broker is up while the gate is held
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            sent = [
                await producer.send(
                    POISON_TOPIC, b"\xff chaos: not an event " + os.urandom(8), key=f"poison-{i}".encode()
                )
                for i in range(count)
            ]
            metas = await asyncio.gather(*sent)
        finally:
            await producer.stop()
    return [Poison(POISON_TOPIC, m.partition, m.offset) for m in metas]
