"""Hearing reminders: the placed volunteer hears 7 and 1 days before the case's next hearing.

A reminder is a delivery like any other, keyed by (match, hearing date, days before), so checking
often, in several instances, or after a restart sends each reminder once; a moved hearing gets its
own reminders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_notifications.deliveries import DeliveryStore
from lastline_notifications.tables import NotificationsTables
from lastline_notifications.triggers import EMAIL, SMTP_DESTINATION, Planned, Trigger
from lastline_shared.contracts.enums import RecipientKind

log = structlog.get_logger(__name__)


async def remind_due(
    session: AsyncSession,
    tables: NotificationsTables,
    store: DeliveryStore,
    today: date,
    days_before: Sequence[int],
) -> int:
    """Decide the reminders due today; returns how many are new."""
    p, c = tables.placements, tables.cases
    dates = {today + timedelta(days=d): d for d in days_before}
    rows = await session.execute(
        select(p.c.match_id, p.c.case_id, p.c.volunteer_id, p.c.role, c.c.next_hearing_date)
        .join(c, and_(c.c.case_id == p.c.case_id, c.c.status == "open"))
        .where(p.c.active, c.c.next_hearing_date.in_(list(dates)))
    )
    now = datetime.now(UTC)
    decided = []
    for row in rows:
        days = dates[row.next_hearing_date]
        key = f"reminder:{row.match_id}:{row.next_hearing_date.isoformat()}:{days}"
        trigger = Trigger(key, "hearing-reminder", now, None)
        planned = Planned(
            EMAIL,
            SMTP_DESTINATION,
            RecipientKind.VOLUNTEER,
            str(row.volunteer_id),
            "hearing_reminder",
            row.case_id,
            {"days": days, "role": row.role, "match_id": str(row.match_id)},
        )
        decided.append((trigger, planned))
    return await store.record(session, decided)


def reminder_loop(
    sessions: async_sessionmaker[AsyncSession],
    tables: NotificationsTables,
    store: DeliveryStore,
    *,
    today: Callable[[], date],
    days_before: Sequence[int],
    every_s: float,
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        while True:
            try:
                async with sessions() as session, session.begin():
                    added = await remind_due(session, tables, store, today(), days_before)
                if added:
                    log.info("hearing reminders decided", count=added)
            except Exception as error:  # a timer must outlive a database restart
                log.warning("hearing reminders failed", error=repr(error))
            await asyncio.sleep(every_s)

    return run
