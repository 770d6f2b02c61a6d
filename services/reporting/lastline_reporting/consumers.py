"""Reporting's inputs: every topic, in two consumers (one by name, one by pattern), each with its inbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_reporting.generations import Generations
from lastline_reporting.projections import Batch, write
from lastline_shared.contracts.envelope import Envelope
from lastline_shared.contracts.topics import (
    CASES,
    FACILITIES,
    MATCHES,
    NOTIFICATIONS,
    REJECTIONS_PATTERN,
    VOLUNTEERS,
)
from lastline_shared.runtime import ServiceRuntime


@dataclass(frozen=True)
class Topics:
    """The topics reporting reads; tests and benchmarks use their own names."""

    facts: tuple[str, ...] = (VOLUNTEERS.name, CASES.name, FACILITIES.name, MATCHES.name, NOTIFICATIONS.name)
    rejections_pattern: str = REJECTIONS_PATTERN


def notify_channel(schema: str) -> str:
    """The PostgreSQL channel on which every committed batch is announced (per schema)."""
    return f"{schema}_projected"


class Projector:
    """The live consumers' batch handler: fold, write to the current generation, announce."""

    def __init__(self, generations: Generations) -> None:
        self.generations = generations
        self.channel = notify_channel(generations.schema)

    async def handle_batch(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        generation = await self.generations.for_write(session)
        batch = Batch().extend(envelopes)
        await write(session, self.generations.schema, generation, batch)
        # Delivered when the transaction commits: dashboards refresh once the figures changed.
        payload = orjson.dumps({"generation": generation, "events": batch.events}).decode()
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": self.channel, "payload": payload}
        )


def register(runtime: ServiceRuntime, projector: Projector, topics: Topics = Topics()) -> None:
    runtime.consume(
        *topics.facts,
        handle_batch=projector.handle_batch,
        name="facts",
        description="Every internal topic, projected into the read models",
    )
    runtime.consume(
        pattern=topics.rejections_pattern,
        handle_batch=projector.handle_batch,
        name="rejections",
        description="Every partner's rejections, projected into the read models",
    )
