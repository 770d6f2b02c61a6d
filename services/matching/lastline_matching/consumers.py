"""Matching's inputs: volunteers, cases and facilities, in one consumer group (one inbox)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from lastline_matching.placement import Placement
from lastline_shared.contracts.envelope import Envelope
from lastline_shared.contracts.facilities import FacilityStatusChanged
from lastline_shared.contracts.topics import CASES, FACILITIES, VOLUNTEERS
from lastline_shared.runtime import ServiceRuntime


def register(runtime: ServiceRuntime, placement: Placement) -> None:
    async def handle_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        now = datetime.now(UTC)
        volunteers_changed = False
        async with placement.store.queueing_once(session):
            for envelope in envelopes:
                if envelope.topic == VOLUNTEERS.name:
                    await placement.on_volunteer(session, envelope.data, now)
                    volunteers_changed = True
                elif envelope.topic == CASES.name:
                    await placement.on_case(session, envelope.data, now)
                elif isinstance(envelope.data, FacilityStatusChanged):
                    await placement.on_facility(session, envelope.data, now)
            if volunteers_changed:  # once per batch, not per event
                await placement.store.queue_waiting(session)

    runtime.consume(
        VOLUNTEERS.name,
        CASES.name,
        FACILITIES.name,
        handle_batch=handle_batch,
        description="Volunteers, cases and facility status: the facts matching decides on",
    )
