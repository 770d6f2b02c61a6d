"""The Kafka path: every partner's submissions topic, through the same processor as HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from lastline_intake.decisions import Received
from lastline_intake.processing import SubmissionProcessor
from lastline_shared.contracts.envelope import DecodeError, Envelope
from lastline_shared.contracts.topics import SUBMISSIONS_PATTERN
from lastline_shared.runtime import ServiceRuntime


def register(runtime: ServiceRuntime, processor: SubmissionProcessor) -> None:
    """Subscribe to ``partner.<id>.submissions`` by pattern: a new partner's topic needs no redeploy."""

    async def handle_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        now = datetime.now(UTC)
        await processor.process(session, [Received(e, "kafka", now) for e in envelopes])

    async def on_invalid(session: AsyncSession, error: DecodeError) -> None:
        await processor.process(session, [Received(error, "kafka", datetime.now(UTC))])

    runtime.consume(
        pattern=SUBMISSIONS_PATTERN,
        handle_batch=handle_batch,
        on_invalid=on_invalid,
        name="submissions",
        description="Partners' submissions: validated, deduplicated, applied or rejected",
    )
