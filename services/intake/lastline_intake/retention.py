"""Client PII is erased once the retention period (``pii_retention_days``) has passed.

- a closed case's client details (``cases.pii``, its key id and the A-number's blind index), once
  it closed more than the period ago; the pseudonymous case and its facts stay for reporting;
- a quarantined submission's raw value, once received more than the period ago (its reasons,
  sizes and position stay for review);
- an update held for a registration that never came, once received more than the period ago: it is
  dropped, its submission marked rejected (``held_expired``) and the partner told on its
  rejections topic, as for any rejection.

Work is done in batches of short transactions that skip rows other transactions hold, so several
intake instances (and the processor) run alongside. An hourly loop runs it in the service;
``lastline-intake erase-expired`` runs it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_intake.partners import PartnerRepository
from lastline_intake.tables import IntakeTables
from lastline_shared.contracts.rejections import RejectionReason, SubmissionRejected
from lastline_shared.logging import get_logger
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import IntakeSettings

log = get_logger(__name__)

EVERY = timedelta(hours=1)
BATCH = 1000
HELD_EXPIRED = RejectionReason(
    path="",
    code="held_expired",
    message="This update waited for its registration (volunteer-registered or case-opened), which did "
    "not arrive within the retention period; it was discarded. Send the registration, then the update.",
)

Emit = Callable[[AsyncSession, Iterable[Any]], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Erased:
    """How many records had client PII erased."""

    cases: int = 0
    quarantine_values: int = 0
    held_submissions: int = 0

    @property
    def total(self) -> int:
        return self.cases + self.quarantine_values + self.held_submissions

    def __add__(self, other: Erased) -> Erased:
        return Erased(
            self.cases + other.cases,
            self.quarantine_values + other.quarantine_values,
            self.held_submissions + other.held_submissions,
        )


class Retention:
    def __init__(
        self,
        *,
        tables: IntakeTables,
        partners: PartnerRepository,
        emit: Emit,
        retention_days: int,
        timezone: str,
    ) -> None:
        self._t = tables
        self._partners = partners
        self._emit = emit
        self.period = timedelta(days=retention_days)
        self._zone = ZoneInfo(timezone)

    async def erase_expired(
        self, session: AsyncSession, *, now: datetime, today: date | None = None, limit: int = BATCH
    ) -> Erased:
        """Erase up to ``limit`` of each kind in the caller's transaction; call again while it erases.

        ``today`` (the network's date) decides which cases closed long enough ago; ``now`` the rest.
        """
        today = today or now.astimezone(self._zone).date()
        return Erased(
            cases=await self._cases(session, today - self.period, now, limit),
            quarantine_values=await self._quarantine(session, now - self.period, limit),
            held_submissions=await self._held(session, now - self.period, now, limit),
        )

    async def erase_all(
        self, sessions: async_sessionmaker[AsyncSession], *, now: datetime, limit: int = BATCH
    ) -> Erased:
        """Everything expired, a batch per transaction."""
        erased = Erased()
        while True:
            async with sessions.begin() as session:
                batch = await self.erase_expired(session, now=now, limit=limit)
            erased += batch
            if max(batch.cases, batch.quarantine_values, batch.held_submissions) < limit:
                return erased

    async def _cases(self, session: AsyncSession, closed_before: date, now: datetime, limit: int) -> int:
        c = self._t.cases
        expired = (
            select(c.c.case_id)
            # The predicate of the partial index on closed_on.
            .where(c.c.status == "closed", c.c.pii.is_not(None), c.c.closed_on < closed_before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await session.execute(
            update(c)
            .where(c.c.case_id.in_(expired.scalar_subquery()))
            .values(pii=None, pii_key_id=None, a_number_index=None, pii_erased_at=now)
            .returning(c.c.case_id)
        )
        return len(result.all())

    async def _quarantine(self, session: AsyncSession, received_before: datetime, limit: int) -> int:
        q = self._t.quarantine
        expired = (
            select(q.c.submission_id)
            .where(q.c.value_encrypted.is_not(None), q.c.received_at < received_before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await session.execute(
            update(q)
            .where(q.c.submission_id.in_(expired.scalar_subquery()))
            .values(value_encrypted=None)
            .returning(q.c.submission_id)
        )
        return len(result.all())

    async def _held(self, session: AsyncSession, received_before: datetime, now: datetime, limit: int) -> int:
        h, s, p = self._t.held, self._t.submissions, self._partners.partners
        expired = (
            select(h.c.submission_id)
            .where(h.c.received_at < received_before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        dropped = (
            await session.execute(
                delete(h).where(h.c.submission_id.in_(expired.scalar_subquery())).returning(h.c.submission_id)
            )
        ).scalars()
        ids = list(dropped)
        if not ids:
            return 0
        rejected = (
            await session.execute(
                update(s)
                .where(s.c.submission_id.in_(ids), s.c.status == "held")
                .values(
                    status="rejected",
                    result=None,
                    reasons=[
                        {
                            "path": HELD_EXPIRED.path,
                            "code": HELD_EXPIRED.code,
                            "message": HELD_EXPIRED.message,
                        }
                    ],
                    decided_at=now,
                )
                .returning(s.c.submission_id, s.c.partner_id, s.c.event_id, s.c.event_type, s.c.external_id)
            )
        ).mappings()
        rows = list(rejected)
        partners = {r["partner_id"] for r in rows if r["partner_id"]}
        active = set(
            (
                await session.execute(select(p.c.partner_id).where(p.c.partner_id.in_(partners), p.c.active))
            ).scalars()
        )
        # Like any rejection, told to the partner (an inactive partner's topic has no reader).
        await self._emit(
            session,
            [
                SubmissionRejected(
                    submission_id=row["submission_id"],
                    partner_id=row["partner_id"],
                    event_id=row["event_id"],
                    submission_type=row["event_type"],
                    external_id=row["external_id"],
                    reasons=(HELD_EXPIRED,),
                )
                for row in rows
                if row["partner_id"] in active
            ],
        )
        return len(ids)


def _loop(
    retention: Retention, sessions: async_sessionmaker[AsyncSession], every: timedelta
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        while True:
            try:
                erased = await retention.erase_all(sessions, now=datetime.now(UTC))
                if erased.total:
                    log.info(
                        "expired client PII erased",
                        cases=erased.cases,
                        quarantine_values=erased.quarantine_values,
                        held_submissions=erased.held_submissions,
                    )
            except Exception as error:  # the next run tries again; a database restart must not end it
                log.warning("erasing expired client PII failed", error=repr(error))
            await asyncio.sleep(every.total_seconds())

    return run


def register(
    runtime: ServiceRuntime,
    *,
    tables: IntakeTables,
    partners: PartnerRepository,
    settings: IntakeSettings,
    every: timedelta = EVERY,
) -> Retention:
    """The erasure job, run hourly by the service (and once by ``lastline-intake erase-expired``)."""
    retention = Retention(
        tables=tables,
        partners=partners,
        emit=runtime.emit,
        retention_days=settings.pii_retention_days,
        timezone=settings.network_timezone,
    )
    runtime.add_task("retention", _loop(retention, runtime.sessions, every))
    return retention
