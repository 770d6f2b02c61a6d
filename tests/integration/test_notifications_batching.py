"""Notifications' batched database work: a consumer batch applies its projections in bulk with each
event's own effect, in order; an email sender reads the projections once per claimed batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from lastline_shared.contracts.base import Event
from lastline_shared.contracts.cases import CaseClosed
from lastline_shared.contracts.enums import CaseOutcome, VolunteerWithdrawalReason
from lastline_shared.contracts.envelope import Envelope, decode, encode
from lastline_shared.contracts.volunteers import VolunteerWithdrawn
from tests.integration.test_notifications_delivery import (  # noqa: F401  (fixtures, used by name)
    SOURCES,
    Notifications,
    mailbox,
    nf,
    story,
)
from tests.support.catchers import Mailbox

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC)


def at(event_: Event, seconds: float) -> Envelope:
    """``event_`` as the consumers decode it, stamped ``seconds`` after T0."""
    record = encode(event_, source=SOURCES[event_.topic], time=T0 + timedelta(seconds=seconds))
    decoded = decode(record.topic, record.key, list(record.headers), record.value)
    assert isinstance(decoded, Envelope)
    return decoded


@pytest.mark.asyncio(loop_scope="session")
async def test_one_batch_applies_each_event_in_order(nf: Notifications) -> None:  # noqa: F811
    s, t = story(), story()
    renamed = s.attorney.model_copy(update={"name": "Renamed Later"})
    withdrawn = VolunteerWithdrawn(
        volunteer_id=s.attorney.volunteer_id, reason=VolunteerWithdrawalReason.NO_CAPACITY
    )
    older = t.attorney.model_copy(update={"name": "Older Name"})
    closed = CaseClosed(case_id=s.case.case_id, outcome=CaseOutcome.RELIEF_GRANTED, closed_on=T0.date())
    batch = [
        at(s.attorney, 1),
        at(s.case, 1),
        at(withdrawn, 2),  # withdraws the profile before it in the batch...
        at(closed, 2),
        at(renamed, 3),  # ...and a newer profile after it makes them active again
        at(t.attorney, 5),
        at(older, 4),  # an older event never overwrites a newer one, in one batch too
    ]
    async with nf.sessions.begin() as session:
        await nf.handlers.on_people(session, batch)
    v, c = nf.tables.volunteers, nf.tables.cases
    async with nf.sessions() as session:
        people = {
            row.volunteer_id: row
            for row in await session.execute(
                select(v).where(v.c.volunteer_id.in_([s.attorney.volunteer_id, t.attorney.volunteer_id]))
            )
        }
        case = (await session.execute(select(c).where(c.c.case_id == s.case.case_id))).one()
    assert (people[s.attorney.volunteer_id].status, people[s.attorney.volunteer_id].name) == (
        "active",
        "Renamed Later",
    )
    assert people[t.attorney.volunteer_id].name == t.attorney.name
    assert case.status == "closed"
    # The withdrawal still told the volunteer (once).
    [email] = await nf.deliveries(source_event_id=batch[2].id)
    assert email["template"] == "volunteer_withdrawn"


@pytest.mark.asyncio(loop_scope="session")
async def test_an_email_batch_reads_contacts_once(nf: Notifications, mailbox: Mailbox) -> None:  # noqa: F811
    stories = [story() for _ in range(5)]
    for s in stories:
        await nf.feed(s.attorney, s.case, s.proposal)
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "volunteers" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    event.listen(nf.engine.sync_engine, "before_cursor_execute", count)
    try:
        sent = await nf.send_email()
    finally:
        event.remove(nf.engine.sync_engine, "before_cursor_execute", count)
    assert sent >= 5
    assert len(reads) == 1  # one batch of up to 20: one read of the contacts, not one per message
    for s in stories:
        [message] = mailbox.to(s.attorney.email)
        assert message["Subject"]
    published = {e.data.notification_id for e in await nf.published("notification-sent")}  # type: ignore[attr-defined]
    for s in stories:
        [row] = [r for r in await nf.deliveries(case_id=s.case.case_id) if r["channel"] == "email"]
        assert row["status"] == "sent"
        assert row["notification_id"] in published
